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
        // A look at every acknowledged file and the removal of many: on the blocking pool.
        return try await BlockingWork.shared.run { try Self.remove(acknowledged, retention: retention, now: now) }
    }

    /// Removes the files retention lets go, oldest acknowledged first; returns how many.
    private static func remove(
        _ acknowledged: [(runID: String, part: Int, path: String, size: Int, ackedAt: Date)],
        retention: Configuration.Retention,
        now: Date
    ) throws -> Int {
        let files = acknowledged.filter { FileManager.default.fileExists(atPath: $0.path) }
        var total = files.reduce(Int64(0)) { $0 + Int64($1.size) }
        var removed = 0
        for file in files {
            let tooOld = retention.maxAge.map { now.timeIntervalSince(file.ackedAt) > $0 / .seconds(1) } ?? false
            let tooBig = retention.maxBytes.map { total > $0 } ?? false
            guard tooOld || tooBig else { continue }
            try FileManager.default.removeItem(atPath: file.path)
            total -= Int64(file.size)
            removed += 1
        }
        return removed
    }
}
