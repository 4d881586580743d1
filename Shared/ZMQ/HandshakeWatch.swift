import Foundation
import CZMQ
import Glibc

/// A connecting socket's watch on its handshakes: failed ones of CURVE connects (below), and, when asked for
/// (``AsyncSocket/Configuration/watchConnections``), every connection made, so that a message the peer must have
/// on each connection (a processor's open ask for work) is sent again after a reconnect.
///
/// libzmq treats a failed handshake (a server that refused this party's key, or an error in the exchange) as a
/// protocol error and never connects that endpoint again. A client whose key is added to the server's allow-list
/// a minute later would stay cut off until restarted, and one refused while a server rotates its list would
/// silently stop working. The watch reads the socket's monitor events for failed handshakes, tells the
/// context's ``CurveSettings/handshakeFailed`` hook, and connects the endpoint again after a delay that doubles
/// from 1 s to 30 s (each refusal costs the server a ZAP round trip and a log line, so retries stay slow).
/// It lives on the socket's thread, polled with the socket.
struct HandshakeWatch: ~Copyable {
    private var monitor: Socket
    private let endpoints: [String]
    private let report: (@Sendable (String) -> Void)?
    private var due: [String: ContinuousClock.Instant] = [:]
    private var delays: [String: Duration] = [:]
    static let firstDelay = Duration.seconds(1)
    static let maxDelay = Duration.seconds(30)

    /// A watch for `socket`'s `tcp://` connects when its context uses CURVE, and for every connection made when
    /// `connections` is set; nil when there is nothing to watch.
    init?(socket: borrowing Socket, context: Context, connects: [String], connections: Bool = false) {
        let endpoints = context.curve == nil ? [] : connects.filter(CurveSettings.applies)
        let connections = connections && !connects.isEmpty
        guard !endpoints.isEmpty || connections else { return nil }
        let address = "inproc://baton-handshake-\(UUID().uuidString)"
        var events = ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
        if connections { events |= ZMQ_EVENT_HANDSHAKE_SUCCEEDED }
        let watching: Bool = (try? socket.withHandle { handle in zmq_socket_monitor(handle, address, events) == 0 }) ?? false
        guard watching, let monitor = try? Socket(context: context, type: .pair), (try? monitor.connect(address)) != nil else { return nil }
        self.monitor = monitor
        self.endpoints = endpoints
        report = context.curve?.handshakeFailed
    }

    /// The monitor's poll item (readable when an event is waiting).
    func pollItem() -> PollItem { monitor.pollItem(.readable) }

    /// How long until the next reconnect is due; nil when none is.
    func timeout(now: ContinuousClock.Instant) -> Duration? {
        due.values.min().map { max(.zero, now.duration(to: $0)) }
    }

    /// Reads the waiting events: each failed handshake is reported and its endpoint's reconnect scheduled.
    /// Returns whether a connection was made (a handshake succeeded) among them.
    mutating func readEvents(now: ContinuousClock.Instant) -> Bool {
        var connected = false
        while let frames = try? monitor.receive(wait: false) {
            guard frames.count >= 2 else { continue }
            // Frame 0: the event (16 bits) and its value (32 bits), in the host's byte order.
            if frames[0].count >= 2,
                UInt16(frames[0][frames[0].startIndex]) | UInt16(frames[0][frames[0].startIndex + 1]) << 8
                    == UInt16(ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
            {
                connected = true
                continue
            }
            let reported = String(decoding: frames[1], as: UTF8.self)
            // The event names the endpoint as libzmq resolved it; a socket of ours connects one endpoint.
            guard let endpoint = endpoints.contains(reported) ? reported : endpoints.count == 1 ? endpoints[0] : nil else { continue }
            report?(endpoint)
            let delay = delays[endpoint].map { min($0 * 2, Self.maxDelay) } ?? Self.firstDelay
            delays[endpoint] = delay
            if due[endpoint] == nil { due[endpoint] = now.advanced(by: delay) }
        }
        return connected
    }

    /// Connects again every endpoint whose delay has passed.
    mutating func reconnectDue(_ socket: borrowing Socket, now: ContinuousClock.Instant) {
        for (endpoint, time) in due where time <= now {
            due[endpoint] = nil
            // The socket's CURVE options are its own and stay set: a new connect handshakes with them again.
            _ = try? socket.withHandle { handle in zmq_disconnect(handle, endpoint) }
            try? socket.connect(endpoint)
        }
    }
}
