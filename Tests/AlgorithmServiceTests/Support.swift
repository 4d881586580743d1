import Foundation
import Messaging
import Config
import ServiceKit
import Synchronization
import Testing
import ZMQ

/// A status bus in the process: a publisher for the part under test and an XSUB that sees what it publishes.
struct Bus {
    let publisher: StatusPublisher
    let subscriber: AsyncSocket
    private let running: Task<Void, any Error>

    init(context: Context) async throws {
        let endpoint = "inproc://bus-\(UUID().uuidString)"
        subscriber = try await AsyncSocket(
            context: context,
            configuration: .init(type: .xsubscribe, bind: [endpoint], initialMessages: [[Data([1])]])
        )
        let publisher = try await StatusPublisher(context: context, endpoint: endpoint, source: "test", instance: "test:1")
        self.publisher = publisher
        // It sends once it has seen the subscription, which its `run` follows.
        running = Task { try await publisher.run() }
    }

    /// The next event of `type` (others are passed over), waiting at most `timeout`.
    func next(_ type: String, timeout: Duration = .seconds(120)) async throws -> StatusEvent {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            guard let frames = try await subscriber.receive(timeout: deadline - ContinuousClock.now) else { break }
            let event = try StatusEvent(frames: frames)
            if event.type == type { return event }
        }
        throw TestFailure("no \(type) event within \(timeout)")
    }

    func close() async {
        running.cancel()
        _ = try? await running.value
        await subscriber.close()
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Receives a message on a socket within a deadline (a wait for an event, not a fixed time). The deadlines
/// here are generous: the full suite runs integration tests alongside, which can hold the process's threads.
func receive(_ socket: AsyncSocket, within timeout: Duration = .seconds(120)) async throws -> [Data] {
    guard let frames = try await socket.receive(timeout: timeout) else { throw TestFailure("nothing received within \(timeout)") }
    return frames
}

/// A clock that moves only when told to, for back-offs and other waits in tests.
final class ManualClock: Clock, Sendable {
    struct Instant: InstantProtocol {
        var offset: Duration
        func advanced(by duration: Duration) -> Instant { Instant(offset: offset + duration) }
        func duration(to other: Instant) -> Duration { other.offset - offset }
        static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.offset < rhs.offset }
    }

    private struct Sleeper {
        var id: Int
        var deadline: Instant
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var now = Instant(offset: .zero)
        var nextID = 0
        var sleepers: [Sleeper] = []
        var sleepWaiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    var now: Instant { state.withLock { $0.now } }
    var minimumResolution: Duration { .zero }

    func sleep(until deadline: Instant, tolerance: Duration?) async throws {
        let id = state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let (ready, waiters) = state.withLock { state -> (Bool, [CheckedContinuation<Void, Never>]) in
                    if state.now >= deadline || Task.isCancelled { return (true, []) }
                    state.sleepers.append(Sleeper(id: id, deadline: deadline, continuation: continuation))
                    defer { state.sleepWaiters.removeAll() }
                    return (false, state.sleepWaiters)
                }
                for waiter in waiters { waiter.resume() }
                if ready { continuation.resume() }
            }
            try Task.checkCancellation()
        } onCancel: {
            let sleeper = state.withLock { state in
                state.sleepers.firstIndex { $0.id == id }.map { state.sleepers.remove(at: $0) }
            }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Returns once some task sleeps on this clock (woken by the sleep itself, not by polling).
    func waitForSleeper() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let sleeping = state.withLock { state in
                if !state.sleepers.isEmpty { return true }
                state.sleepWaiters.append(continuation)
                return false
            }
            if sleeping { continuation.resume() }
        }
    }

    /// Moves the clock on, waking the sleepers whose deadline it reaches.
    func advance(by duration: Duration) {
        let due = state.withLock { state in
            state.now = state.now.advanced(by: duration)
            let now = state.now
            let due = state.sleepers.filter { $0.deadline <= now }
            state.sleepers.removeAll { $0.deadline <= now }
            return due.map(\.continuation)
        }
        for continuation in due { continuation.resume() }
    }
}
