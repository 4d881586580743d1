import Foundation
import SchedulerService
import Synchronization
import Testing

/// A wall clock that tests move by hand: `sleep(until:)` returns when the test advances time to or past the
/// deadline, and `waitForSleeper()` returns when some task sleeps on the clock. Nothing polls: `advance` resumes
/// the sleepers that are due, and a new sleeper resumes the tasks waiting for one.
final class ManualClock: WallClock, Sendable {
    private struct Sleeper {
        var id: Int
        var deadline: Date
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var now: Date
        var nextID = 0
        var sleepers: [Sleeper] = []
        /// Tasks waiting for at least `count` sleepers.
        var sleeperWatchers: [(count: Int, continuation: CheckedContinuation<Void, Never>)] = []
    }

    private let state: Mutex<State>

    init(now: Date) { state = Mutex(State(now: now)) }

    func now() -> Date { state.withLock { $0.now } }

    func sleep(until deadline: Date) async throws {
        let id = state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let (ready, watchers) = state.withLock { state -> (Bool, [CheckedContinuation<Void, Never>]) in
                    if state.now >= deadline || Task.isCancelled { return (true, []) }
                    state.sleepers.append(Sleeper(id: id, deadline: deadline, continuation: continuation))
                    let count = state.sleepers.count
                    defer { state.sleeperWatchers.removeAll { $0.count <= count } }
                    return (false, state.sleeperWatchers.filter { $0.count <= count }.map(\.continuation))
                }
                if ready { continuation.resume() }
                for watcher in watchers { watcher.resume() }
            }
            try Task.checkCancellation()
        } onCancel: {
            let sleeper = state.withLock { state in
                state.sleepers.firstIndex { $0.id == id }.map { state.sleepers.remove(at: $0) }
            }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }

    var sleeperCount: Int { state.withLock { $0.sleepers.count } }

    /// Returns once at least `count` tasks sleep on this clock (at once if they do already).
    func waitForSleeper(count: Int = 1) async {
        await withCheckedContinuation { (watcher: CheckedContinuation<Void, Never>) in
            let sleeping = state.withLock { state in
                if state.sleepers.count >= count { return true }
                state.sleeperWatchers.append((count, watcher))
                return false
            }
            if sleeping { watcher.resume() }
        }
    }

    /// Sets the time to `date` and wakes every sleeper whose deadline it reached.
    func advance(to date: Date) {
        let due = state.withLock { state in
            state.now = date
            let due = state.sleepers.filter { $0.deadline <= date }
            state.sleepers.removeAll { $0.deadline <= date }
            return due.map(\.continuation)
        }
        for continuation in due { continuation.resume() }
    }
}

struct ManualClockTests {
    /// Sleepers wake when the clock is moved to or past their deadline, not before, and not the others.
    @Test(.timeLimit(.minutes(1)))
    func advanceWakesTheSleepersThatAreDueOnly() async throws {
        let clock = ManualClock(now: Date(timeIntervalSince1970: 0))
        let early = Task { try await clock.sleep(until: Date(timeIntervalSince1970: 10)) }
        let late = Task { try await clock.sleep(until: Date(timeIntervalSince1970: 20)) }
        await clock.waitForSleeper(count: 2)
        clock.advance(to: Date(timeIntervalSince1970: 9))
        #expect(clock.sleeperCount == 2)
        clock.advance(to: Date(timeIntervalSince1970: 10))
        try await early.value
        #expect(clock.sleeperCount == 1)
        late.cancel()
        await #expect(throws: CancellationError.self) { try await late.value }
        #expect(clock.sleeperCount == 0)
        // A deadline already passed returns at once.
        try await clock.sleep(until: Date(timeIntervalSince1970: 5))
    }
}
