import Foundation
import PropertyBased
import AlgorithmService
import Config
import LoggerService
import ProcessorService
import SchedulerService
import ServiceKit
import Synchronization
import Testing

/// Random configuration files: keys from the real schema and junk, values of every type (strings, huge and
/// negative numbers, floats, NaN and infinity, lists, mappings, nulls, unicode, very long strings). Whatever
/// the file and the environment, loading gives a configuration or a ``ConfigurationError`` naming a field that
/// the input holds; it never traps.
struct ConfigurationPropertyTests {
    /// The schema's keys, per section; junk keys are mixed in.
    static let sections: [String: [String]] = [
        "endpoints": ["runs", "control", "results", "acks", "status_in", "status_out", "query", "reports"],
        "store": ["path"],
        "processor": ["count", "command", "input", "workdir", "env", "timeout", "lease", "retries", "backoff", "backoff_max"],
        "algorithm": ["concurrency", "backfill_concurrency", "drain"],
        "log": ["level", "max_size", "keep", "heartbeat"],
        "retention": ["max_age", "max_size"],
        "metrics": ["host", "logger", "scheduler", "algorithm", "processor"],
    ]
    static let jobKeys = [
        "name", "every", "anchor", "cron", "at", "timezone", "jitter", "misfire", "grace", "overlap", "command", "workdir", "env",
        "builtin", "duration", "result_size", "timeout", "retries",
    ]
    static let topKeys = ["data_dir", "jobs"] + sections.keys.sorted()
    static let junkKeys = ["colour", "Jobs", "ünïcødé", "", "0", "-", "data_dir ", "x.y"]

    /// Scalars written plain, as a person would: YAML gives them their type (number, bool, null, string).
    static let plain = [
        "0", "1", "-1", "42", "65535", "65536", "99999", "-99999999999999999999", "99999999999999999999", "9223372036854775807",
        "9223372036854775808", "1:0:0:0:0:0:0:0:0:0:0:0", "99999999999:99999999999", "0x7fffffffffffffffff", "0o777", "1_000",
        "1.5", "-0.0", "1e300", "-1e300", "1e400", ".nan", ".NaN", ".inf", "-.inf", "NaN", "inf", "~", "null", "true", "false",
        "yes", "10s", "500ms", "1h30m", "2d", "-1s", "0s", "99999999999999999999d", "9999999999999h1s", "forever", "10GiB",
        "99999999999999999999999TiB", "1KiB", "stdin", "file", "demo", "all", "latest", "forbid", "queue", "debug", "loud",
        "tcp://127.0.0.1:7601", "tcp://127.0.0.1:0", "tcp://127.0.0.1:99999", "tcp://127.0.0.1", "ipc:///tmp/bt-fuzz.sock",
        "inproc://x", "0.0.0.0", "localhost", "Europe/Berlin", "Mars/Olympus", "2026-01-01T00:00:00Z", "2026-13-45T99:99:99Z",
        "sh", "./train.py", "/nonexistent/x", ".", "/",
    ]
    /// Scalars written double-quoted (JSON escapes): always strings.
    static let quoted = [
        "", " ", "* * * * *", "*/0 * * * *", "0 0 31 2 *", "@hourly", "@never", "*/99999999999999999999 * * * *",
        "1-99999999999 * * * *", "0 0 * * 1-7/3", "60 * * * * *", "ünïcødé ✓ 🎉", "\u{0}", "a\u{0}b", "\n", "\\", "\"", "🎉🎉🎉",
        "tcp://[::1]:7601", "ipc://", "10s 5m", "1h-30m", "١٢٣", "٣s", "1.2.3s", "NaNs", "infh", "1e5s", "0x10",
    ]

    /// A random YAML document read from a tape of choices (so shrinking the tape shrinks the document).
    struct Builder {
        var tape: [Int]
        var position = 0

        mutating func next(_ bound: Int) -> Int {
            defer { position += 1 }
            return tape.isEmpty ? 0 : tape[position % tape.count] % max(bound, 1)
        }

        mutating func pick<T>(_ items: [T]) -> T { items[next(items.count)] }

        mutating func scalar() -> String {
            switch next(20) {
            case 0...9: return pick(ConfigurationPropertyTests.plain)
            case 10...16: return Self.quote(pick(ConfigurationPropertyTests.quoted))
            case 17: return Self.quote(String(repeating: pick(["a", "é", "9", "🎉", "/"]), count: 1 + next(2000)))
            default: return "\(next(Int.max) - Int.max / 2)"
            }
        }

        /// Any value, leaves or flow collections, nested up to `depth`.
        mutating func value(depth: Int) -> String {
            guard depth > 0 else { return scalar() }
            switch next(8) {
            case 0: return "[" + (0..<next(4)).map { _ in value(depth: depth - 1) }.joined(separator: ", ") + "]"
            case 1:
                let keys = ConfigurationPropertyTests.jobKeys + ConfigurationPropertyTests.junkKeys
                return "{" + (0..<next(4)).map { _ in "\(Self.quote(pick(keys))): \(value(depth: depth - 1))" }.joined(separator: ", ")
                    + "}"
            case 2: return String(repeating: "[", count: 1 + next(100)) + String(repeating: "]", count: 1 + next(100))
            default: return scalar()
            }
        }

        /// A block mapping of `keys` (some of them) at `indent`.
        mutating func mapping(keys: [String], indent: String) -> String {
            var text = ""
            for _ in 0..<next(6) {
                let key = next(5) == 0 ? pick(ConfigurationPropertyTests.junkKeys) : pick(keys)
                text += "\(indent)\(Self.quote(key)):\(section(key, indent: indent + "  "))\n"
            }
            return text
        }

        /// The value after `key:` (a space and a scalar or flow value, or a nested block).
        mutating func section(_ key: String, indent: String) -> String {
            if let keys = ConfigurationPropertyTests.sections[key], next(4) != 0 {
                let body = mapping(keys: keys, indent: indent)
                return body.isEmpty ? " {}" : "\n" + body.dropLast()
            }
            if key == "jobs", next(4) != 0 {
                let jobs = (0..<next(4)).map { _ -> String in
                    let body = mapping(keys: ConfigurationPropertyTests.jobKeys, indent: indent + "  ")
                    return body.isEmpty ? "\(indent)- {}" : "\(indent)- " + body.dropFirst(indent.count + 2).dropLast()
                }
                return jobs.isEmpty ? " []" : "\n" + jobs.joined(separator: "\n")
            }
            return " " + value(depth: 3)
        }

        mutating func document() -> String {
            mapping(keys: ConfigurationPropertyTests.topKeys, indent: "")
        }

        mutating func environment() -> [String: String] {
            var environment: [String: String] = [:]
            for _ in 0..<next(3) {
                let variable = pick(Configuration.overrides).variable
                environment[variable] = next(2) == 0 ? pick(ConfigurationPropertyTests.plain) : pick(ConfigurationPropertyTests.quoted)
            }
            return environment
        }

        /// A YAML double-quoted string (JSON's escapes are YAML's).
        static func quote(_ text: String) -> String {
            let data = (try? JSONSerialization.data(withJSONObject: [text], options: [.fragmentsAllowed])) ?? Data("[\"\"]".utf8)
            return String(String(decoding: data, as: UTF8.self).dropFirst().dropLast())
        }
    }

    /// What loading gives: the configuration, or the error (and a check that it names something given).
    static func load(yaml: String, environment: [String: String]) -> Result<Configuration, ConfigurationError> {
        Result { () throws(ConfigurationError) in
            // What `Configuration.load(path:environment:)` does after reading the file.
            var configuration = try Configuration.parse(yaml: yaml, source: "fuzz.yaml")
            try configuration.applyOverrides(from: environment)
            try configuration.validate(source: "fuzz.yaml")
            for service in [ServiceDescription.logger, .scheduler, .algorithm, .processor] {
                try service.checkStartup(configuration, environment: [:], source: "fuzz.yaml")
            }
            return configuration
        }
    }

    @Test func randomFilesLoadOrNameTheirField() async {
        let clock = ContinuousClock()
        let start = clock.now
        let outcomes = Outcomes()
        await propertyCheck(count: 3000, input: Gen.int(in: 0...Int.max).array(of: 1...64)) { tape in
            // Each case is a few hundred microseconds of work: let the other tests' tasks run between them.
            await Task.yield()
            var builder = Builder(tape: tape)
            let yaml = builder.document()
            let environment = builder.environment()
            switch Self.load(yaml: yaml, environment: environment) {
            case .success:
                outcomes.count(error: false)
            case .failure(let error):
                outcomes.count(error: true)
                if error.source == "environment" {
                    #expect(environment[error.field] != nil, "\(error) for \(environment)")
                } else if error.field.isEmpty {
                    #expect(error.problem.hasPrefix("not valid YAML"), "no field named: \(error)\n---\n\(yaml)")
                } else {
                    // The field's first key is in the file (or is `data_dir`, `endpoints` … set by the environment).
                    let root = String(error.field.prefix { $0 != "." && $0 != "[" })
                    let named =
                        yaml.contains(root)
                        || Configuration.overrides.contains { $0.key.hasPrefix(root) && environment[$0.variable] != nil }
                    #expect(named, "\(error) names no key of\n---\n\(yaml)")
                }
            }
        }
        let elapsed = clock.now - start
        // Both outcomes occur: the generator reaches valid files too, not only rejections.
        #expect(outcomes.loaded > 0 && outcomes.rejected > 0, "\(outcomes.loaded) loaded, \(outcomes.rejected) rejected")
        print("configuration fuzz: \(outcomes.loaded) loaded, \(outcomes.rejected) rejected in \(elapsed)")
    }

    /// Deeply nested flow collections reach the decoder as an error, not a stack overflow.
    @Test func deepNestingIsAnError() {
        for depth in [100, 1000, 10_000] {
            let yaml = "processor:\n  env: " + String(repeating: "[", count: depth) + String(repeating: "]", count: depth) + "\n"
            if case .failure(let error) = Self.load(yaml: yaml, environment: [:]) {
                #expect(error.field == "processor.env" || error.problem.hasPrefix("not valid YAML"), "\(error)")
            } else {
                Issue.record("depth \(depth) was accepted")
            }
        }
    }
}

/// Counts of each outcome across the property's cases.
final class Outcomes: Sendable {
    private let counts = Mutex<(loaded: Int, rejected: Int)>((0, 0))
    func count(error: Bool) { counts.withLock { error ? ($0.rejected += 1) : ($0.loaded += 1) } }
    var loaded: Int { counts.withLock { $0.loaded } }
    var rejected: Int { counts.withLock { $0.rejected } }
}
