public import ServiceLifecycle
public import ZMQ

/// Keeps a socket open while its service group runs and closes it on shutdown. List it before the
/// services that use the socket: a `ServiceGroup` stops services in reverse order, so the users stop first.
public struct SocketCloser: Service {
    private let socket: AsyncSocket

    /// Wraps a socket.
    public init(socket: AsyncSocket) {
        self.socket = socket
    }

    public func run() async throws {
        // Returns when graceful shutdown begins (or the task is cancelled).
        try? await gracefulShutdown()
        await socket.close()
    }
}
