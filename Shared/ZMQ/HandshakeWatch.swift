import Foundation
import CZMQ
import Glibc

/// A connecting CURVE socket's watch on its handshakes.
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

    /// A watch for `socket`'s `tcp://` connects, when its context uses CURVE; nil otherwise.
    init?(socket: borrowing Socket, context: Context, connects: [String]) {
        guard let curve = context.curve else { return nil }
        let endpoints = connects.filter(CurveSettings.applies)
        guard !endpoints.isEmpty else { return nil }
        let address = "inproc://baton-handshake-\(UUID().uuidString)"
        let events = ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
        let watching: Bool = (try? socket.withHandle { handle in zmq_socket_monitor(handle, address, events) == 0 }) ?? false
        guard watching, let monitor = try? Socket(context: context, type: .pair), (try? monitor.connect(address)) != nil else { return nil }
        self.monitor = monitor
        self.endpoints = endpoints
        report = curve.handshakeFailed
    }

    /// The monitor's poll item (readable when an event is waiting).
    func pollItem() -> PollItem { monitor.pollItem(.readable) }

    /// How long until the next reconnect is due; nil when none is.
    func timeout(now: ContinuousClock.Instant) -> Duration? {
        due.values.min().map { max(.zero, now.duration(to: $0)) }
    }

    /// Reads the waiting events: each failed handshake is reported and its endpoint's reconnect scheduled.
    mutating func readEvents(now: ContinuousClock.Instant) {
        while let frames = try? monitor.receive(wait: false) {
            guard frames.count >= 2 else { continue }
            let reported = String(decoding: frames[1], as: UTF8.self)
            // The event names the endpoint as libzmq resolved it; a socket of ours connects one endpoint.
            guard let endpoint = endpoints.contains(reported) ? reported : endpoints.count == 1 ? endpoints[0] : nil else { continue }
            report?(endpoint)
            let delay = delays[endpoint].map { min($0 * 2, Self.maxDelay) } ?? Self.firstDelay
            delays[endpoint] = delay
            if due[endpoint] == nil { due[endpoint] = now.advanced(by: delay) }
        }
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
