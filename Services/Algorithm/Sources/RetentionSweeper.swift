public import Foundation
public import Logging
public import Config
public import ServiceLifecycle

/// Deletes raw result files that retention allows: only results a processor has acknowledged, those older
/// than `retention.max_age`, then the oldest while the rest exceed `retention.max_size`. Runs at start-up
/// and every `interval`.
public struct RetentionSweeper: Service {
    private let retention: Configuration.Retention
    private let outbox: Outbox
    private let interval: Duration
    private let logger: Logger
    private let clock: any Clock<Duration>

    /// Creates the sweeper.
    /// - Parameters:
    ///   - configuration: Its `retention` section.
    ///   - outbox: Which raw results were acknowledged, and when.
    ///   - interval: The time between sweeps.
    ///   - logger: The logger.
    ///   - clock: What the time between sweeps is waited on.
    public init(
        configuration: Configuration,
        outbox: Outbox,
        interval: Duration = .seconds(600),
        logger: Logger,
        clock: any Clock<Duration> = ContinuousClock()
    ) {
        self.retention = configuration.retention
        self.outbox = outbox
        self.interval = interval
        self.logger = logger
        self.clock = clock
    }

    public func run() async throws {
        guard retention.maxAge != nil || retention.maxBytes != nil else {
            // Nothing to sweep; a service that returns would stop the whole group.
            try? await gracefulShutdown()
            return
        }
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    let removed = try await sweep()
                    if removed > 0 { logger.info("retention removed raw results", metadata: ["files": "\(removed)"]) }
                } catch {
                    logger.error("retention sweep failed", metadata: ["error": "\(error)"])
                }
                do { try await clock.sleep(for: interval) } catch { return }
            }
        }
    }

    /// One sweep; returns how many files were deleted.
    public func sweep(now: Date = Date()) async throws -> Int {
        let acknowledged = try await outbox.acknowledgedFiles()
        let retention = retention
        // A look at every acknowledged file still kept and the removal of many: on the blocking pool.
        let outcome = try await BlockingWork.shared.run { Self.remove(acknowledged, retention: retention, now: now) }
        // Those gone are not looked at again (also when a removal failed half-way: marked up to it).
        try await outbox.markRawRemoved(outcome.gone)
        if let error = outcome.error { throw error }
        return outcome.removed
    }

    /// Removes the files retention lets go, oldest acknowledged first; returns how many, and the tasks whose
    /// files are gone now (removed here, or already missing).
    private static func remove(
        _ acknowledged: [(seq: Int64, path: String, size: Int, ackedAt: Date)],
        retention: Configuration.Retention,
        now: Date
    ) -> (removed: Int, gone: [Int64], error: (any Error)?) {
        var gone: [Int64] = []
        let files = acknowledged.filter { file in
            let exists = FileManager.default.fileExists(atPath: file.path)
            if !exists { gone.append(file.seq) }
            return exists
        }
        var total = files.reduce(Int64(0)) { $0 + Int64($1.size) }
        var removed = 0
        for file in files {
            let tooOld = retention.maxAge.map { now.timeIntervalSince(file.ackedAt) > $0 / .seconds(1) } ?? false
            let tooBig = retention.maxBytes.map { total > $0 } ?? false
            guard tooOld || tooBig else { continue }
            do {
                try FileManager.default.removeItem(atPath: file.path)
            } catch {
                return (removed, gone, error)
            }
            gone.append(file.seq)
            total -= Int64(file.size)
            removed += 1
        }
        return (removed, gone, nil)
    }
}
