import Foundation
import Messaging
import Config
import Testing

struct ConfigurationTests {
    @Test func fullFileParses() throws {
        let yaml = """
            data_dir: /var/lib/baton
            endpoints:
              runs: ipc:///tmp/runs.sock
            store:
              path: /var/lib/baton/r.sqlite
            processor:
              count: 3
              command: [python3, store.py]
              input: file
              timeout: 90s
              lease: 10s
              retries: 7
              backoff: 500ms
              backoff_max: 1m
            retention:
              max_age: 7d
              max_size: 10GiB
            algorithm:
              concurrency: 2
            log:
              level: debug
            jobs:
              - name: hourly
                every: 1h
                anchor: 2026-01-01T00:05:00Z
                command: [python3, algo.py, --fast]
                env: {MODE: prod}
                timeout: 55m
                retries: 2
              - name: demo
                every: 10s
                builtin: demo
                duration: 500ms
                result_size: 1024
            """
        let config = try Configuration.parse(yaml: yaml, source: "t.yaml")
        try config.validate(source: "t.yaml")
        #expect(config.dataDirectory == "/var/lib/baton")
        #expect(config.endpoints.runs == "ipc:///tmp/runs.sock")
        #expect(config.endpoints.results == Configuration.Endpoints().results)
        #expect(config.processor.count == 3)
        #expect(config.processor.input == .file)
        #expect(config.processor.timeout == .seconds(90))
        #expect(config.processor.lease == .seconds(10))
        #expect(config.processor.retries == 7)
        #expect(config.processor.backoff == .milliseconds(500))
        #expect(config.processor.backoffMax == .seconds(60))
        #expect(config.retention.maxAge == .seconds(7 * 86_400))
        #expect(config.retention.maxBytes == Int64(10) * 1_073_741_824)
        #expect(config.jobs[0].retries == 2)
        #expect(config.jobs.count == 2)
        #expect(config.jobs[0].trigger == .interval(every: .seconds(3600), anchor: Timestamp.parse("2026-01-01T00:05:00Z")!))
        #expect(config.jobs[0].timeout == .seconds(3300))
        #expect(config.jobs[0].algorithm == .command(.init(argv: ["python3", "algo.py", "--fast"], environment: ["MODE": "prod"])))
        #expect(config.jobs[1].algorithm == .demo(duration: .milliseconds(500), resultSize: 1024))
    }

    @Test(arguments: [
        ("jobs:\n  - name: a\n    every: ten\n    builtin: demo\n", "jobs[0].every", "expected a duration"),
        ("jobs:\n  - name: a\n    every: 1s\n", "jobs[0].command", "needs an algorithm"),
        ("jobs:\n  - name: a\n    every: 1s\n    builtin: demo\n    colour: red\n", "jobs[0].colour", "unknown option"),
        ("processor:\n  count: many\n", "processor.count", "whole number"),
        ("processor:\n  input: pipe\n", "processor.input", "stdin or file"),
        ("endpoints:\n  runs: localhost:5\n", "endpoints.runs", "tcp://"),
        ("log:\n  level: loud\n", "log.level", "must be one of"),
        ("jobs:\n  - name: a b\n    every: 1s\n    builtin: demo\n", "jobs[0].name", "letters"),
        ("jobs:\n  - name: .hidden\n    every: 1s\n    builtin: demo\n", "jobs[0].name", "starting with a letter or digit"),
        ("jobs:\n  - name: \"-x\"\n    every: 1s\n    builtin: demo\n", "jobs[0].name", "starting with a letter or digit"),
        ("jobs:\n  - name: a/b\n    every: 1s\n    builtin: demo\n", "jobs[0].name", "letters"),
        ("jobs:\n  - name: \"a\\u0007b\"\n    every: 1s\n    builtin: demo\n", "jobs[0].name", "letters"),
        ("jobs:\n  - name: \"\"\n    every: 1s\n    builtin: demo\n", "jobs[0].name", "letters"),
        ("jobs:\n  - name: a@b\n    every: 1s\n    builtin: demo\n", "jobs[0].name", "letters"),
        ("jobs:\n  - name: \(String(repeating: "n", count: 129))\n    every: 1s\n    builtin: demo\n", "jobs[0].name", "1 to 128"),
        ("jobs:\n  - {name: a, every: 1s, builtin: demo}\n  - {name: a, every: 2s, builtin: demo}\n", "jobs[1].name", "already"),
        ("jobs: [\n", "", "not valid YAML"),
        ("retention:\n  max_size: lots\n", "retention.max_size", "expected a size"),
        ("processor:\n  retries: -1\n", "processor.retries", "from 0 to 1000"),
        ("metrics:\n  host: localhost\n", "metrics.host", "IPv4"),
        ("metrics:\n  processor: 70000\n", "metrics.processor", "TCP port"),
        ("metrics:\n  prometheus: 1\n", "metrics.prometheus", "unknown option"),
        ("metrics:\n  max_connections: 0\n", "metrics.max_connections", "from 1 to 4096"),
        ("metrics:\n  max_header_bytes: lots\n", "metrics.max_header_bytes", "expected a size"),
        ("metrics:\n  max_header_bytes: 2MiB\n", "metrics.max_header_bytes", "from 1KiB to 1MiB"),
        ("metrics:\n  request_timeout: 10ms\n", "metrics.request_timeout", "from 100ms"),
        ("log:\n  heartbeat: 10ms\n", "log.heartbeat", "from 100ms"),
        ("log:\n  history: 30m\n", "log.history", "at least 1h"),
        ("alerts:\n  webhook: ftp://x/y\n", "alerts.webhook", "http:// or https://"),
        ("alerts:\n  webhook: http:///nohost\n", "alerts.webhook", "with a host"),
        ("alerts:\n  on: [run.failed, run.exploded]\n", "alerts.on", "unknown kind \"run.exploded\""),
        ("alerts:\n  headers: {\"Bad Name\": x}\n", "alerts.headers", "not an HTTP header name"),
        ("alerts:\n  headers: {X-A: \"a\\r\\nX-B: b\"}\n", "alerts.headers", "line break"),
        ("alerts:\n  retries: 101\n", "alerts.retries", "from 0 to 100"),
        ("alerts:\n  timeout: 1ms\n", "alerts.timeout", "at least 100ms"),
        ("web:\n  token: short\n", "web.token", "at least 16 characters"),
        ("web:\n  enabled: true\n", "web.token", "required when the web view is on and CURVE is"),
        // Durations too large to hold: an error naming the field, not a crash (SIGILL in Int64(_:)).
        ("jobs:\n  - name: a\n    every: 99999999999999999999d\n    builtin: demo\n", "jobs[0].every", "expected a duration"),
        ("jobs:\n  - name: a\n    every: 1s\n    builtin: demo\n    timeout: 1e300\n", "jobs[0].timeout", "expected a duration"),
        ("processor:\n  lease: 9999999999999h1s\n", "processor.lease", "expected a duration"),
        ("endpoints:\n  runs: tcp://127.0.0.1:99999\n", "endpoints.runs", "from 1 to 65535"),
        ("endpoints:\n  runs: tcp://127.0.0.1\n", "endpoints.runs", "from 1 to 65535"),
        // env values are strings (numbers are taken as text); a list, a mapping or null is refused by name.
        ("processor:\n  env: {A: [1, 2]}\n", "processor.env.A", "not a list or a mapping"),
        ("jobs:\n  - name: a\n    every: 1s\n    command: [sh]\n    env: {B: {c: d}}\n", "jobs[0].env.B", "not a list or a mapping"),
        ("processor:\n  env: {A: ~}\n", "processor.env.A", "not null"),
        ("processor:\n  env: [A, B]\n", "processor.env", "mapping of names"),
        ("processor:\n  env: {\"A=B\": x}\n", "processor.env", "not a variable name"),
        // Numbers Yams would overflow on (sexagesimal, too many digits): an error, not a trap.
        ("processor:\n  count: 1:0:0:0:0:0:0:0:0:0:0:0\n", "processor.count", "whole number"),
        ("algorithm:\n  concurrency: 99999999999999999999\n", "algorithm.concurrency", "whole number"),
        ("metrics:\n  logger: [1]\n", "metrics.logger", "whole number"),
        ("retention:\n  max_size: 99999999999999999999999TiB\n", "retention.max_size", "expected a size"),
        ("log:\n  max_size: 1e400\n", "log.max_size", "at least 1KiB"),
        ("data_dir: \"/tmp/a\\0b\"\n", "data_dir", "NUL"),
        ("jobs:\n  - name: a\n    every: 1s\n    command: [\"sh\\0\"]\n", "jobs[0].command", "NUL"),
    ])
    func badValuesNameTheirField(yaml: String, field: String, problem: String) throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("baton-\(UUID().uuidString).yaml").path
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let error = #expect(throws: ConfigurationError.self) { try Configuration.load(path: path, environment: [:]) }
        #expect(error?.field == field)
        #expect(error?.problem.contains(problem) == true, "\(String(describing: error))")
        #expect(error?.source == path)
    }

    @Test func envNumbersAndBooleansAreTakenAsText() throws {
        let config = try Configuration.parse(yaml: "processor:\n  env: {A: 1, B: true, C: 1.50, D: \"\"}\n", source: "t")
        #expect(config.processor.environment == ["A": "1", "B": "true", "C": "1.50", "D": ""])
    }

    @Test func environmentOverridesTheFile() throws {
        var config = try Configuration.parse(yaml: "data_dir: /a\nprocessor:\n  count: 1\n", source: "t")
        try config.applyOverrides(from: ["BATON_DATA_DIR": "/b", "BATON_PROCESSOR_COUNT": "4", "BATON_ENDPOINT_RUNS": "ipc:///x"])
        #expect(config.dataDirectory == "/b")
        #expect(config.processor.count == 4)
        #expect(config.endpoints.runs == "ipc:///x")
        #expect(throws: ConfigurationError.self) { try config.applyOverrides(from: ["BATON_PROCESSOR_COUNT": "x"]) }
    }

    @Test func metricsPortsAndHeartbeat() throws {
        var config = try Configuration.parse(
            yaml: "metrics:\n  host: 0.0.0.0\n  processor: 9100\n  logger: 0\nlog:\n  heartbeat: 2s\n  history: 30d\n",
            source: "t"
        )
        #expect(config.metrics.host == "0.0.0.0")
        #expect(config.metrics.port(\.processor) == 9100)
        #expect(config.metrics.port(\.logger) == 0)
        #expect(config.metrics.port(\.scheduler) == 7611)
        #expect(config.log.heartbeat == .seconds(2))
        #expect(config.log.history == .seconds(30 * 86_400))
        #expect(Configuration().log.history == .seconds(90 * 86_400))
        try config.applyOverrides(from: ["BATON_METRICS_PORT": "9200", "BATON_METRICS_HOST": "10.0.0.1"])
        #expect(config.metrics.port(\.scheduler) == 9200)
        #expect(config.metrics.host == "10.0.0.1")
        #expect(throws: ConfigurationError.self) { try config.applyOverrides(from: ["BATON_METRICS_PORT": "x"]) }
    }

    @Test func metricsLimits() throws {
        let defaults = try Configuration.parse(yaml: "data_dir: /a\n", source: "t")
        #expect(defaults.metrics.maxConnections == 256)
        #expect(defaults.metrics.maxHeaderBytes == 16 * 1024)
        #expect(defaults.metrics.requestTimeout == .seconds(10))
        let config = try Configuration.parse(
            yaml: "metrics:\n  max_connections: 64\n  max_header_bytes: 8KiB\n  request_timeout: 2s\n",
            source: "t"
        )
        #expect(config.metrics.maxConnections == 64)
        #expect(config.metrics.maxHeaderBytes == 8192)
        #expect(config.metrics.requestTimeout == .seconds(2))
    }

    @Test func missingFileIsReported() {
        let error = #expect(throws: ConfigurationError.self) { try Configuration.load(path: "/no/such/baton.yaml", environment: [:]) }
        #expect(error?.description.contains("cannot read") == true)
    }

    @Test(arguments: [("10s", 10_000), ("500ms", 500), ("1h30m", 5_400_000), ("2", 2000), ("0.5", 500), ("1d", 86_400_000)])
    func durationsParse(text: String, milliseconds: Int64) {
        #expect(DurationText.parse(text) == .milliseconds(milliseconds))
    }

    @Test(arguments: ["", "ten", "10x", "s", "-1s", "1h 30m"])
    func badDurationsDoNotParse(text: String) {
        #expect(DurationText.parse(text) == nil)
    }
}
