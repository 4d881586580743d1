extension Configuration {
    /// Algorithm service settings.
    public struct Algorithm: Sendable, Equatable {
        /// How many live runs (scheduled and manual) may execute at once.
        public var concurrency = 1
        /// How many backfilled runs may execute at once, in their own lane beside the live runs.
        public var backfillConcurrency = 1
        /// On SIGTERM, how long to wait for running runs to finish before stopping them (a second signal
        /// stops them at once). A run stopped is run again at the next start.
        public var drain: Duration = .seconds(30)
        /// Creates the default algorithm settings.
        public init() {}
    }

    /// Raw result retention. Only results already stored by a processor are ever deleted.
    public struct Retention: Sendable, Equatable {
        /// Delete raw results acknowledged longer ago than this; `nil` keeps them regardless of age.
        public var maxAge: Duration? = .seconds(30 * 86_400)
        /// Delete the oldest acknowledged raw results while all of them together exceed this many bytes.
        public var maxBytes: Int64? = nil
        /// Creates the default retention: 30 days, no size limit.
        public init() {}
    }
}

extension Configuration.Algorithm: ConfigurationSection, Decodable {
    static let settings: [Setting<Self>] = [
        .count("concurrency", \.concurrency, env: "BATON_ALGORITHM_CONCURRENCY", range: 1...256),
        .count("backfill_concurrency", \.backfillConcurrency, range: 1...256),
        .duration("drain", \.drain),
    ]

    public init(from decoder: any Decoder) throws {
        try self.init(reading: decoder)
    }
}

extension Configuration.Retention: ConfigurationSection, Decodable {
    static let settings: [Setting<Self>] = [
        .custom("max_age") { reader, retention in
            guard reader.has("max_age") else { return }
            let text = try reader.value("max_age", "")
            retention.maxAge = text == "forever" ? nil : try reader.duration("max_age", .zero)
        },
        .custom("max_size") { reader, retention in
            guard reader.has("max_size") else { return }
            let text = try reader.value("max_size", "")
            guard let bytes = ByteCount.parse(text) else {
                throw ConfigurationError(
                    source: "",
                    field: reader.field("max_size"),
                    problem: "expected a size such as 500MiB, 10GiB or a number of bytes (got \"\(text)\")"
                )
            }
            retention.maxBytes = bytes
        },
    ]

    public init(from decoder: any Decoder) throws {
        try self.init(reading: decoder)
    }
}
