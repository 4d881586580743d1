import Foundation

extension Configuration {
    /// Bounds on what peers may send, so that no input can make a service's memory grow without limit.
    ///
    /// Every socket that receives from peers refuses messages (any one frame) larger than its size limit:
    /// libzmq drops the connection that sent it. Each peer's incoming queue holds at most ``receiveQueue``
    /// messages, so one peer can hold at most `receiveQueue × message_size` bytes in a receiver.
    public struct Limits: Sendable, Equatable {
        /// The largest frame on `control`, `query`, `reports`, `acks`, `runs` and `status_in`.
        public var messageBytes: Int64 = 1 << 20
        /// The largest frame on `results`: a result carries its whole raw result file in one frame.
        public var resultBytes: Int64 = 2 << 30
        /// The largest subscription a `status_out` subscriber may send (topics are short prefixes).
        public var subscriptionBytes: Int64 = 1024
        /// The most distinct subscriptions `status_out` holds; past it the logger drops every subscriber
        /// (they reconnect and subscribe again) rather than grow.
        public var subscriptions = 1000
        /// Incoming queue per peer, in messages, on the sockets that do not take one message at a time.
        public var receiveQueue: Int32 = 1000
        /// `message.rejected` events per second per socket; more are counted and summarised.
        public var rejectionsPerSecond = 10
        /// Creates the default limits.
        public init() {}
    }
}

extension Configuration.Limits: ConfigurationSection, Decodable {
    // Checked as they are read: no environment variable overrides them.
    static let settings: [Setting<Self>] = [
        .custom("message_size") { reader, limits in
            limits.messageBytes = try size(reader, "message_size", limits.messageBytes, minimum: 4096)
        },
        .custom("result_size") { reader, limits in limits.resultBytes = try size(reader, "result_size", limits.resultBytes, minimum: 4096)
        },
        .custom("subscription_size") { reader, limits in
            limits.subscriptionBytes = try size(reader, "subscription_size", limits.subscriptionBytes, minimum: 16)
        },
        .custom("subscriptions") { reader, limits in
            limits.subscriptions = try count(reader, "subscriptions", limits.subscriptions, range: 1...1_000_000)
        },
        .custom("receive_queue") { reader, limits in
            limits.receiveQueue = Int32(try count(reader, "receive_queue", Int(limits.receiveQueue), range: 1...1_000_000))
        },
        .custom("rejections_per_second") { reader, limits in
            limits.rejectionsPerSecond = try count(reader, "rejections_per_second", limits.rejectionsPerSecond, range: 1...10_000)
        },
    ]

    public init(from decoder: any Decoder) throws {
        try self.init(reading: decoder)
    }

    private static func size(_ reader: MappingReader, _ key: String, _ fallback: Int64, minimum: Int64) throws -> Int64 {
        guard reader.has(key) else { return fallback }
        let text = try reader.value(key, "")
        guard let bytes = ByteCount.parse(text), bytes >= minimum, bytes <= 1 << 40 else {
            throw ConfigurationError(
                source: "",
                field: reader.field(key),
                problem: "expected a size from \(minimum) bytes to 1TiB, e.g. 1MiB (got \"\(text)\")"
            )
        }
        return bytes
    }

    private static func count(_ reader: MappingReader, _ key: String, _ fallback: Int, range: ClosedRange<Int>) throws -> Int {
        let value = try reader.value(key, fallback)
        guard range.contains(value) else {
            throw ConfigurationError(
                source: "",
                field: reader.field(key),
                problem: "must be from \(range.lowerBound) to \(range.upperBound) (got \(value))"
            )
        }
        return value
    }
}
