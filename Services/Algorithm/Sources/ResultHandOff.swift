public import Foundation
public import Messaging
import Persistence
public import ServiceKit

/// The algorithm's hand-off: make a finished run's raw result durable and queue it for the processors,
/// then wake the sender. This is all the algorithm waits for before its next run; it never waits for a
/// processor.
///
/// Durable means: the file's SHA-256 computed, the file and its directory fsynced, the `.partial` renamed
/// to `.result`, and the outbox row committed in the same transaction as the run's `finished` state.
public struct ResultHandOff: Sendable {
    private let ledger: RunLedger
    private let doorbell: Doorbell

    /// Creates the hand-off.
    /// - Parameters:
    ///   - ledger: The run ledger (and, through it, the outbox).
    ///   - doorbell: The sender's doorbell, rung once the result is queued.
    public init(ledger: RunLedger, doorbell: Doorbell) {
        self.ledger = ledger
        self.doorbell = doorbell
    }

    /// Hands off one run's result, written to `partial`; returns the sealed file's size and digest and how
    /// long the hand-off took.
    public func handOff(
        runID: String,
        job: String,
        logicalTime: Date,
        partial: String,
        final: String
    ) async throws -> (seal: RawResults.Seal, duration: Duration) {
        let clock = ContinuousClock()
        let start = clock.now
        guard FileManager.default.fileExists(atPath: partial) else {
            throw StorageError("the algorithm succeeded but wrote no result to $BATON_OUTPUT (\(partial))")
        }
        // Hashing and fsync of what may be gigabytes: on the blocking pool, never on the cooperative one.
        let seal = try await BlockingWork.shared.run { try RawResults.seal(partial: partial, final: final) }
        let header = ResultHeader(runID: runID, job: job, logicalTime: logicalTime, size: seal.size, sha256: seal.sha256)
        try await ledger.finish(runID, outbox: [.init(header: header, path: final)])
        doorbell.ring()
        return (seal, clock.now - start)
    }
}
