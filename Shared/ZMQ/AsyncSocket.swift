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
/// Services open their sockets through the scoped API, which closes the socket however its scope ends
/// (``Context/withSocket(_:isolation:_:)``, ``Context/withInbound(_:isolation:_:)``,
/// ``Context/withOutbound(_:isolation:_:)``). A handle made with ``init(context:configuration:)`` is the
/// caller's to close: it is for tests and tools whose sockets outlive one scope; nothing closes it on `deinit`.
///
/// ```swift
/// try await context.withInbound(.init(type: .pull, bind: ["tcp://127.0.0.1:*"])) { inbound in
///     for try await message in inbound { handle(message) }
/// }
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
        /// Watch the connections made (a monitor on the socket's thread), for ``AsyncSocket/greet(_:)``.
        public var watchConnections = false
        /// Work the socket's own thread does every `interval` (a heartbeat that posts on this socket), timed by
        /// its poll: no Swift task, timer or thread of the pool wakes for it. The action runs on that thread, so
        /// it must be short and must not block; whatever it posts is sent in order with everything else.
        public var tick: Tick?

        /// Periodic work on the socket's thread (``Configuration/tick``).
        public struct Tick: Sendable {
            /// The time between two calls, the first one `interval` after the socket is set up.
            public var interval: Duration
            /// What to do.
            public var action: @Sendable () -> Void

            /// Creates a tick.
            /// - Parameters:
            ///   - interval: The time between two calls.
            ///   - action: What to do, on the socket's thread.
            public init(every interval: Duration, _ action: @escaping @Sendable () -> Void) {
                self.interval = interval
                self.action = action
            }
        }

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
    let core: SocketCore

    /// Creates the socket on a new thread, binds and connects it, and returns once that is done.
    /// - Parameters:
    ///   - context: The context to create the socket in.
    ///   - configuration: Type, options and endpoints.
    /// - Throws: ``ZMQError`` if the socket cannot be created, configured, bound or connected.
    public init(context: Context, configuration: Configuration) async throws {
        let core = try SocketCore()
        self.boundEndpoints = try await withCheckedThrowingContinuation { continuation in
            let thread = Thread { core.run(context: context, configuration: configuration, started: continuation) }
            thread.name = "zmq-\(configuration.type)"
            thread.stackSize = 512 * 1024
            thread.start()
        }
        self.core = core
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

    /// Sends messages in order, handed to the socket's thread at once, and returns each one's outcome (nil: libzmq
    /// queued it) when every one has one: for a ROUTER handing many tasks to its peers, one wake-up of the socket's
    /// thread and one of the caller, where ``send(_:)`` costs both per message. A message fails alone (a ROUTER's
    /// peer gone or full) and the others go on. Cancelling fails those not sent yet with `CancellationError`.
    public func send(all messages: [[Data]]) async -> [(any Error)?] {
        guard !messages.isEmpty else { return [] }
        let id = core.makeID()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<[(any Error)?], Never>) in
                core.enqueueSends(
                    id: id,
                    messages: messages,
                    batch: SocketCore.BatchSend(count: messages.count, continuation: continuation)
                )
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

    /// Sets a message to send again each time the socket makes a connection (a reconnect after its peer
    /// restarted, or a network cut), until replaced or cleared with nil. Needs
    /// ``Configuration/watchConnections``. For what a peer must hear on every connection, because what was sent
    /// on the last one may have been lost with it: a processor's open ask for work.
    public func greet(_ parts: [Data]?) {
        core.state.withLock { $0.greeting = parts }
    }

    /// Messages queued here that libzmq has not taken yet (e.g. a PUSH with no peer connected).
    public var backlog: Int { core.backlog }

    /// Waits for the next message. Cancelling the calling task ends the wait with `CancellationError` (a
    /// message already handed to this wait is returned instead: it is never dropped).
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

    /// Both sides of this socket as the scoped API hands them out, for code that takes a ``SocketInbound`` or
    /// ``SocketOutbound`` but is driven by a caller that holds the handle (a test, a benchmark).
    public var channel: SocketChannel { SocketChannel(socket: self) }

    /// Receives waiting for a message right now (a test hook: a test that means to act on a registered
    /// receive waits for it through ``waitForReceivers(_:)`` instead of guessing with a sleep).
    package var waitingReceivers: Int { core.waitingReceivers }

    /// Returns once at least `count` receives wait on this socket.
    package func waitForReceivers(_ count: Int) async {
        await core.waitForReceivers(count)
    }
}
