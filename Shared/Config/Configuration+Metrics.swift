import Glibc

extension Configuration {
    /// The HTTP endpoint of each service: Prometheus `/metrics` and `/healthz`. Port 0 turns it off.
    ///
    /// Each service's port is a key of its own in the file (`logger`, `scheduler` …): which one a service
    /// listens on is the service's to say (its `ServiceDescription`), through ``port(_:)``.
    public struct Metrics: Sendable, Equatable {
        /// The IPv4 address listened on; `0.0.0.0` for every interface (in containers).
        public var host = "127.0.0.1"
        /// The logger's port.
        public var logger = 7610
        /// The scheduler's port.
        public var scheduler = 7611
        /// The algorithm service's port.
        public var algorithm = 7612
        /// A processor's port; `baton up` gives its processor N the port `processor + N - 1`.
        public var processor = 7613
        /// This process's own port, whatever its service (`--metrics-port`, `BATON_METRICS_PORT`); not in the file.
        public var ownPort: Int?
        /// Open HTTP connections at most; when full, the one idle the longest is closed for a new one.
        public var maxConnections = 256
        /// Bytes of request line and headers at most; a request over it gets 400 and a close.
        public var maxHeaderBytes = 16 * 1024
        /// How long a connection may take to send a request and read the answer, or sit idle between requests.
        public var requestTimeout: Duration = .seconds(10)
        /// Creates the default metrics settings.
        public init() {}

        /// The port a service listens on: this process's own port if one was given, else the one configured for
        /// the service (e.g. `\.scheduler`).
        public func port(_ configured: KeyPath<Metrics, Int>) -> Int {
            ownPort ?? self[keyPath: configured]
        }
    }

    static func isIPv4(_ text: String) -> Bool {
        var address = in_addr()
        return inet_pton(AF_INET, text, &address) == 1
    }
}

extension Configuration.Metrics: ConfigurationSection, Decodable {
    static let settings: [Setting<Self>] = [
        .text("host", \.host, env: "BATON_METRICS_HOST") { host in
            Configuration.isIPv4(host) ? nil : "expected an IPv4 address such as 127.0.0.1 or 0.0.0.0 (got \"\(host)\")"
        },
        .value("logger", \.logger, check: checkPort),
        .value("scheduler", \.scheduler, check: checkPort),
        .value("algorithm", \.algorithm, check: checkPort),
        .value("processor", \.processor, check: checkPort),
        // Not in the file: the variable names the port of whichever service reads it.
        Setting(
            key: nil,
            read: { _, _ in },
            overrides: [
                EnvironmentOverride(variable: "BATON_METRICS_PORT", key: "<this service>") { metrics, text in
                    guard let port = Int(text) else { return false }
                    metrics.ownPort = port
                    return true
                }
            ],
            problem: { metrics in
                guard let port = metrics.ownPort, !(0...65535).contains(port) else { return nil }
                return ("", "the service's own port must be from 1 to 65535, or 0 for none (got \(port))")
            }
        ),
        // Well below the fd limit (raised to the hard limit at start): ZeroMQ and the store need theirs.
        .count("max_connections", \.maxConnections, range: 1...4096),
        .custom(
            "max_header_bytes",
            read: { reader, metrics in
                guard reader.has("max_header_bytes") else { return }
                let text = try reader.value("max_header_bytes", "")
                guard let bytes = ByteCount.parse(text), bytes <= Int64(Int32.max) else {
                    throw ConfigurationError(
                        source: "",
                        field: reader.field("max_header_bytes"),
                        problem: "expected a size such as 16KiB or a number of bytes (got \"\(text)\")"
                    )
                }
                metrics.maxHeaderBytes = Int(bytes)
            },
            check: { metrics in
                (1024...(1 << 20)).contains(metrics.maxHeaderBytes)
                    ? nil : "must be from 1KiB to 1MiB (got \(metrics.maxHeaderBytes) bytes)"
            }
        ),
        .duration("request_timeout", \.requestTimeout) { timeout in
            timeout >= .milliseconds(100) && timeout <= .seconds(3600)
                ? nil : "must be from 100ms to 1h (got \(DurationText.format(timeout)))"
        },
    ]

    @Sendable private static func checkPort(_ port: Int) -> String? {
        (0...65535).contains(port) ? nil : "must be a TCP port from 1 to 65535, or 0 for none (got \(port))"
    }

    public init(from decoder: any Decoder) throws {
        try self.init(reading: decoder)
    }
}
