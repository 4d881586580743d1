public import Foundation

/// Blocking calls (sockets, `waitUntilExit`, polls of /proc) made by a test run on threads of their own: the
/// cooperative pool has only two threads on two cores, and every test of the run shares them.
public enum Blocking {
    /// Runs `body` on a thread of its own and returns its result.
    public static func onThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            Thread { continuation.resume(returning: body()) }.start()
        }
    }

    /// Runs `body` on `count` threads of their own at once; the results in the order of their index.
    public static func onThreads<T: Sendable>(_ count: Int, _ body: @escaping @Sendable (Int) -> T) async -> [T] {
        await withTaskGroup(of: (Int, T).self) { group in
            for index in 0..<count {
                group.addTask { (index, await onThread { body(index) }) }
            }
            var results: [(Int, T)] = []
            for await result in group { results.append(result) }
            return results.sorted { $0.0 < $1.0 }.map(\.1)
        }
    }
}
