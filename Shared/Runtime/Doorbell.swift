public import Foundation

/// Wakes a waiting loop when there is new work; rings while nobody waits are kept as one.
public final class Doorbell: Sendable {
    private let stream: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation

    /// Creates a doorbell.
    public init() {
        (stream, continuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// Signals new work.
    public func ring() {
        continuation.yield()
    }

    /// Waits for the next ring (or returns at once if one came since the last wait). Returns false if cancelled.
    public func wait() async -> Bool {
        var iterator = stream.makeAsyncIterator()
        return await iterator.next() != nil
    }

    /// Waits for the next ring, or until `deadline` (on the wall clock) passes, whichever comes first.
    /// Returns false if cancelled.
    public func wait(until deadline: Date?) async -> Bool {
        guard let deadline else { return await wait() }
        let delay = deadline.timeIntervalSinceNow
        if delay <= 0 { return !Task.isCancelled }
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask { await self.wait() }
            group.addTask {
                do {
                    try await Task.sleep(for: .microseconds(Int64(delay * 1_000_000) + 1))
                    return true
                } catch {
                    return false
                }
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first && !Task.isCancelled
        }
    }
}
