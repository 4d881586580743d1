import CZMQ
import Glibc

/// An error from libzmq, carrying the C `errno` so that callers can tell EAGAIN, ETERM and EINTR apart.
public struct ZMQError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The C error number (`errno`) that libzmq reported.
    public let code: Int32
    /// The libzmq call or wrapper operation that failed, e.g. `"zmq_bind(tcp://127.0.0.1:5555)"`.
    public let operation: String

    /// Creates an error from an errno value.
    /// - Parameters:
    ///   - code: The C error number.
    ///   - operation: What was being done when it happened.
    public init(code: Int32, operation: String) {
        self.code = code
        self.operation = operation
    }

    /// The error libzmq reports for the calling thread's last failed call.
    static func last(_ operation: @autoclosure () -> String) -> ZMQError {
        ZMQError(code: zmq_errno(), operation: operation())
    }

    /// The text libzmq gives for this error number.
    public var message: String { String(cString: zmq_strerror(code)) }

    /// True when the context was terminated (`ETERM`): the socket must be closed.
    public var isTerminated: Bool { code == ZMQError.terminated }

    /// True when the socket was closed by its owner while an operation waited on it.
    public var isClosed: Bool { code == ZMQError.closed }

    public var description: String { "\(operation): \(message) (errno \(code))" }

    /// `ETERM`: the context was terminated.
    public static let terminated: Int32 = ETERM
    /// `EAGAIN`: the operation would block.
    public static let wouldBlock: Int32 = EAGAIN
    /// `EINTR`: interrupted by a signal; every wrapper call retries it.
    public static let interrupted: Int32 = EINTR
    /// `EHOSTUNREACH`: no peer to route to.
    public static let hostUnreachable: Int32 = EHOSTUNREACH
    /// `ENOTSOCK`-like code the wrapper uses when a socket was closed under a waiting operation.
    public static let closed: Int32 = EBADF
    /// `ETIMEDOUT`: a timed operation ran out of time.
    public static let timedOut: Int32 = ETIMEDOUT
}
