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

extension Configuration.Limits: Decodable {
    public init(from decoder: any Decoder) throws {
        let reader = try MappingReader(
            decoder,
            allowed: ["message_size", "result_size", "subscription_size", "subscriptions", "receive_queue", "rejections_per_second"]
        )
        self.init()
        messageBytes = try Self.size(reader, "message_size", messageBytes, minimum: 4096)
        resultBytes = try Self.size(reader, "result_size", resultBytes, minimum: 4096)
        subscriptionBytes = try Self.size(reader, "subscription_size", subscriptionBytes, minimum: 16)
        subscriptions = try Self.count(reader, "subscriptions", subscriptions, range: 1...1_000_000)
        receiveQueue = Int32(try Self.count(reader, "receive_queue", Int(receiveQueue), range: 1...1_000_000))
        rejectionsPerSecond = try Self.count(reader, "rejections_per_second", rejectionsPerSecond, range: 1...10_000)
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
