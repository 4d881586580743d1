public import Foundation
import CZMQ
import Glibc

/// A libzmq socket with an owner: move-only, closed exactly once, never shared between threads.
///
/// libzmq sockets are not thread-safe, so `Socket` is `~Copyable` and not `Sendable`: it lives on the thread
/// that created it. To use a socket from async code, wrap it in an ``AsyncSocket``, which creates the socket
/// on a dedicated thread and keeps it there.
///
/// EINTR is retried inside every call; EAGAIN becomes `nil` or `false`; anything else throws a ``ZMQError``.
public struct Socket: ~Copyable {
    /// The context this socket belongs to; held strongly so it outlives the socket.
    public let context: Context
    /// The socket's pattern.
    public let type: SocketType
    private var handle: UnsafeMutableRawPointer?

    /// Creates a socket. It is closed when the value is consumed or goes out of scope.
    /// - Parameters:
    ///   - context: The context that owns the socket's I/O.
    ///   - type: The socket pattern.
    public init(context: Context, type: SocketType) throws(ZMQError) {
        guard let handle = zmq_socket(context.handle, type.rawValue) else {
            throw ZMQError.last("zmq_socket(\(type))")
        }
        self.context = context
        self.type = type
        self.handle = handle
        // Never let a forgotten message block close or context termination.
        _ = SocketOption.linger(.zero).apply(to: handle)
    }

    deinit {
        if let handle { zmq_close(handle) }
    }

    /// Closes the socket. Safe to call more than once; later calls do nothing.
    public mutating func close() {
        if let handle {
            zmq_close(handle)
            self.handle = nil
        }
    }

    /// True until ``close()`` is called.
    public var isOpen: Bool { handle != nil }

    private func open(_ operation: @autoclosure () -> String) throws(ZMQError) -> UnsafeMutableRawPointer {
        guard let handle else { throw ZMQError(code: ZMQError.closed, operation: operation()) }
        return handle
    }

    /// Sets an option.
    public func set(_ option: SocketOption) throws(ZMQError) {
        if let error = option.apply(to: try open("zmq_setsockopt")) { throw error }
    }

    /// Binds to an endpoint and returns the endpoint actually bound (a `tcp://host:*` or `:0` gets its port).
    @discardableResult
    public func bind(_ endpoint: String) throws(ZMQError) -> String {
        let handle = try open("zmq_bind(\(endpoint))")
        if let curve = context.curve, CurveSettings.applies(to: endpoint) {
            try set(.curveServer(curve.keys))
            // The domain names the socket in the ZAP handler's requests (and so in `auth.refused`).
            if curve.authorize != nil {
                try set(.zapDomain(endpoint))
                // Should the handler ever be gone, handshakes fail rather than pass unchecked (best effort: the
                // option is a draft one).
                try? set(.zapEnforceDomain(true))
            }
        }
        guard zmq_bind(handle, endpoint) == 0 else { throw ZMQError.last("zmq_bind(\(endpoint))") }
        return lastEndpoint ?? endpoint
    }

    /// Connects to an endpoint; the connection is made (and remade) in the background.
    public func connect(_ endpoint: String) throws(ZMQError) {
        let handle = try open("zmq_connect(\(endpoint))")
        if let curve = context.curve, CurveSettings.applies(to: endpoint) {
            try set(.curveClient(serverKey: curve.serverKey(for: endpoint), keys: curve.keys))
        }
        guard zmq_connect(handle, endpoint) == 0 else { throw ZMQError.last("zmq_connect(\(endpoint))") }
    }

    /// The last endpoint bound, with a wildcard port resolved.
    public var lastEndpoint: String? {
        guard let handle else { return nil }
        var buffer = [CChar](repeating: 0, count: 1024)
        var size = buffer.count
        guard zmq_getsockopt(handle, ZMQ_LAST_ENDPOINT, &buffer, &size) == 0 else { return nil }
        return String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Sends a multipart message: SNDMORE on every part but the last.
    /// - Parameters:
    ///   - parts: The frames; at least one.
    ///   - wait: When false, returns `false` instead of blocking if the message cannot be queued now.
    /// - Returns: `true` when libzmq took the whole message, `false` on EAGAIN (nothing was queued).
    @discardableResult
    public func send(_ parts: [Data], wait: Bool = true) throws(ZMQError) -> Bool {
        precondition(!parts.isEmpty, "a ZeroMQ message has at least one frame")
        let handle = try open("zmq_send")
        for (index, part) in parts.enumerated() {
            var flags: Int32 = wait ? 0 : ZMQ_DONTWAIT
            if index < parts.count - 1 { flags |= ZMQ_SNDMORE }
            while true {
                let rc =
                    part.count >= Self.zeroCopy
                    ? Self.sendLent(part, to: handle, flags: flags) : Self.sendCopy(part, to: handle, flags: flags)
                if rc >= 0 { break }
                let error = ZMQError.last("zmq_send(\(type))")
                if error.code == EINTR { continue }
                // Later frames of a multipart message are queued atomically with the first: EAGAIN only on frame 0.
                if error.code == EAGAIN && index == 0 { return false }
                throw error
            }
        }
        return true
    }

    /// Receives one whole multipart message.
    /// - Parameter wait: When false, returns `nil` instead of blocking if no message is waiting.
    /// - Returns: The frames, or `nil` on EAGAIN.
    public func receive(wait: Bool = true) throws(ZMQError) -> [Data]? {
        let handle = try open("zmq_msg_recv")
        var parts: [Data] = []
        var message = zmq_msg_t()
        zmq_msg_init(&message)
        defer { zmq_msg_close(&message) }
        while true {
            let flags: Int32 = (wait || !parts.isEmpty) ? 0 : ZMQ_DONTWAIT
            let rc = zmq_msg_recv(&message, handle, flags)
            if rc < 0 {
                let error = ZMQError.last("zmq_msg_recv(\(type))")
                if error.code == EINTR { continue }
                if error.code == EAGAIN && parts.isEmpty { return nil }
                throw error
            }
            let size = zmq_msg_size(&message)
            // Read `more` before the message is moved, reused or closed.
            let more = zmq_msg_more(&message) != 0
            if size >= Self.zeroCopy {
                parts.append(Self.keep(&message))
            } else if size > 0, let data = zmq_msg_data(&message) {
                parts.append(Data(bytes: data, count: size))
            } else {
                parts.append(Data())
            }
            if !more { return parts }
        }
    }

    /// The events the socket is ready for right now.
    public func events() throws(ZMQError) -> PollEvents {
        let handle = try open("zmq_getsockopt(ZMQ_EVENTS)")
        var value: Int32 = 0
        var size = MemoryLayout<Int32>.size
        guard zmq_getsockopt(handle, ZMQ_EVENTS, &value, &size) == 0 else {
            throw ZMQError.last("zmq_getsockopt(ZMQ_EVENTS)")
        }
        return PollEvents(rawValue: Int16(truncatingIfNeeded: value))
    }

    /// A poll item for this socket, for ``poll(_:timeout:)``.
    public func pollItem(_ events: PollEvents) -> PollItem {
        PollItem(socket: handle, fd: -1, events: events)
    }

    /// From this size on, a frame is not copied between Swift and libzmq: a sent frame's bytes are lent to libzmq
    /// until its I/O thread has written them (``sendLent(_:to:flags:)``), and a received frame's `Data` is the
    /// libzmq message's own buffer (``keep(_:)``). So a result of a gigabyte is in memory once on each side, not
    /// twice. Below it, a copy costs less than the hand-over (an allocation and, on the send side, a release
    /// from libzmq's I/O thread).
    static let zeroCopy = 64 << 10

    private static func sendCopy(_ part: Data, to handle: UnsafeMutableRawPointer, flags: Int32) -> Int32 {
        part.withUnsafeBytes { zmq_send(handle, $0.baseAddress, $0.count, flags) }
    }

    /// Sends `part` without copying it: libzmq gets its bytes and a retained box holding the `Data`, which its
    /// free function (``releaseLent``, called by libzmq once the message is written or dropped) lets go. The
    /// box's `Data` is never mutated, so its bytes stay where they are while libzmq holds them.
    private static func sendLent(_ part: Data, to handle: UnsafeMutableRawPointer, flags: Int32) -> Int32 {
        let box = LentFrame(part)
        let hint = Unmanaged.passRetained(box).toOpaque()
        var message = zmq_msg_t()
        let initialised = box.data.withUnsafeBytes { bytes in
            zmq_msg_init_data(&message, UnsafeMutableRawPointer(mutating: bytes.baseAddress), bytes.count, releaseLent, hint)
        }
        guard initialised == 0 else {
            Unmanaged<LentFrame>.fromOpaque(hint).release()
            return -1
        }
        let rc = zmq_msg_send(&message, handle, flags)
        if rc < 0 {
            // Not taken: the message is still ours, and closing it calls the free function (the box's release).
            let saved = errno
            zmq_msg_close(&message)
            errno = saved
        }
        return rc
    }

    /// Moves a received message's buffer into a `Data` that closes the message when it goes; `message` is left
    /// empty, ready for the next frame.
    private static func keep(_ message: inout zmq_msg_t) -> Data {
        let held = UnsafeMutablePointer<zmq_msg_t>.allocate(capacity: 1)
        zmq_msg_init(held)
        zmq_msg_move(held, &message)
        guard let bytes = zmq_msg_data(held) else {
            zmq_msg_close(held)
            held.deallocate()
            return Data()
        }
        return Data(
            bytesNoCopy: bytes,
            count: zmq_msg_size(held),
            deallocator: .custom { _, _ in
                zmq_msg_close(held)
                held.deallocate()
            }
        )
    }

    /// Runs `body` with the raw libzmq handle, for calls the wrapper does not cover (e.g. `zmq_proxy`).
    func withHandle<R>(_ body: (UnsafeMutableRawPointer) throws(ZMQError) -> R) throws(ZMQError) -> R {
        try body(try open("zmq handle"))
    }
}

/// A sent frame's bytes, kept alive until libzmq has written them (see ``Socket/zeroCopy``).
private final class LentFrame {
    let data: Data
    init(_ data: Data) { self.data = data }
}

/// libzmq's free function for a lent frame: called on the I/O thread (or in `zmq_msg_close`) with the box.
private func releaseLent(_ bytes: UnsafeMutableRawPointer?, _ hint: UnsafeMutableRawPointer?) {
    guard let hint else { return }
    Unmanaged<LentFrame>.fromOpaque(hint).release()
}
