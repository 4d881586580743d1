import NIOPosix

/// Where the algorithm's blocking file work runs: hashing, fsync and whole-file reads of results, which can
/// be gigabytes. Swift's cooperative pool has one thread per core (two here); a seal or a read held on it
/// would stall every other task of the service (the receivers, the sender, the status publisher) for as
/// long as the disk takes. NIO's blocking pool has threads made for waiting.
///
/// ```swift
/// let seal = try await BlockingWork.shared.run { try RawResults.seal(partial: partial, final: final) }
/// ```
public struct BlockingWork: Sendable {
    private let pool: NIOThreadPool

    /// The process-wide blocking pool (NIO's singleton: started once, never shut down).
    public static let shared = BlockingWork(pool: .singleton)

    /// Runs on a given, started pool (tests, or a service that owns its pool).
    /// - Parameter pool: A started thread pool.
    init(pool: NIOThreadPool) {
        self.pool = pool
    }

    /// Runs `body` on a pool thread and returns its result. A task cancelled before its work started gets a
    /// `CancellationError` and the work does not run; work that started runs to its end.
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await pool.runIfActive(body)
    }
}
