public import Foundation
import CZMQ
import Glibc

/// CURVE for every `tcp://` endpoint of a context's sockets: a socket that binds one is a CURVE server with
/// ``keys``; a socket that connects to one is a CURVE client of the server key ``serverKey(for:)`` gives, with
/// ``keys`` as its own pair. `ipc://` and `inproc://` endpoints are left plain: the file system's permissions
/// guard an `ipc://` socket, and `inproc://` never leaves the process.
///
/// With an ``authorize`` check, the context runs a ZAP handler (RFC 27) on its own thread, so a server socket
/// accepts only the client keys the check allows; without one, any client that knows the server key gets in
/// (the traffic is still encrypted).
public struct CurveSettings: Sendable {
    /// This party's key pair: its server key where it binds, its client key where it connects.
    public var keys: CurveKeyPair
    /// The server's public key for endpoints that are not in ``serverKeys``.
    public var defaultServerKey: String
    /// The server's public key by endpoint, as the endpoint is written where it is connected.
    public var serverKeys: [String: String]
    /// Whether a client, by its public key (Z85) and address, may connect to a server socket of this context.
    public var authorize: (@Sendable (_ request: ZAPRequest) -> Bool)?
    /// Told of each failed handshake of a connecting socket, with the endpoint (the server refused this party's
    /// key, or the exchange failed); the socket connects again after a delay.
    public var handshakeFailed: (@Sendable (_ endpoint: String) -> Void)?

    /// Creates the settings.
    /// - Parameters:
    ///   - keys: This party's key pair.
    ///   - defaultServerKey: The servers' public key; by default this party's own (one pair for a whole stack).
    ///   - serverKeys: Server keys by endpoint.
    ///   - handshakeFailed: Told of each failed handshake of a connecting socket.
    ///   - authorize: The check of client keys; `nil` accepts any client.
    public init(
        keys: CurveKeyPair,
        defaultServerKey: String? = nil,
        serverKeys: [String: String] = [:],
        handshakeFailed: (@Sendable (_ endpoint: String) -> Void)? = nil,
        authorize: (@Sendable (_ request: ZAPRequest) -> Bool)? = nil
    ) {
        self.handshakeFailed = handshakeFailed
        self.keys = keys
        self.defaultServerKey = defaultServerKey ?? keys.publicKey
        self.serverKeys = serverKeys
        self.authorize = authorize
    }

    /// The public key of the server at `endpoint`.
    public func serverKey(for endpoint: String) -> String {
        serverKeys[endpoint] ?? defaultServerKey
    }

    /// True for the endpoints CURVE applies to.
    public static func applies(to endpoint: String) -> Bool { endpoint.hasPrefix("tcp://") }
}

/// One client asking a CURVE server socket to let it in, as the ZAP handler sees it.
public struct ZAPRequest: Sendable, Equatable {
    /// The ZAP domain: the endpoint the server socket bound, as it was written.
    public var domain: String
    /// The client's IP address.
    public var address: String
    /// The client's public key, Z85.
    public var publicKey: String

    /// Creates a request.
    public init(domain: String, address: String, publicKey: String) {
        self.domain = domain
        self.address = address
        self.publicKey = publicKey
    }
}

extension CurveKeyPair {
    /// The Z85 text of a 32-byte binary key (as ZAP hands it over); nil for another length.
    public static func z85(_ key: Data) -> String? {
        guard key.count == 32 else { return nil }
        var text = [CChar](repeating: 0, count: 41)
        let encoded = key.withUnsafeBytes { bytes in
            zmq_z85_encode(&text, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), 32)
        }
        return encoded == nil ? nil : String(cString: text)
    }
}

/// The ZAP handler of a context: a REP socket bound to `inproc://zeromq.zap.01` on a thread of its own,
/// answering each handshake with the settings' `authorize`. It is bound when the context is created, before
/// any socket of it binds, and ends when the context shuts down (its socket then fails with ETERM).
final class ZAPHandler: Sendable {
    /// Binds the handler's socket and starts its thread; returns once it is bound.
    init(context handle: UnsafeMutableRawPointer, authorize: @escaping @Sendable (ZAPRequest) -> Bool) {
        // Bound here, on the caller's thread, so no server socket can bind before it; then handed to the
        // thread, which alone uses it from now on.
        guard let socket = zmq_socket(handle, ZMQ_REP) else {
            preconditionFailure("zmq_socket(ZAP): \(ZMQError.last("zmq_socket"))")
        }
        var linger: Int32 = 0
        zmq_setsockopt(socket, ZMQ_LINGER, &linger, MemoryLayout<Int32>.size)
        guard zmq_bind(socket, "inproc://zeromq.zap.01") == 0 else {
            preconditionFailure("zmq_bind(inproc://zeromq.zap.01): \(ZMQError.last("zmq_bind")); one ZAP handler per context")
        }
        let box = UnsafeSendable(socket)
        let thread = Thread { Self.serve(box.value, authorize: authorize) }
        thread.name = "baton-zap"
        thread.start()
    }

    private static func serve(_ socket: UnsafeMutableRawPointer, authorize: @Sendable (ZAPRequest) -> Bool) {
        defer { zmq_close(socket) }
        while let frames = receive(socket) {
            // version, request id, domain, address, routing id, mechanism, then the mechanism's credentials.
            // Every request gets a reply, a malformed one a refusal: a REP that skipped one could receive no more.
            let text = { (index: Int) in index < frames.count ? String(decoding: frames[index], as: UTF8.self) : "" }
            var status = "400"
            var reason = "refused"
            var user = Data()
            if frames.count >= 7, text(0) == "1.0", text(5) == "CURVE", let key = CurveKeyPair.z85(frames[6]) {
                if authorize(ZAPRequest(domain: text(2), address: text(3), publicKey: key)) {
                    status = "200"
                    reason = "OK"
                    user = Data(key.utf8)
                } else {
                    reason = "client key not allowed"
                }
            }
            let reply = [Data("1.0".utf8), frames.count > 1 ? frames[1] : Data(), Data(status.utf8), Data(reason.utf8), user, Data()]
            guard send(socket, reply) else { return }
        }
    }

    /// The next request's frames; nil once the context is shut down.
    private static func receive(_ socket: UnsafeMutableRawPointer) -> [Data]? {
        var frames: [Data] = []
        while true {
            var message = zmq_msg_t()
            zmq_msg_init(&message)
            defer { zmq_msg_close(&message) }
            var size = zmq_msg_recv(&message, socket, 0)
            while size < 0 && zmq_errno() == EINTR { size = zmq_msg_recv(&message, socket, 0) }
            guard size >= 0 else { return nil }
            frames.append(Data(bytes: zmq_msg_data(&message), count: Int(size)))
            if zmq_msg_more(&message) == 0 { return frames }
        }
    }

    private static func send(_ socket: UnsafeMutableRawPointer, _ frames: [Data]) -> Bool {
        for (index, frame) in frames.enumerated() {
            let flags = index == frames.count - 1 ? Int32(0) : ZMQ_SNDMORE
            let sent = frame.withUnsafeBytes { bytes in zmq_send(socket, bytes.baseAddress, bytes.count, flags) }
            if sent < 0 { return false }
        }
        return true
    }
}

/// A raw pointer handed once to the thread that will use it alone.
private struct UnsafeSendable: @unchecked Sendable {
    // Safe: the socket is created and bound on one thread, then used only by the thread it is given to.
    let value: UnsafeMutableRawPointer
    init(_ value: UnsafeMutableRawPointer) { self.value = value }
}
