import Foundation
import Messaging
import Persistence
public import ServiceKit

/// The algorithm's hand-off: make a finished run's raw result durable and queue it for the processors,
/// then wake the sender. This is all the algorithm waits for before its next run; it never waits for a
/// processor.
///
/// Durable means: the file's SHA-256 computed, the file and its directory fsynced, the `.partial` renamed
/// to `.result`, and the outbox row committed in the same transaction as the run's `finished` state. A run of
/// several parts is made durable by one `syncfs` after all are renamed (``RawResults/sealAll(files:finals:keep:)``).
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

    /// What the algorithm left: its parts, sealed, and the hand-off's duration.
    public struct HandedOff: Sendable {
        /// The parts in order, each sealed under its final name.
        public var parts: [Outbox.StoredPart]
        /// How long sealing and committing took.
        public var duration: Duration
        /// What the pipeline did (the first stage's tasks created), for events.
        public var progress: [Outbox.StageProgress]
        /// All parts' bytes.
        public var size: Int { parts.reduce(0) { $0 + $1.digest.size } }
    }

    /// Hands off one run's result: the files in `outputDirectory` (in byte order of their names, one part each)
    /// if it holds any, else the file `partial` (one part).
    /// - Parameter committed: Called with what was handed off as soon as it is committed, before its tasks can be
    ///   sent (see ``RunLedger/finish(_:parts:now:committed:)``).
    public func handOff(
        runID: String,
        job: String,
        partial: String,
        outputDirectory: String,
        final: String,
        committed: (HandedOff) -> Void = { _ in }
    ) async throws -> HandedOff {
        let clock = ContinuousClock()
        let start = clock.now
        let files = try RawResults.outputFiles(in: outputDirectory)
        let sealed: [Outbox.StoredPart]
        if files.isEmpty {
            guard FileManager.default.fileExists(atPath: partial) else {
                throw StorageError(
                    "the algorithm succeeded but wrote no result to $BATON_OUTPUT (\(partial)) nor files in $BATON_OUTPUT_DIR"
                )
            }
            // Hashing and fsync of what may be gigabytes: on the blocking pool, never on the cooperative one.
            let seal = try await BlockingWork.shared.run {
                try RawResults.seal(partial: partial, final: final, keep: RawResults.keptInMemory)
            }
            sealed = [Outbox.StoredPart(path: final, digest: PartDigest(size: seal.size, sha256: seal.sha256), bytes: seal.bytes)]
        } else {
            if let attributes = try? FileManager.default.attributesOfItem(atPath: partial), (attributes[.size] as? Int ?? 0) > 0 {
                throw StorageError("the algorithm wrote both $BATON_OUTPUT and files in $BATON_OUTPUT_DIR: write one or the other")
            }
            try? FileManager.default.removeItem(atPath: partial)
            let targets = files.indices.map { RawResults.partPath(final: final, part: $0) }
            // Bytes kept only for the parts the fast path can take: a run of 10⁵ parts held them all for nothing.
            let seals = try await BlockingWork.shared.run {
                try RawResults.sealAll(files: files, finals: targets, keep: RawResults.keptInMemory, keepFirst: Outbox.freshLimit)
            }
            sealed = zip(targets, seals).map { target, seal in
                Outbox.StoredPart(path: target, digest: PartDigest(size: seal.size, sha256: seal.sha256), bytes: seal.bytes)
            }
        }
        try? FileManager.default.removeItem(atPath: outputDirectory)
        var handedOff: HandedOff?
        let progress = try await ledger.finish(runID, parts: sealed) { progress in
            let done = HandedOff(parts: sealed, duration: clock.now - start, progress: progress)
            committed(done)
            handedOff = done
        }
        doorbell.ring()
        return handedOff ?? HandedOff(parts: sealed, duration: clock.now - start, progress: progress)
    }
}
