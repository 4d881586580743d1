public import Foundation
import Messaging
import Yams

extension Configuration {
    /// Loads a configuration file, applies environment overrides, and validates the result.
    /// - Parameters:
    ///   - path: The YAML file; `nil` starts from the defaults.
    ///   - environment: Variables that override the file (normally the process environment).
    /// - Throws: ``ConfigurationError`` naming the field and the problem.
    public static func load(
        path: String?,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(ConfigurationError) -> Configuration {
        var configuration = Configuration()
        if let path {
            let text: String
            do {
                text = try String(contentsOfFile: path, encoding: .utf8)
            } catch {
                throw ConfigurationError(source: path, field: "", problem: "cannot read the file (\(error.localizedDescription))")
            }
            configuration = try parse(yaml: text, source: path)
        }
        try configuration.applyOverrides(from: environment)
        try configuration.validate(source: path ?? "configuration")
        return configuration
    }

    /// Parses YAML text (without environment overrides or validation).
    public static func parse(yaml: String, source: String) throws(ConfigurationError) -> Configuration {
        if yaml.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { return Configuration() }
        do {
            return try YAMLDecoder().decode(Configuration.self, from: yaml)
        } catch {
            if let inner = ConfigurationError.wrapped(in: error) {
                throw ConfigurationError(source: source, field: inner.field, problem: inner.problem)
            }
            if let yaml = Self.yamlError(in: error) {
                throw ConfigurationError(source: source, field: "", problem: "not valid YAML: \(yaml)")
            }
            if let decoding = error as? DecodingError {
                throw ConfigurationError(source: source, field: "", problem: Wire.describe(decoding))
            }
            throw ConfigurationError(source: source, field: "", problem: "\(error)")
        }
    }

    private static func yamlError(in error: any Error) -> YamlError? {
        if let yaml = error as? YamlError { return yaml }
        if case .dataCorrupted(let context) = error as? DecodingError, let inner = context.underlyingError {
            return yamlError(in: inner)
        }
        return nil
    }

    /// An environment variable that overrides one setting.
    public struct Override: Sendable {
        /// The variable's name.
        public let variable: String
        /// The setting it overrides, as written in the file.
        public let key: String
        let apply: @Sendable (inout Configuration, String) -> Bool
    }

    /// Every environment variable Baton reads, in the order they are documented.
    public static let overrides: [Override] = [
        Override(variable: "BATON_DATA_DIR", key: "data_dir") {
            $0.dataDirectory = $1; return !$1.isEmpty
        },
        Override(variable: "BATON_ENDPOINT_RUNS", key: "endpoints.runs") {
            $0.endpoints.runs = $1; return true
        },
        Override(variable: "BATON_ENDPOINT_CONTROL", key: "endpoints.control") {
            $0.endpoints.control = $1; return true
        },
        Override(variable: "BATON_ENDPOINT_RESULTS", key: "endpoints.results") {
            $0.endpoints.results = $1; return true
        },
        Override(variable: "BATON_ENDPOINT_ACKS", key: "endpoints.acks") {
            $0.endpoints.acks = $1; return true
        },
        Override(variable: "BATON_ENDPOINT_STATUS_IN", key: "endpoints.status_in") {
            $0.endpoints.statusIn = $1; return true
        },
        Override(variable: "BATON_ENDPOINT_STATUS_OUT", key: "endpoints.status_out") {
            $0.endpoints.statusOut = $1; return true
        },
        Override(variable: "BATON_ENDPOINT_ALGORITHM_CONTROL", key: "endpoints.algorithm_control") {
            $0.endpoints.algorithmControl = $1; return true
        },
        Override(variable: "BATON_ENDPOINT_QUERY", key: "endpoints.query") {
            $0.endpoints.query = $1; return true
        },
        Override(variable: "BATON_ENDPOINT_REPORTS", key: "endpoints.reports") {
            $0.endpoints.reports = $1; return true
        },
        Override(variable: "BATON_STORE_PATH", key: "store.path") {
            $0.store.path = $1; return true
        },
        Override(variable: "BATON_PROCESSOR_COUNT", key: "processor.count") { config, text in
            guard let count = Int(text) else { return false }
            config.processor.count = count
            return true
        },
        Override(variable: "BATON_ALGORITHM_CONCURRENCY", key: "algorithm.concurrency") { config, text in
            guard let count = Int(text) else { return false }
            config.algorithm.concurrency = count
            return true
        },
        Override(variable: "BATON_LOG_LEVEL", key: "log.level") {
            $0.log.level = $1; return true
        },
        Override(variable: "BATON_METRICS_HOST", key: "metrics.host") {
            $0.metrics.host = $1; return true
        },
        Override(variable: "BATON_METRICS_PORT", key: "metrics.<this service>") {
            guard let port = Int($1) else { return false }
            $0.metrics.ownPort = port
            return true
        },
    ]

    /// Applies the environment variables in ``overrides`` that are set.
    public mutating func applyOverrides(from environment: [String: String]) throws(ConfigurationError) {
        for override in Self.overrides {
            guard let value = environment[override.variable] else { continue }
            guard override.apply(&self, value) else {
                throw ConfigurationError(source: "environment", field: override.variable, problem: "invalid value \"\(value)\"")
            }
        }
    }

    /// Text the operating system cannot take: a NUL in a path, an argument or an environment variable (C
    /// strings end there), or an environment variable's name that is empty or holds `=`.
    static func textProblems(_ configuration: Configuration) -> [(field: String, problem: String)] {
        var problems: [(field: String, problem: String)] = []
        let nul = "must not contain a NUL character"
        func command(_ field: String, argv: [String], workdir: String, env: [String: String]) {
            if argv.contains(where: { $0.contains("\0") }) { problems.append(("\(field).command", nul)) }
            if workdir.contains("\0") { problems.append(("\(field).workdir", nul)) }
            for (name, value) in env.sorted(by: { $0.key < $1.key }) {
                if name.isEmpty || name.contains("=") || name.contains("\0") {
                    problems.append(("\(field).env", "\"\(name)\" is not a variable name (not empty, no = or NUL)"))
                } else if value.contains("\0") {
                    problems.append(("\(field).env.\(name)", nul))
                }
            }
        }
        if configuration.dataDirectory.contains("\0") { problems.append(("data_dir", nul)) }
        if configuration.store.path.contains("\0") { problems.append(("store.path", nul)) }
        let processor = configuration.processor
        command("processor", argv: processor.command, workdir: processor.workingDirectory, env: processor.environment)
        for (index, job) in configuration.jobs.enumerated() {
            if case .command(let spec) = job.algorithm {
                command("jobs[\(index)]", argv: spec.argv, workdir: spec.workingDirectory, env: spec.environment)
            }
        }
        return problems
    }

    static func isIPv4(_ text: String) -> Bool {
        var address = in_addr()
        return inet_pton(AF_INET, text, &address) == 1
    }

    static let logLevels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]

    /// Checks values that parsing alone cannot.
    public func validate(source: String) throws(ConfigurationError) {
        func fail(_ field: String, _ problem: String) -> ConfigurationError {
            ConfigurationError(source: source, field: field, problem: problem)
        }
        guard !dataDirectory.isEmpty else { throw fail("data_dir", "must not be empty") }
        if let problem = Self.textProblems(self).first { throw fail(problem.field, problem.problem) }
        let endpointFields: [(String, String)] = [
            ("runs", endpoints.runs), ("control", endpoints.control), ("results", endpoints.results),
            ("acks", endpoints.acks), ("status_in", endpoints.statusIn), ("status_out", endpoints.statusOut),
            ("query", endpoints.query), ("reports", endpoints.reports), ("algorithm_control", endpoints.algorithmControl),
        ]
        for (name, endpoint) in endpointFields {
            guard ["tcp://", "ipc://", "inproc://"].contains(where: endpoint.hasPrefix), endpoint.count > 8 else {
                throw fail("endpoints.\(name)", "expected tcp://HOST:PORT or ipc:///PATH (got \"\(endpoint)\")")
            }
            if endpoint.hasPrefix("tcp://") {
                // libzmq takes the port modulo 65536 (tcp://host:99999 binds 34463): check it here.
                guard let colon = endpoint.lastIndex(of: ":"), let port = Int(endpoint[endpoint.index(after: colon)...]),
                    (1...65535).contains(port)
                else {
                    throw fail("endpoints.\(name)", "expected tcp://HOST:PORT with a port from 1 to 65535 (got \"\(endpoint)\")")
                }
            }
        }
        let bound = endpointFields.map(\.1)
        if let duplicate = bound.first(where: { endpoint in bound.filter { $0 == endpoint }.count > 1 }) {
            throw fail("endpoints", "\"\(duplicate)\" is used for two sockets")
        }
        guard (0...256).contains(processor.count) else { throw fail("processor.count", "must be from 0 to 256 (got \(processor.count))") }
        guard processor.timeout > .zero else { throw fail("processor.timeout", "must be more than 0") }
        guard processor.lease >= .milliseconds(100) else { throw fail("processor.lease", "must be at least 100ms") }
        guard (0...1000).contains(processor.retries) else {
            throw fail("processor.retries", "must be from 0 to 1000 retries after the first attempt (got \(processor.retries))")
        }
        guard processor.backoff > .zero, processor.backoffMax >= processor.backoff else {
            throw fail("processor.backoff_max", "must be at least processor.backoff, and both more than 0")
        }
        guard (1...256).contains(algorithm.concurrency) else {
            throw fail("algorithm.concurrency", "must be from 1 to 256 (got \(algorithm.concurrency))")
        }
        guard (1...256).contains(algorithm.backfillConcurrency) else {
            throw fail("algorithm.backfill_concurrency", "must be from 1 to 256 (got \(algorithm.backfillConcurrency))")
        }
        guard Self.logLevels.contains(log.level) else {
            throw fail("log.level", "must be one of \(Self.logLevels.joined(separator: ", ")) (got \"\(log.level)\")")
        }
        guard log.heartbeat >= .milliseconds(100), log.heartbeat <= .seconds(3600) else {
            throw fail("log.heartbeat", "must be from 100ms to 1h (got \(DurationText.format(log.heartbeat)))")
        }
        guard Self.isIPv4(metrics.host) else {
            throw fail("metrics.host", "expected an IPv4 address such as 127.0.0.1 or 0.0.0.0 (got \"\(metrics.host)\")")
        }
        for (name, port) in [
            ("logger", metrics.logger), ("scheduler", metrics.scheduler), ("algorithm", metrics.algorithm),
            ("processor", metrics.processor),
        ] where !(0...65535).contains(port) {
            throw fail("metrics.\(name)", "must be a TCP port from 1 to 65535, or 0 for none (got \(port))")
        }
        if let port = metrics.ownPort, !(0...65535).contains(port) {
            throw fail("metrics", "the service's own port must be from 1 to 65535, or 0 for none (got \(port))")
        }
        // Well below the fd limit (raised to the hard limit at start): ZeroMQ and the store need theirs.
        guard (1...4096).contains(metrics.maxConnections) else {
            throw fail("metrics.max_connections", "must be from 1 to 4096 (got \(metrics.maxConnections))")
        }
        guard (1024...(1 << 20)).contains(metrics.maxHeaderBytes) else {
            throw fail("metrics.max_header_bytes", "must be from 1KiB to 1MiB (got \(metrics.maxHeaderBytes) bytes)")
        }
        guard metrics.requestTimeout >= .milliseconds(100), metrics.requestTimeout <= .seconds(3600) else {
            throw fail("metrics.request_timeout", "must be from 100ms to 1h (got \(DurationText.format(metrics.requestTimeout)))")
        }
        var names: Set<String> = []
        for (index, job) in jobs.enumerated() {
            let field = "jobs[\(index)]"
            do {
                try JobName.validate(job.name, field: "name")
            } catch {
                throw fail("\(field).name", error.reason.replacingOccurrences(of: "field \"name\" ", with: ""))
            }
            guard names.insert(job.name).inserted else { throw fail("\(field).name", "another job is already named \"\(job.name)\"") }
            if case .interval(let every, _) = job.trigger, every < .milliseconds(10) {
                throw fail("\(field).every", "must be at least 10ms")
            }
            guard job.timeout > .zero else { throw fail("\(field).timeout", "must be more than 0") }
            guard (0...100).contains(job.retries) else { throw fail("\(field).retries", "must be from 0 to 100 (got \(job.retries))") }
            if case .demo(_, let size) = job.algorithm, !(0...(1 << 30)).contains(size) {
                throw fail("\(field).result_size", "must be from 0 to 1 GiB in bytes (got \(size))")
            }
        }
    }
}
