import DequeModule
package import Foundation
import Glibc
import Synchronization

/// The state shared between an ``AsyncSocket`` handle and the socket's own thread, and the thread's loop.
///
/// The thread's side (its loop) is in SocketThread.swift. `package` so that tests can drive the queue's bookkeeping directly (the cancel/complete race cannot be
/// timed from outside). `@unchecked Sendable`: every mutable field is inside `state`, a `Mutex`; the pipe descriptors are
/// immutable and are closed only in `deinit`, when neither the handle nor the thread can touch them any more.
/// The libzmq socket itself never leaves the thread in ``run(context:configuration:started:)``.
package final class SocketCore: @unchecked Sendable {
    struct Outgoing {
        var id: UInt64
        var parts: [Data]
        /// Who hears the outcome; nil for a posted message.
        var completion: Completion?

        init(id: UInt64, parts: [Data], continuation: CheckedContinuation<Void, any Error>?) {
            self.id = id
            self.parts = parts
            completion = continuation.map(Completion.one)
        }

        init(id: UInt64, parts: [Data], batch: BatchSend, index: Int) {
            self.id = id
            self.parts = parts
            completion = .batch(batch, index)
        }

        /// Reports the outcome (nil: libzmq took the message). Call without the lock held.
        func complete(_ error: (any Error)?) {
            switch completion {
            case .one(let continuation):
                if let error { continuation.resume(throwing: error) } else { continuation.resume() }
            case .batch(let batch, let index): batch.complete(index, error)
            case nil: break
            }
        }
    }

    enum Completion {
        /// A message sent alone (``AsyncSocket/send(_:)``).
        case one(CheckedContinuation<Void, any Error>)
        /// Message `index` of a batch (``AsyncSocket/send(all:)``).
        case batch(BatchSend, Int)
    }

    /// The messages of one ``AsyncSocket/send(all:)``: each one's outcome, and the caller resumed once when every
    /// message has one.
    final class BatchSend: Sendable {
        private let state: Mutex<(outcomes: [(any Error)?], remaining: Int, continuation: CheckedContinuation<[(any Error)?], Never>?)>

        init(count: Int, continuation: CheckedContinuation<[(any Error)?], Never>) {
            state = Mutex((Array(repeating: nil, count: count), count, continuation))
        }

        func complete(_ index: Int, _ error: (any Error)?) {
            let done: (CheckedContinuation<[(any Error)?], Never>, [(any Error)?])? = state.withLock { state in
                state.outcomes[index] = error
                state.remaining -= 1
                guard state.remaining == 0, let continuation = state.continuation else { return nil }
                state.continuation = nil
                return (continuation, state.outcomes)
            }
            if let (continuation, outcomes) = done { continuation.resume(returning: outcomes) }
        }
    }

    struct Waiter {
        var id: UInt64
        var continuation: CheckedContinuation<[Data], any Error>
    }

    struct State {
        var sends: Deque<Outgoing> = []
        var receivers: Deque<Waiter> = []
        var inbox: Deque<[Data]> = []
        /// Operations given an id whose request has not reached the queue yet: only these can be cancelled
        /// ahead of time. An id that is neither here nor queued has completed, and its cancel does nothing.
        var announced: Set<UInt64> = []
        /// Announced operations cancelled before they were queued; they fail as they arrive.
        var cancelled: Set<UInt64> = []
        /// Tests waiting for a number of registered receives.
        var receiverWatchers: [(count: Int, continuation: CheckedContinuation<Void, Never>)] = []
        var posted = 0
        var maxPosted = 10_000
        var nextID: UInt64 = 0
        var closing = false
        var wakePending = false
        /// Sent again each time a connection is made (``AsyncSocket/greet(_:)``).
        var greeting: [Data]?
        /// The socket's own thread, once it runs: work it queues itself needs no wake-up (its loop looks at
        /// the queue before it polls again).
        var thread: pthread_t?
    }

    let wakeRead: Int32
    private let wakeWrite: Int32
    let state = Mutex(State())
    /// Opened when the socket's thread has closed the socket and failed every waiter.
    let closed = Latch()

    package init() throws {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw ZMQError(code: errno, operation: "pipe") }
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        wakeRead = fds[0]
        wakeWrite = fds[1]
    }

    deinit {
        Glibc.close(wakeRead)
        Glibc.close(wakeWrite)
    }

    var backlog: Int { state.withLock { $0.sends.count } }

    /// Ids cancelled before their operation was queued and not yet consumed (0 once each has arrived).
    package var pendingCancels: Int { state.withLock { $0.cancelled.count } }

    package var waitingReceivers: Int { state.withLock { $0.receivers.count } }

    package func waitForReceivers(_ count: Int) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let reached = state.withLock { state in
                if state.receivers.count >= count { return true }
                state.receiverWatchers.append((count, continuation))
                return false
            }
            if reached { continuation.resume() }
        }
    }

    /// Resumes the watchers whose count of receives is reached; call with the lock held, resume outside.
    private static func reachedWatchers(_ state: inout State) -> [CheckedContinuation<Void, Never>] {
        guard !state.receiverWatchers.isEmpty else { return [] }
        let count = state.receivers.count
        let reached = state.receiverWatchers.filter { $0.count <= count }.map(\.continuation)
        state.receiverWatchers.removeAll { $0.count <= count }
        return reached
    }

    /// A new id for an operation that may be cancelled before it is queued (see ``cancel(id:)``).
    package func makeID() -> UInt64 {
        state.withLock { state in
            state.nextID += 1
            state.announced.insert(state.nextID)
            return state.nextID
        }
    }

    private func wake() {
        let needed = state.withLock { state in
            if let thread = state.thread, pthread_equal(thread, pthread_self()) != 0 { return false }
            defer { state.wakePending = true }
            return !state.wakePending
        }
        guard needed else { return }
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)
    }

    func closedError() -> ZMQError {
        ZMQError(code: ZMQError.closed, operation: "socket closed")
    }

    func enqueueSend(id: UInt64, parts: [Data], continuation: CheckedContinuation<Void, any Error>) {
        let rejection: (any Error)? = state.withLock { state in
            state.announced.remove(id)
            if state.cancelled.remove(id) != nil { return CancellationError() }
            if state.closing { return closedError() }
            state.sends.append(Outgoing(id: id, parts: parts, continuation: continuation))
            return nil
        }
        if let rejection { continuation.resume(throwing: rejection) } else { wake() }
    }

    /// Queues messages in order under one id, each reporting to `batch`; one wake-up of the socket's thread.
    func enqueueSends(id: UInt64, messages: [[Data]], batch: BatchSend) {
        let rejection: (any Error)? = state.withLock { state in
            state.announced.remove(id)
            if state.cancelled.remove(id) != nil { return CancellationError() }
            if state.closing { return closedError() }
            for (index, parts) in messages.enumerated() {
                state.sends.append(Outgoing(id: id, parts: parts, batch: batch, index: index))
            }
            return nil
        }
        if let rejection {
            for index in messages.indices { batch.complete(index, rejection) }
        } else {
            wake()
        }
    }

    func enqueuePost(parts: [Data]) -> Bool {
        let accepted = state.withLock { state in
            guard !state.closing, state.posted < state.maxPosted else { return false }
            state.posted += 1
            state.sends.append(Outgoing(id: 0, parts: parts, continuation: nil))
            return true
        }
        if accepted { wake() }
        return accepted
    }

    package func enqueueReceive(id: UInt64, continuation: CheckedContinuation<[Data], any Error>) {
        enum Outcome {
            case message([Data])
            case failure(any Error)
            case wait([CheckedContinuation<Void, Never>])
        }
        let outcome: Outcome = state.withLock { state in
            state.announced.remove(id)
            if state.cancelled.remove(id) != nil { return .failure(CancellationError()) }
            if let message = state.inbox.popFirst() { return .message(message) }
            if state.closing { return .failure(closedError()) }
            state.receivers.append(Waiter(id: id, continuation: continuation))
            return .wait(Self.reachedWatchers(&state))
        }
        switch outcome {
        case .message(let message): continuation.resume(returning: message)
        case .failure(let error): continuation.resume(throwing: error)
        case .wait(let watchers):
            wake()
            for watcher in watchers { watcher.resume() }
        }
    }

    package func requeue(_ message: [Data]) {
        let waiter: Waiter? = state.withLock { state in
            if let waiter = state.receivers.popFirst() { return waiter }
            state.inbox.prepend(message)
            return nil
        }
        waiter?.continuation.resume(returning: message)
    }

    /// Cancels the operation with this id: a queued one fails with `CancellationError` now, one announced but
    /// not queued yet fails as it arrives, and one that already completed is left alone. (The cancellation
    /// handler may run after the operation completed but before its task saw it; such an id used to stay in
    /// `cancelled` for good.)
    package func cancel(id: UInt64) {
        enum Found {
            case sends([Outgoing])
            case receive(CheckedContinuation<[Data], any Error>)
            case none
        }
        let found: Found = state.withLock { state in
            if let index = state.receivers.firstIndex(where: { $0.id == id }) {
                return .receive(state.receivers.remove(at: index).continuation)
            }
            // Every message of a batch has its id (no copy unless one is there: most cancels find a receive).
            if state.sends.contains(where: { $0.id == id }) {
                let sends = Array(state.sends.filter { $0.id == id })
                state.sends.removeAll { $0.id == id }
                return .sends(sends)
            }
            if state.announced.contains(id) { state.cancelled.insert(id) }
            return .none
        }
        switch found {
        case .sends(let sends): for send in sends { send.complete(CancellationError()) }
        case .receive(let continuation): continuation.resume(throwing: CancellationError())
        case .none: break
        }
    }

    func requestClose() {
        let first = state.withLock { state in
            defer { state.closing = true }
            return !state.closing
        }
        if first {
            var byte: UInt8 = 1
            _ = write(wakeWrite, &byte, 1)
        }
    }

    func close() async {
        requestClose()
        await closed.wait()
    }
}
