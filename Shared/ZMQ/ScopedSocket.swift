public import Foundation

/// Sockets with one owner: each is opened for the length of a closure and closed when the closure returns or
/// throws (after its linger time), in the manner of swift-nio's `NIOAsyncChannel.executeThenClose`. The
/// closure gets what the socket's pattern does: the inbound messages of a receiving socket, the outbound
/// writer of a sending one, or a ``SocketChannel`` with both (REQ/REP, an XPUB that reads subscriptions).
///
/// ```swift
/// try await context.withInbound(.init(type: .pull, bind: ["tcp://127.0.0.1:5555"])) { requests in
///     try await context.withOutbound(.init(type: .push, connect: ["tcp://127.0.0.1:5556"])) { reports in
///         for try await request in requests { try await reports.send(answer(request)) }
///     }
/// }
/// ```
///
/// The handles are `Sendable` so the closure can give them to child tasks; those must end before the closure
/// returns (a task group inside it does that). A handle used after its scope fails with ``ZMQError/closed``.
extension Context {
    /// Opens a socket that sends and receives, runs `body` with it, and closes it however `body` ends.
    /// - Parameters:
    ///   - configuration: Type, options and endpoints.
    ///   - body: Uses the socket; the socket is closed once it returns or throws.
    /// - Throws: ``ZMQError`` if the socket cannot be created, configured, bound or connected (then `body` does
    ///   not run), or what `body` throws.
    public func withSocket<Result>(
        _ configuration: AsyncSocket.Configuration,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (SocketChannel) async throws -> Result
    ) async throws -> Result {
        let socket = try await AsyncSocket(context: self, configuration: configuration)
        let result: Result
        do {
            result = try await body(SocketChannel(socket: socket))
        } catch {
            await socket.close()
            throw error
        }
        await socket.close()
        return result
    }

    /// Opens a receiving socket (PULL, SUB, …), runs `body` with its inbound messages, and closes it however
    /// `body` ends.
    public func withInbound<Result>(
        _ configuration: AsyncSocket.Configuration,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (SocketInbound) async throws -> Result
    ) async throws -> Result {
        try await withSocket(configuration) { channel in try await body(channel.inbound) }
    }

    /// Opens a sending socket (PUSH, …), runs `body` with its writer, and closes it however `body` ends.
    public func withOutbound<Result>(
        _ configuration: AsyncSocket.Configuration,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (SocketOutbound) async throws -> Result
    ) async throws -> Result {
        try await withSocket(configuration) { channel in try await body(channel.outbound) }
    }
}

/// A socket's inbound messages, one multipart message per element.
///
/// Demand-driven: each ``receive()`` (each iteration step) asks the socket's thread for one message, and the
/// thread reads from the socket only while such a request waits, so a PULL with a receive high-water mark of 1
/// takes a message only when its consumer is ready for it. Iteration ends when the socket is closed or the
/// iterating task is cancelled; other errors are thrown.
public struct SocketInbound: AsyncSequence, Sendable {
    public typealias Element = [Data]
    private let socket: AsyncSocket

    init(socket: AsyncSocket) { self.socket = socket }

    /// The endpoints actually bound, wildcard ports resolved.
    public var boundEndpoints: [String] { socket.boundEndpoints }

    /// Waits for the next message. Cancelling the calling task ends the wait with `CancellationError`; a
    /// closed socket fails it with ``ZMQError/closed``.
    public func receive() async throws -> [Data] {
        try await socket.receive()
    }

    /// Waits for the next message at most `timeout`; `nil` when none came in time.
    public func receive(timeout: Duration) async throws -> [Data]? {
        try await socket.receive(timeout: timeout)
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(socket: socket)
    }

    /// Receives one message per step.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let socket: AsyncSocket

        public mutating func next() async throws -> [Data]? {
            do {
                return try await socket.receive()
            } catch let error as ZMQError where error.isClosed {
                return nil
            } catch is CancellationError {
                return nil
            }
        }
    }
}

/// A socket's outbound side.
public struct SocketOutbound: Sendable {
    private let socket: AsyncSocket

    init(socket: AsyncSocket) { self.socket = socket }

    /// The endpoints actually bound, wildcard ports resolved.
    public var boundEndpoints: [String] { socket.boundEndpoints }

    /// Sends a message and returns once libzmq has queued it; waits while the socket cannot take it (no peer,
    /// or at its high-water mark). Cancelling the calling task ends the wait with `CancellationError`.
    public func send(_ parts: [Data]) async throws {
        try await socket.send(parts)
    }

    /// Sends messages in order, handed to the socket's thread at once, and returns each one's outcome (nil: queued)
    /// when every one has one (see ``AsyncSocket/send(all:)``).
    public func send(all messages: [[Data]]) async -> [(any Error)?] {
        await socket.send(all: messages)
    }

    /// Queues a message without waiting. Returns `false` (and drops the message) if the socket is closed or
    /// ``AsyncSocket/Configuration/maxPosted`` messages already wait.
    @discardableResult
    public func post(_ parts: [Data]) -> Bool {
        socket.post(parts)
    }

    /// Sets the message sent again on each new connection (see ``AsyncSocket/greet(_:)``).
    public func greet(_ parts: [Data]?) {
        socket.greet(parts)
    }

    /// Messages queued here that libzmq has not taken yet (e.g. a PUSH with no peer connected).
    public var backlog: Int { socket.backlog }
}

/// Both sides of one socket, for patterns that send and receive (REQ/REP, XPUB/XSUB, PAIR).
public struct SocketChannel: Sendable {
    /// The messages the socket receives.
    public let inbound: SocketInbound
    /// The socket's writer.
    public let outbound: SocketOutbound
    /// The endpoints actually bound, wildcard ports resolved.
    public let boundEndpoints: [String]

    init(socket: AsyncSocket) {
        inbound = SocketInbound(socket: socket)
        outbound = SocketOutbound(socket: socket)
        boundEndpoints = socket.boundEndpoints
    }

    /// See ``SocketInbound/receive()``.
    public func receive() async throws -> [Data] { try await inbound.receive() }

    /// See ``SocketInbound/receive(timeout:)``.
    public func receive(timeout: Duration) async throws -> [Data]? { try await inbound.receive(timeout: timeout) }

    /// See ``SocketOutbound/send(_:)``.
    public func send(_ parts: [Data]) async throws { try await outbound.send(parts) }

    /// See ``SocketOutbound/post(_:)``.
    @discardableResult
    public func post(_ parts: [Data]) -> Bool { outbound.post(parts) }
}
