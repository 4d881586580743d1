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
/// from 1 s to 30 s with each refused reconnect (each refusal costs the server a ZAP round trip and a log line, so
/// retries stay slow), and starts again from 1 s once a handshake succeeds. It lives on the socket's thread, polled
/// with the socket.
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
        // Successful handshakes are watched in both cases: they end an endpoint's backoff.
        let events =
            ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
            | ZMQ_EVENT_HANDSHAKE_SUCCEEDED
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

    /// Reads the waiting events: each failed handshake is reported and its endpoint's reconnect scheduled; a
    /// successful one ends its endpoint's backoff. Returns whether a connection was made among them.
    mutating func readEvents(now: ContinuousClock.Instant) -> Bool {
        var connected = false
        while let frames = try? monitor.receive(wait: false) {
            guard frames.count >= 2 else { continue }
            // Frame 0: the event (16 bits) and its value (32 bits), in the host's byte order.
            let reported = String(decoding: frames[1], as: UTF8.self)
            // The event names the endpoint as libzmq resolved it; a socket of ours connects one endpoint.
            let endpoint = endpoints.contains(reported) ? reported : endpoints.count == 1 ? endpoints[0] : nil
            if frames[0].count >= 2,
                UInt16(frames[0][frames[0].startIndex]) | UInt16(frames[0][frames[0].startIndex + 1]) << 8
                    == UInt16(ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
            {
                connected = true
                if let endpoint { delays[endpoint] = nil }
                continue
            }
            guard let endpoint else { continue }
            report?(endpoint)
            // One reconnect per wait, however many failures it saw; the wait doubles when a reconnect is refused.
            if due[endpoint] == nil { due[endpoint] = now.advanced(by: delays[endpoint] ?? Self.firstDelay) }
        }
        return connected
    }

    /// Connects again every endpoint whose delay has passed.
    mutating func reconnectDue(_ socket: borrowing Socket, now: ContinuousClock.Instant) {
        for (endpoint, time) in due where time <= now {
            due[endpoint] = nil
            delays[endpoint] = delays[endpoint].map { min($0 * 2, Self.maxDelay) } ?? Self.firstDelay * 2
            // The socket's CURVE options are its own and stay set: a new connect handshakes with them again.
            _ = try? socket.withHandle { handle in zmq_disconnect(handle, endpoint) }
            try? socket.connect(endpoint)
        }
    }
}
