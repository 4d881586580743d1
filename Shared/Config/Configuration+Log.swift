extension Configuration {
    /// Logging settings.
    public struct Log: Sendable, Equatable {
        /// Lowest level logged: trace, debug, info, notice, warning, error or critical.
        public var level = "info"
        /// The logger rotates `<data_dir>/logs/events.jsonl` at this size.
        public var maxBytes: Int64 = 64 << 20
        /// How many rotated event logs the logger keeps.
        public var keep = 5
        /// How often every service publishes `service.heartbeat`; one silent for three of these is shown down.
        public var heartbeat: Duration = .seconds(5)
        /// The logger keeps a run in its history (`baton runs`) for this long after it was last heard of.
        public var history: Duration = .seconds(90 * 86_400)
        /// Creates the default log settings.
        public init() {}
    }

    static let logLevels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
}

extension Configuration.Log: ConfigurationSection, Decodable {
    static let settings: [Setting<Self>] = [
        .text("level", \.level, env: "BATON_LOG_LEVEL") { level in
            let levels = Configuration.logLevels
            return levels.contains(level) ? nil : "must be one of \(levels.joined(separator: ", ")) (got \"\(level)\")"
        },
        .custom("max_size") { reader, log in
            guard reader.has("max_size") else { return }
            let text = try reader.value("max_size", "")
            guard let bytes = ByteCount.parse(text), bytes >= 1024 else {
                throw ConfigurationError(
                    source: "",
                    field: reader.field("max_size"),
                    problem: "expected a size of at least 1KiB, e.g. 64MiB (got \"\(text)\")"
                )
            }
            log.maxBytes = bytes
        },
        .value("keep", \.keep),
        .duration("history", \.history) { history in
            history >= .seconds(3600) ? nil : "must be at least 1h (got \(DurationText.format(history)))"
        },
        .duration("heartbeat", \.heartbeat) { heartbeat in
            heartbeat >= .milliseconds(100) && heartbeat <= .seconds(3600)
                ? nil : "must be from 100ms to 1h (got \(DurationText.format(heartbeat)))"
        },
    ]

    public init(from decoder: any Decoder) throws {
        try self.init(reading: decoder)
    }
}
