public import Foundation
public import Logging
public import Config
public import ServiceLifecycle
public import Storage

/// Deletes raw result files that retention allows: only results a processor has acknowledged, those older
/// than `retention.max_age`, then the oldest while the rest exceed `retention.max_size`. Runs at start-up
/// and every `interval`.
public struct RetentionSweeper: Service {
    private let retention: Configuration.Retention
    private let outbox: Outbox
    private let interval: Duration
    private let logger: Logger

    /// Creates the sweeper.
    public init(configuration: Configuration, outbox: Outbox, interval: Duration = .seconds(600), logger: Logger) {
        self.retention = configuration.retention
        self.outbox = outbox
        self.interval = interval
        self.logger = logger
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
                do { try await Task.sleep(for: interval) } catch { return }
            }
        }
    }

    /// One sweep; returns how many files were deleted.
    public func sweep(now: Date = Date()) async throws -> Int {
        let files = try await outbox.acknowledgedFiles().filter { FileManager.default.fileExists(atPath: $0.path) }
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
