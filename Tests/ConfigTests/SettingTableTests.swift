import Config
import Foundation
import Testing

/// The keys are declared once per section: the lists derived from the declarations (known options in errors,
/// environment overrides) must be the documented ones, in the documented order.
struct SettingTableTests {
    /// Each section's known options, exactly as an unknown key reports them.
    @Test(arguments: [
        ("", "data_dir, endpoints, store, processor, algorithm, log, retention, curve, alerts, web, metrics, jobs, limits"),
        ("curve", "enabled, key, server_key, server_keys, allow"),
        ("endpoints", "runs, control, results, acks, status_in, status_out, query, reports, algorithm_control"),
        ("store", "path, url"),
        ("processor", "count, command, input, workdir, env, timeout, lease, retries, backoff, backoff_max"),
        ("algorithm", "concurrency, backfill_concurrency, drain"),
        ("log", "level, max_size, keep, history, heartbeat"),
        ("retention", "max_age, max_size"),
        ("alerts", "command, webhook, headers, on, lag, retries, timeout"),
        ("web", "enabled, token"),
        ("metrics", "host, logger, scheduler, algorithm, processor, max_connections, max_header_bytes, request_timeout"),
        ("limits", "message_size, result_size, subscription_size, subscriptions, receive_queue, rejections_per_second"),
    ])
    func unknownKeysListTheSectionsKeys(section: String, known: String) {
        let yaml = section.isEmpty ? "colour: red\n" : "\(section):\n  colour: red\n"
        #expect(
            throws: ConfigurationError(
                source: "t",
                field: section.isEmpty ? "colour" : "\(section).colour",
                problem: "unknown option (known options here: \(known))"
            )
        ) {
            try Configuration.parse(yaml: yaml, source: "t")
        }
    }

    /// The override table (and so `--help`) is the one in docs/CONFIGURATION.md, row for row.
    @Test func overridesAreTheDocumentedTable() throws {
        let docs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../docs/CONFIGURATION.md")
        let text = try String(contentsOf: docs, encoding: .utf8)
        let documented = text.split(separator: "\n").compactMap { line -> String? in
            guard line.hasPrefix("| `BATON_"), !line.hasPrefix("| `BATON_CONFIG`") else { return nil }
            return line.split(separator: "`")[1].description
        }
        #expect(Configuration.overrides.map(\.variable) == documented)
        #expect(Configuration.overrides.first { $0.variable == "BATON_PROCESSOR_COUNT" }?.key == "processor.count")
        #expect(Configuration.overrides.last?.key == "metrics.<this service>")
    }

    /// Every override sets the key it names: the value read back from the file's key and from the variable agree.
    @Test func eachOverrideSetsTheKeyItNames() throws {
        let values: [String: String] = [
            "data_dir": "/srv/baton", "store.path": "/srv/r.sqlite", "store.url": "postgresql://baton@db.example/results",
            "processor.count": "7", "algorithm.concurrency": "3", "log.level": "debug", "metrics.host": "10.0.0.1",
            "curve.enabled": "false", "curve.allow": "/etc/baton/clients",
        ]
        for override in Configuration.overrides where !override.key.contains("<") {
            let value = values[override.key] ?? "ipc:///tmp/\(override.variable.lowercased())"
            let parts = override.key.split(separator: ".")
            let yaml = parts.count == 1 ? "\(parts[0]): \(value)\n" : "\(parts[0]):\n  \(parts[1]): \(value)\n"
            let fromFile = try Configuration.parse(yaml: yaml, source: "t")
            var fromEnvironment = Configuration()
            try fromEnvironment.applyOverrides(from: [override.variable: value])
            #expect(fromFile == fromEnvironment, "\(override.variable) does not set \(override.key)")
            #expect(fromFile != Configuration(), "\(override.key) was not read")
        }
    }

    /// Range checks declared with a key apply after the environment's overrides, naming the key, not the variable.
    @Test func rangesApplyToOverriddenValues() throws {
        var config = Configuration()
        try config.applyOverrides(from: ["BATON_PROCESSOR_COUNT": "999"])
        #expect(throws: ConfigurationError(source: "f.yaml", field: "processor.count", problem: "must be from 0 to 256 (got 999)")) {
            try config.validate(source: "f.yaml")
        }
        config = Configuration()
        try config.applyOverrides(from: ["BATON_ALGORITHM_CONCURRENCY": "0"])
        #expect(throws: ConfigurationError(source: "f.yaml", field: "algorithm.concurrency", problem: "must be from 1 to 256 (got 0)")) {
            try config.validate(source: "f.yaml")
        }
    }
}
