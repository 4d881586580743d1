import CZMQ

/// A socket option with its value, applied with ``Socket/set(_:)``.
public enum SocketOption: Sendable {
    /// How long unsent messages linger after close; `nil` waits forever (libzmq's default, rarely wanted).
    case linger(Duration?)
    /// Outgoing queue limit per peer, in messages (0 = unlimited).
    case sendHighWaterMark(Int32)
    /// Incoming queue limit per peer, in messages (0 = unlimited).
    case receiveHighWaterMark(Int32)
    /// Queue messages only to completed connections, never to peers still connecting.
    case immediate(Bool)
    /// Largest inbound message accepted, in bytes; a larger one drops the connection (-1 = no limit).
    case maxMessageSize(Int64)
    /// ZMTP heartbeats: ping every `interval`, drop the peer when no traffic for `timeout`, ask the peer for `ttl`.
    case heartbeat(interval: Duration, timeout: Duration, ttl: Duration)
    /// SUB: receive messages whose first frame starts with this prefix (empty = everything).
    case subscribe([UInt8])
    /// SUB: stop receiving messages with this prefix.
    case unsubscribe([UInt8])
    /// Initial and maximum reconnect intervals for connected endpoints.
    case reconnectInterval(Duration, max: Duration)
    /// XPUB: pass every subscription message to the application, not only new ones.
    case xpubVerbose(Bool)
    /// REQ: do not block when a reply never comes; allow a new request after a timeout.
    case requestRelaxed(Bool)
    /// REQ: match replies to requests, dropping stale ones.
    case requestCorrelate(Bool)
    /// `ZMQ_SNDBUF` and `ZMQ_RCVBUF`: the kernel's TCP buffer sizes in bytes (0 keeps the OS default).
    case tcpBuffers(send: Int32, receive: Int32)
    /// CURVE as the server: peers must know this pair's public key, and are authenticated by the context's ZAP
    /// handler when one is running (otherwise any client key is accepted; the traffic is still encrypted).
    case curveServer(CurveKeyPair)
    /// CURVE as a client of the server whose public key is `serverKey`, authenticating with `keys`.
    case curveClient(serverKey: String, keys: CurveKeyPair)
    /// The ZAP domain a server socket's handshakes are authenticated in (the context's ZAP handler sees it).
    case zapDomain(String)
    /// Refuse every handshake when no ZAP handler answers, instead of letting it in (libzmq's default for
    /// CURVE). A draft option (`ZMQ_ZAP_ENFORCE_DOMAIN`, 93) that Debian's libzmq accepts; an error means this
    /// libzmq lacks it.
    case zapEnforceDomain(Bool)
    /// ROUTER: a message to a peer that is not connected fails with `EHOSTUNREACH` instead of vanishing.
    case routerMandatory(Bool)
    /// ROUTER: a peer connecting with the routing id of a connected one takes it over (a processor that
    /// reconnected) instead of being refused.
    case routerHandover(Bool)
    /// The routing id this socket presents to a ROUTER it connects to (1 to 255 bytes).
    case routingID([UInt8])

    func apply(to handle: UnsafeMutableRawPointer) -> ZMQError? {
        switch self {
        case .linger(let duration):
            return setInt(handle, ZMQ_LINGER, duration.map(Self.milliseconds) ?? -1, "ZMQ_LINGER")
        case .sendHighWaterMark(let value):
            return setInt(handle, ZMQ_SNDHWM, value, "ZMQ_SNDHWM")
        case .receiveHighWaterMark(let value):
            return setInt(handle, ZMQ_RCVHWM, value, "ZMQ_RCVHWM")
        case .immediate(let on):
            return setInt(handle, ZMQ_IMMEDIATE, on ? 1 : 0, "ZMQ_IMMEDIATE")
        case .maxMessageSize(let bytes):
            var value = bytes
            return check(zmq_setsockopt(handle, ZMQ_MAXMSGSIZE, &value, MemoryLayout<Int64>.size), "ZMQ_MAXMSGSIZE")
        case .heartbeat(let interval, let timeout, let ttl):
            return setInt(handle, ZMQ_HEARTBEAT_IVL, Self.milliseconds(interval), "ZMQ_HEARTBEAT_IVL")
                ?? setInt(handle, ZMQ_HEARTBEAT_TIMEOUT, Self.milliseconds(timeout), "ZMQ_HEARTBEAT_TIMEOUT")
                ?? setInt(handle, ZMQ_HEARTBEAT_TTL, Self.milliseconds(ttl), "ZMQ_HEARTBEAT_TTL")
        case .subscribe(let prefix):
            return setBytes(handle, ZMQ_SUBSCRIBE, prefix, "ZMQ_SUBSCRIBE")
        case .unsubscribe(let prefix):
            return setBytes(handle, ZMQ_UNSUBSCRIBE, prefix, "ZMQ_UNSUBSCRIBE")
        case .reconnectInterval(let initial, let max):
            return setInt(handle, ZMQ_RECONNECT_IVL, Self.milliseconds(initial), "ZMQ_RECONNECT_IVL")
                ?? setInt(handle, ZMQ_RECONNECT_IVL_MAX, Self.milliseconds(max), "ZMQ_RECONNECT_IVL_MAX")
        case .xpubVerbose(let on):
            return setInt(handle, ZMQ_XPUB_VERBOSE, on ? 1 : 0, "ZMQ_XPUB_VERBOSE")
        case .requestRelaxed(let on):
            return setInt(handle, ZMQ_REQ_RELAXED, on ? 1 : 0, "ZMQ_REQ_RELAXED")
        case .requestCorrelate(let on):
            return setInt(handle, ZMQ_REQ_CORRELATE, on ? 1 : 0, "ZMQ_REQ_CORRELATE")
        case .tcpBuffers(let send, let receive):
            return setInt(handle, ZMQ_SNDBUF, send, "ZMQ_SNDBUF") ?? setInt(handle, ZMQ_RCVBUF, receive, "ZMQ_RCVBUF")
        case .curveServer(let keys):
            return setInt(handle, ZMQ_CURVE_SERVER, 1, "ZMQ_CURVE_SERVER")
                ?? setKey(handle, ZMQ_CURVE_SECRETKEY, keys.secretKey, "ZMQ_CURVE_SECRETKEY")
        case .curveClient(let serverKey, let keys):
            return setKey(handle, ZMQ_CURVE_SERVERKEY, serverKey, "ZMQ_CURVE_SERVERKEY")
                ?? setKey(handle, ZMQ_CURVE_PUBLICKEY, keys.publicKey, "ZMQ_CURVE_PUBLICKEY")
                ?? setKey(handle, ZMQ_CURVE_SECRETKEY, keys.secretKey, "ZMQ_CURVE_SECRETKEY")
        case .zapDomain(let domain):
            return setBytes(handle, ZMQ_ZAP_DOMAIN, Array(domain.utf8), "ZMQ_ZAP_DOMAIN")
        case .zapEnforceDomain(let on):
            return setInt(handle, 93, on ? 1 : 0, "ZMQ_ZAP_ENFORCE_DOMAIN")
        case .routerMandatory(let on):
            return setInt(handle, ZMQ_ROUTER_MANDATORY, on ? 1 : 0, "ZMQ_ROUTER_MANDATORY")
        case .routerHandover(let on):
            return setInt(handle, ZMQ_ROUTER_HANDOVER, on ? 1 : 0, "ZMQ_ROUTER_HANDOVER")
        case .routingID(let id):
            return setBytes(handle, ZMQ_ROUTING_ID, id, "ZMQ_ROUTING_ID")
        }
    }

    static func milliseconds(_ duration: Duration) -> Int32 {
        let (seconds, attoseconds) = duration.components
        let ms = seconds * 1000 + attoseconds / 1_000_000_000_000_000
        return Int32(clamping: ms)
    }

    private func setInt(_ handle: UnsafeMutableRawPointer, _ name: Int32, _ value: Int32, _ label: String) -> ZMQError? {
        var value = value
        return check(zmq_setsockopt(handle, name, &value, MemoryLayout<Int32>.size), label)
    }

    /// A Z85 key, passed with its terminating NUL (41 bytes), the form libzmq decodes.
    private func setKey(_ handle: UnsafeMutableRawPointer, _ name: Int32, _ key: String, _ label: String) -> ZMQError? {
        guard CurveKeyPair.isKey(key) else { return ZMQError(code: EINVAL, operation: "\(label): not a 40-character Z85 key") }
        return setBytes(handle, name, Array(key.utf8) + [0], label)
    }

    private func setBytes(_ handle: UnsafeMutableRawPointer, _ name: Int32, _ value: [UInt8], _ label: String) -> ZMQError? {
        value.withUnsafeBytes { check(zmq_setsockopt(handle, name, $0.baseAddress, $0.count), label) }
    }

    private func check(_ rc: Int32, _ label: String) -> ZMQError? {
        rc == 0 ? nil : ZMQError.last("zmq_setsockopt(\(label))")
    }
}
