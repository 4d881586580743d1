import CZMQ
import Glibc

/// A libzmq context: owns the I/O threads that every socket created from it uses.
///
/// The context is thread-safe (libzmq documents `zmq_ctx_*` as such), so it is `Sendable`. Each ``Socket``
/// keeps a strong reference to its context, so the context is terminated only after its last socket closed.
///
/// ```swift
/// let context = Context()
/// var socket = try Socket(context: context, type: .push)
/// try socket.bind("tcp://127.0.0.1:5555")
/// ```
public final class Context: Sendable {
    /// The libzmq handle. Safe to share: libzmq contexts are thread-safe.
    nonisolated(unsafe) let handle: UnsafeMutableRawPointer
    /// CURVE for the `tcp://` endpoints of this context's sockets, if any.
    public let curve: CurveSettings?
    private let zapHandler: ZAPHandler?

    /// Creates a context.
    /// - Parameters:
    ///   - ioThreads: The number of libzmq I/O threads (1 is plenty below ~1 GB/s).
    ///   - curve: CURVE for every `tcp://` endpoint its sockets bind or connect; with an `authorize` check, a
    ///     ZAP handler is bound before this returns, so no server socket ever runs without it.
    public init(ioThreads: Int32 = 1, curve: CurveSettings? = nil) {
        guard let handle = zmq_ctx_new() else {
            preconditionFailure("zmq_ctx_new failed: \(ZMQError.last("zmq_ctx_new"))")
        }
        zmq_ctx_set(handle, ZMQ_IO_THREADS, ioThreads)
        // Handles for sockets are bounded by default at 1023; a service never needs more than a handful.
        self.handle = handle
        self.curve = curve
        zapHandler = curve?.authorize.map { ZAPHandler(context: handle, authorize: $0) }
    }

    /// Makes every blocking call on this context's sockets return `ETERM`. Sockets must still be closed.
    public func shutdown() {
        zmq_ctx_shutdown(handle)
    }

    deinit {
        // The ZAP handler's socket closes when its blocking receive fails with ETERM.
        if zapHandler != nil { zmq_ctx_shutdown(handle) }
        // zmq_ctx_term blocks until every socket is closed; retry if a signal interrupted it.
        while zmq_ctx_term(handle) == -1 && zmq_errno() == EINTR {}
    }

    /// The libzmq version linked at run time, e.g. `(4, 3, 4)`.
    public static var version: (major: Int32, minor: Int32, patch: Int32) {
        var major: Int32 = 0
        var minor: Int32 = 0
        var patch: Int32 = 0
        zmq_version(&major, &minor, &patch)
        return (major, minor, patch)
    }
}
