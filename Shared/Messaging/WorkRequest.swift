/// Processor → algorithm, on `results`: "I can take `credit` more tasks now". The algorithm hands a task only
/// to a processor that asked (credit-based hand-out), so a processor never holds tasks it has not started on:
/// one that dies loses none, and one that connects late gets its share.
///
/// Asking again is safe: an ask is numbered (`seq`, rising per processor), and the algorithm answers each number
/// once, so a processor re-sends its open ask after a reconnect (or every few seconds while it waits) without
/// being sent more than it asked for. A higher number replaces the credit left of a lower one.
public struct WorkRequest: WireMessage, Equatable {
    public static let kind = "ready"

    /// The processor instance asking, for logs and status.
    public var processor: String
    /// The ask's number, from 1, rising with each new ask of this processor.
    public var seq: UInt64
    /// How many tasks it takes now, from 1 to ``maxCredit``.
    public var credit: Int

    /// The most tasks one ask may take.
    public static let maxCredit = 1000

    /// Creates an ask.
    public init(processor: String, seq: UInt64, credit: Int = 1) {
        self.processor = processor
        self.seq = seq
        self.credit = credit
    }

    public func validate() throws(ProtocolError) {
        guard !processor.isEmpty, processor.utf8.count <= 200 else {
            throw ProtocolError(.field, "field \"processor\" must be 1 to 200 bytes")
        }
        guard seq >= 1 else { throw ProtocolError(.field, "field \"seq\" must be at least 1") }
        guard (1...Self.maxCredit).contains(credit) else {
            throw ProtocolError(.field, "field \"credit\" must be from 1 to \(Self.maxCredit) (got \(credit))")
        }
    }
}
