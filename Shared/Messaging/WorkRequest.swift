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
    /// A processor that stores many small tasks in one transaction (its store is the built-in one) asks for a
    /// batch: then the ask is answered by up to `batch` small tasks of the store stage (``isBatchable``), or by
    /// one task of any other kind, never by both. Absent: `credit` tasks of any kind.
    public var batch: Int?

    /// The most tasks one ask may take.
    public static let maxCredit = 1000

    /// Creates an ask.
    public init(processor: String, seq: UInt64, credit: Int = 1, batch: Int? = nil) {
        self.processor = processor
        self.seq = seq
        self.credit = credit
        self.batch = batch
    }

    /// The largest task sent in a batch: larger ones go alone, so a batch stays small in memory at both ends.
    public static let maxBatchedSize = 64 * 1024

    /// Whether a task may go in a batch: a part for the store (the default pipeline's one stage, or a pipeline's
    /// built-in `store`) of at most ``maxBatchedSize`` bytes. A processor asks for batches only when it stores
    /// with the built-in store, so such a task costs it a row in one shared transaction.
    public static func isBatchable(_ header: ResultHeader) -> Bool {
        header.size <= maxBatchedSize && (header.stage == nil || header.stage?.builtin == .store)
    }

    public func validate() throws(ProtocolError) {
        guard !processor.isEmpty, processor.utf8.count <= 200 else {
            throw ProtocolError(.field, "field \"processor\" must be 1 to 200 bytes")
        }
        guard seq >= 1 else { throw ProtocolError(.field, "field \"seq\" must be at least 1") }
        guard (1...Self.maxCredit).contains(credit) else {
            throw ProtocolError(.field, "field \"credit\" must be from 1 to \(Self.maxCredit) (got \(credit))")
        }
        if let batch, !(1...Self.maxCredit).contains(batch) {
            throw ProtocolError(.field, "field \"batch\" must be from 1 to \(Self.maxCredit) (got \(batch))")
        }
    }
}
