public import Foundation
import DequeModule
import Glibc
import Synchronization
import Racing

/// A ZeroMQ socket for async code: the socket lives on a dedicated thread that blocks in `zmq_poll`,
/// so waiting costs no CPU and never occupies Swift's cooperative thread pool.
///
/// The thread owns the socket from creation to close (libzmq sockets must not be shared between threads).
/// Async callers hand it work through a locked queue and a wake-up pipe that the thread polls with the socket.
/// Receiving is demand-driven: the thread reads from the socket only while a caller waits in ``receive()``,
/// so a PULL socket with a receive high-water mark of 1 never reads ahead of its consumer.
///
/// ```swift
/// let pull = try await AsyncSocket(context: context, configuration: .init(type: .pull, bind: ["tcp://127.0.0.1:*"]))
/// let message = try await pull.receive()
/// await pull.close()
/// ```
public final class AsyncSocket: Sendable {
    /// How to create the socket: its type, options, endpoints and any messages to send first.
    public struct Configuration: Sendable {
        /// The socket pattern.
        public var type: SocketType
        /// Options applied before binding or connecting.
        public var options: [SocketOption]
        /// Endpoints to bind.
        public var bind: [String]
        /// Endpoints to connect to.
        public var connect: [String]
        /// Messages sent right after the endpoints are set up (e.g. an XSUB's subscribe-all).
        public var initialMessages: [[Data]]
        /// How long messages still queued may linger once ``AsyncSocket/close()`` is called.
        public var lingerOnClose: Duration
        /// The most fire-and-forget messages (``AsyncSocket/post(_:)``) waiting for the socket at once.
        public var maxPosted: Int

        /// Creates a configuration.
        /// - Parameters:
        ///   - type: The socket pattern.
        ///   - options: Options applied before binding or connecting.
        ///   - bind: Endpoints to bind.
        ///   - connect: Endpoints to connect to.
        ///   - initialMessages: Messages sent once the endpoints are set up.
        ///   - lingerOnClose: How long queued messages may linger at close.
        ///   - maxPosted: Limit on queued fire-and-forget messages.
        public init(
            type: SocketType,
            options: [SocketOption] = [],
            bind: [String] = [],
            connect: [String] = [],
            initialMessages: [[Data]] = [],
            lingerOnClose: Duration = .zero,
            maxPosted: Int = 10_000
        ) {
            self.type = type
            self.options = options
            self.bind = bind
            self.connect = connect
            self.initialMessages = initialMessages
            self.lingerOnClose = lingerOnClose
            self.maxPosted = maxPosted
        }
    }

    /// The endpoints actually bound, in the order of ``Configuration/bind``, wildcard ports resolved.
    public let boundEndpoints: [String]
    private let core: Core

    /// Creates the socket on a new thread, binds and connects it, and returns once that is done.
    /// - Parameters:
    ///   - context: The context to create the socket in.
    ///   - configuration: Type, options and endpoints.
    /// - Throws: ``ZMQError`` if the socket cannot be created, configured, bound or connected.
    public init(context: Context, configuration: Configuration) async throws {
        let core = try Core()
        self.boundEndpoints = try await withCheckedThrowingContinuation { continuation in
            let thread = Thread { core.run(context: context, configuration: configuration, started: continuation) }
            thread.name = "zmq-\(configuration.type)"
            thread.stackSize = 512 * 1024
            thread.start()
        }
        self.core = core
    }

    deinit {
        core.requestClose()
    }

    /// Sends a message and returns once libzmq has queued it; waits while the socket cannot take it
    /// (e.g. a PUSH with no connected peer, or at its high-water mark).
    public func send(_ parts: [Data]) async throws {
        let id = core.makeID()
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                core.enqueueSend(id: id, parts: parts, continuation: continuation)
            }
        } onCancel: {
            core.cancel(id: id)
        }
    }

    /// Queues a message without waiting (for PUB-style sockets). Returns `false` if the socket is closed
    /// or too many posted messages are already waiting, in which case the message is dropped.
    @discardableResult
    public func post(_ parts: [Data]) -> Bool {
        core.enqueuePost(parts: parts)
    }

    /// Messages queued here that libzmq has not taken yet (e.g. a PUSH with no peer connected).
    public var backlog: Int { core.backlog }

    /// Waits for the next message. Cancelling the calling task ends the wait with `CancellationError`.
    public func receive() async throws -> [Data] {
        let id = core.makeID()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[Data], any Error>) in
                core.enqueueReceive(id: id, continuation: continuation)
            }
        } onCancel: {
            core.cancel(id: id)
        }
    }

    /// Waits for the next message at most `timeout`; returns `nil` when none came in time.
    public func receive(timeout: Duration) async throws -> [Data]? {
        // The timeout's verdict is `.some(nil)`: no message, and the race is over.
        let first: [Data]?? = try await firstResult(
            of: { try await self.receive() },
            {
                try await Task.sleep(for: timeout)
                return .some(nil)
            },
            // A message that arrived while the timeout won must not be lost: give it back.
            late: { late in if let late { core.requeue(late) } }
        )
        return first ?? nil
    }

    /// Closes the socket (after its linger time) and ends its thread. Waiting operations fail with
    /// ``ZMQError/closed``. Safe to call more than once.
    public func close() async {
        await core.close()
    }
}

/// The state shared between an ``AsyncSocket`` handle and the socket's own thread.
///
/// `@unchecked Sendable`: every mutable field is inside `state`, a `Mutex`; the pipe descriptors are
/// immutable and are closed only in `deinit`, when neither the handle nor the thread can touch them any more.
/// The libzmq socket itself never leaves the thread in ``run(context:configuration:started:)``.
private final class Core: @unchecked Sendable {
    private struct Outgoing {
        var id: UInt64
        var parts: [Data]
        var continuation: CheckedContinuation<Void, any Error>?
    }

    private struct Waiter {
        var id: UInt64
        var continuation: CheckedContinuation<[Data], any Error>
    }

    private struct State {
        var sends: Deque<Outgoing> = []
        var receivers: Deque<Waiter> = []
        var inbox: Deque<[Data]> = []
        var cancelled: Set<UInt64> = []
        var posted = 0
        var maxPosted = 10_000
        var nextID: UInt64 = 0
        var closing = false
        var wakePending = false
    }

    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let state = Mutex(State())
    /// Opened when the socket's thread has closed the socket and failed every waiter.
    private let closed = Latch()

    init() throws {
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

    func makeID() -> UInt64 {
        state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
    }

    private func wake() {
        let needed = state.withLock { state in
            defer { state.wakePending = true }
            return !state.wakePending
        }
        guard needed else { return }
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)
    }

    private func closedError() -> ZMQError {
        ZMQError(code: ZMQError.closed, operation: "socket closed")
    }

    func enqueueSend(id: UInt64, parts: [Data], continuation: CheckedContinuation<Void, any Error>) {
        let rejection: (any Error)? = state.withLock { state in
            if state.cancelled.remove(id) != nil { return CancellationError() }
            if state.closing { return closedError() }
            state.sends.append(Outgoing(id: id, parts: parts, continuation: continuation))
            return nil
        }
        if let rejection { continuation.resume(throwing: rejection) } else { wake() }
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

    func enqueueReceive(id: UInt64, continuation: CheckedContinuation<[Data], any Error>) {
        enum Outcome {
            case message([Data])
            case failure(any Error)
            case wait
        }
        let outcome: Outcome = state.withLock { state in
            if state.cancelled.remove(id) != nil { return .failure(CancellationError()) }
            if let message = state.inbox.popFirst() { return .message(message) }
            if state.closing { return .failure(closedError()) }
            state.receivers.append(Waiter(id: id, continuation: continuation))
            return .wait
        }
        switch outcome {
        case .message(let message): continuation.resume(returning: message)
        case .failure(let error): continuation.resume(throwing: error)
        case .wait: wake()
        }
    }

    func requeue(_ message: [Data]) {
        let waiter: Waiter? = state.withLock { state in
            if let waiter = state.receivers.popFirst() { return waiter }
            state.inbox.prepend(message)
            return nil
        }
        waiter?.continuation.resume(returning: message)
    }

    func cancel(id: UInt64) {
        enum Found {
            case send(CheckedContinuation<Void, any Error>?)
            case receive(CheckedContinuation<[Data], any Error>)
            case none
        }
        let found: Found = state.withLock { state in
            if let index = state.receivers.firstIndex(where: { $0.id == id }) {
                return .receive(state.receivers.remove(at: index).continuation)
            }
            if let index = state.sends.firstIndex(where: { $0.id == id }) {
                return .send(state.sends.remove(at: index).continuation)
            }
            state.cancelled.insert(id)
            return .none
        }
        switch found {
        case .send(let continuation): continuation?.resume(throwing: CancellationError())
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

    // MARK: - The socket's thread

    func run(context: Context, configuration: AsyncSocket.Configuration, started: CheckedContinuation<[String], any Error>) {
        state.withLock { $0.maxPosted = configuration.maxPosted }
        var endpoints: [String] = []
        var socket: Socket
        do {
            socket = try Socket.make(context: context, configuration: configuration, boundEndpoints: &endpoints)
        } catch {
            finish(error: error)
            started.resume(throwing: error)
            return
        }
        started.resume(returning: endpoints)

        var failure: ZMQError?
        var items = [socket.pollItem([]), PollItem.fileDescriptor(wakeRead, events: .readable)]
        while true {
            let (wantIn, wantOut, closing) = state.withLock { ($0.receivers.count > 0, !$0.sends.isEmpty, $0.closing) }
            if closing { break }
            var events: PollEvents = []
            if wantIn { events.insert(.readable) }
            if wantOut { events.insert(.writable) }
            items[0] = socket.pollItem(events)
            do {
                try poll(&items, timeout: nil)
                if items[1].ready.contains(.readable) { drainWakePipe() }
                if items[0].ready.contains(.writable) { try flushSends(socket) }
                if items[0].ready.contains(.readable) { try deliver(socket) }
            } catch {
                failure = error
                break
            }
        }
        _ = try? socket.set(.linger(configuration.lingerOnClose))
        socket.close()
        finish(error: failure ?? closedError())
    }

    private func drainWakePipe() {
        var buffer = [UInt8](repeating: 0, count: 64)
        // Empty the pipe first, then allow the next wake to write. The other order loses wake-ups: a wake
        // between clearing the flag and reading would have its byte read here, leaving the flag set over an
        // empty pipe, and every later wake() would skip writing while this thread sleeps in poll.
        while read(wakeRead, &buffer, buffer.count) > 0 {}
        state.withLock { $0.wakePending = false }
        // Work queued before the flag cleared is picked up by the loop, which reads the state before polling.
    }

    private func flushSends(_ socket: borrowing Socket) throws(ZMQError) {
        while let next = state.withLock({ $0.sends.popFirst() }) {
            let sent: Bool
            do {
                sent = try socket.send(next.parts, wait: false)
            } catch {
                if error.isTerminated { throw error }
                // A message the socket refuses (wrong state, unroutable) fails alone; the socket goes on.
                complete(next, error: error)
                continue
            }
            if !sent {
                state.withLock { $0.sends.prepend(next) }
                return
            }
            complete(next, error: nil)
        }
    }

    private func complete(_ outgoing: Outgoing, error: ZMQError?) {
        if let continuation = outgoing.continuation {
            if let error { continuation.resume(throwing: error) } else { continuation.resume() }
        } else {
            state.withLock { $0.posted -= 1 }
        }
    }

    private func deliver(_ socket: borrowing Socket) throws(ZMQError) {
        while state.withLock({ !$0.receivers.isEmpty }) {
            guard let message = try socket.receive(wait: false) else { return }
            let waiter: Waiter? = state.withLock { state in
                if let waiter = state.receivers.popFirst() { return waiter }
                state.inbox.append(message)
                return nil
            }
            waiter?.continuation.resume(returning: message)
        }
    }

    private func finish(error: any Error) {
        let (sends, receivers) = state.withLock { state in
            state.closing = true
            defer {
                state.sends.removeAll()
                state.receivers.removeAll()
                state.posted = 0
            }
            return (state.sends, state.receivers)
        }
        for send in sends { send.continuation?.resume(throwing: error) }
        for receiver in receivers { receiver.continuation.resume(throwing: error) }
        closed.open()
    }
}
