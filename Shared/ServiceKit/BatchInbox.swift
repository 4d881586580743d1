public import Foundation
import Synchronization

/// A queue between a task that receives and a task that works in batches: the receiver puts, the worker takes
/// whatever has arrived (waiting only for the first). Used where one commit serves many messages: the ack
/// receiver's group commit, a processor's batch of small tasks.
public final class BatchInbox<Element: Sendable>: Sendable {
    private let state = Mutex<(elements: [Element], closed: Bool)>(([], false))
    private let bell = Doorbell()

    public init() {}

    /// Adds an element and wakes the taker.
    public func put(_ element: Element) {
        state.withLock { $0.elements.append(element) }
        bell.ring()
    }

    /// Adds an element and wakes the taker, unless `limit` elements are waiting already; returns whether it was
    /// added. For a taker that may fall behind a producer that must never wait.
    public func put(_ element: Element, limit: Int) -> Bool {
        let added = state.withLock { state in
            guard state.elements.count < limit else { return false }
            state.elements.append(element)
            return true
        }
        if added { bell.ring() }
        return added
    }

    /// No more elements will come: the taker gets what is left, then nil.
    public func close() {
        state.withLock { $0.closed = true }
        bell.ring()
    }

    /// How many elements wait, and whether ``close()`` was called.
    public var waiting: (count: Int, closed: Bool) { state.withLock { ($0.elements.count, $0.closed) } }

    /// Everything that arrived and was not taken, without waiting (e.g. to hand it back when stopping).
    public func drain() -> [Element] {
        state.withLock { state in
            defer { state.elements.removeAll() }
            return state.elements
        }
    }

    /// Up to `limit` of what arrived so far, oldest first (waiting for the first); nil once closed and empty, or
    /// cancelled.
    public func take(limit: Int = .max) async -> [Element]? {
        await take(limit: limit, until: nil)
    }

    /// As ``take(limit:)``, but waiting only until `deadline`: then an empty batch.
    public func take(limit: Int = .max, until deadline: Date?) async -> [Element]? {
        while true {
            let (batch, closed) = state.withLock { state -> ([Element], Bool) in
                let count = min(max(limit, 1), state.elements.count)
                defer { state.elements.removeFirst(count) }
                return (Array(state.elements.prefix(count)), state.closed)
            }
            if !batch.isEmpty { return batch }
            if closed { return nil }
            if let deadline, Date() >= deadline { return [] }
            guard await bell.wait(until: deadline) else { return nil }
        }
    }
}
