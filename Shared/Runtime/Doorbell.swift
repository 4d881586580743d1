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
}
