public import Foundation
import Synchronization
import Racing

/// Wakes a waiting loop when there is new work. A ring while nobody waits is kept (several as one), so a
/// loop that checks for work and then waits never misses a ring that came in between.
///
/// Cancelling a waiter ends only that wait; the doorbell stays usable (unlike an `AsyncStream`, which
/// finishes for good when its consumer is cancelled).
public final class Doorbell: Sendable {
    private struct State {
        var rung = false
        var nextID: UInt64 = 0
        var waiters: [UInt64: CheckedContinuation<Bool, Never>] = [:]
    }

    private let state = Mutex(State())

    /// Creates a doorbell.
    public init() {}

    /// Signals new work: wakes every waiter, or is kept for the next wait.
    public func ring() {
        let waiters = state.withLock { state in
            let waiters = state.waiters.values
            state.waiters.removeAll()
            state.rung = waiters.isEmpty
            return Array(waiters)
        }
        for waiter in waiters { waiter.resume(returning: true) }
    }

    /// Waits for the next ring (or returns at once if one came since the last wait). Returns false if cancelled.
    public func wait() async -> Bool {
        let id = state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let immediate: Bool? = state.withLock { state in
                    if state.rung {
                        state.rung = false
                        return true
                    }
                    if Task.isCancelled { return false }
                    state.waiters[id] = continuation
                    return nil
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(returning: false)
        }
    }

    /// Waits for the next ring, or until `deadline` (on the wall clock) passes, whichever comes first.
    /// Returns false if cancelled.
    public func wait(until deadline: Date?) async -> Bool {
        guard let deadline else { return await wait() }
        let delay = deadline.timeIntervalSinceNow
        if delay <= 0 { return !Task.isCancelled }
        let woken =
            await firstResult(
                of: { await self.wait() },
                { (try? await Task.sleep(for: .microseconds(Int64(delay * 1_000_000) + 1))) != nil }
            ) ?? false
        return woken && !Task.isCancelled
    }
}
