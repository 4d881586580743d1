import CoreMetrics
public import Logging
import Messaging
public import MetricsHTTP
import Synchronization
public import ZMQ

/// What a service does when its ZAP handler turns a client away: an `auth.refused` event with the endpoint, the
/// client's address and public key, a warning log line, and a count in `baton_auth_refused_total{endpoint}`.
///
/// A refused client reconnects over and over (libzmq retries every few seconds), so each `(endpoint, address,
/// key)` is reported once per `window`; the next report says how many refusals it stands for (`count`). The ZAP
/// handler's thread calls ``record(_:)``; the events go out once ``attach(publisher:logger:metrics:)`` has been
/// called (a service binds no socket before that).
public final class AuthRefusals: Sendable {
    private struct Seen {
        var reported: ContinuousClock.Instant
        var since = 0
    }

    private struct Sink {
        var publisher: StatusPublisher
        var logger: Logger
        var metrics: ServiceMetrics
    }

    private struct State {
        var sink: Sink?
        var seen: [String: Seen] = [:]
        var turnedDown: [String: Seen] = [:]
    }

    /// How long one client's refusals are summed before they are reported again.
    public let window: Duration
    private let now: @Sendable () -> ContinuousClock.Instant
    private let state = Mutex(State())
    /// The most clients remembered; older ones are forgotten first (reported again if they come back).
    static let capacity = 1024

    /// Creates the reporter.
    /// - Parameters:
    ///   - window: How long one client's refusals are summed.
    ///   - now: The clock (injected by tests).
    public init(window: Duration = .seconds(10), now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }) {
        self.window = window
        self.now = now
    }

    /// Where reports go from now on.
    public func attach(publisher: StatusPublisher, logger: Logger, metrics: ServiceMetrics) {
        state.withLock { $0.sink = Sink(publisher: publisher, logger: logger, metrics: metrics) }
    }

    /// Records one refusal; returns how many refusals the report stands for, or nil when it is summed for later.
    @discardableResult
    public func record(_ request: ZAPRequest) -> Int? {
        let time = now()
        let identity = "\(request.domain) \(request.address) \(request.publicKey)"
        let (count, sink) = state.withLock { state -> (Int?, Sink?) in
            var seen = state.seen[identity] ?? Seen(reported: time - window * 2)
            seen.since += 1
            defer { state.seen[identity] = seen }
            guard time - seen.reported >= window else { return (nil, state.sink) }
            let count = seen.since
            seen = Seen(reported: time)
            if state.seen.count >= Self.capacity, let oldest = state.seen.min(by: { $0.value.reported < $1.value.reported })?.key {
                state.seen[oldest] = nil
            }
            return (count, state.sink)
        }
        sink?.metrics.counter("baton_auth_refused_total", [("endpoint", request.domain)]).increment()
        guard let count, let sink else { return count }
        let address = WireText.escape(request.address, limit: 100)
        let endpoint = WireText.escape(request.domain, limit: 200)
        sink.logger.warning(
            "refused a client whose key is not allowed",
            metadata: ["endpoint": "\(endpoint)", "address": "\(address)", "key": "\(request.publicKey)", "count": "\(count)"]
        )
        sink.publisher.publish(
            EventType.authRefused,
            level: "warning",
            message: "refused a client at \(address) on \(endpoint): its key \(request.publicKey) is not allowed",
            attributes: ["endpoint": endpoint, "address": address, "key": request.publicKey, "count": "\(count)"]
        )
        return count
    }

    /// Records that a server turned down one of this process's handshakes (its key is not allowed there, most
    /// likely): an error log line once per endpoint and window, saying how many it stands for. The socket
    /// connects again by itself (``HandshakeWatch``), so the line says so.
    @discardableResult
    public func turnedDown(_ endpoint: String) -> Int? {
        let time = now()
        let (count, sink) = state.withLock { state -> (Int?, Sink?) in
            var seen = state.turnedDown[endpoint] ?? Seen(reported: time - window * 2)
            seen.since += 1
            defer { state.turnedDown[endpoint] = seen }
            guard time - seen.reported >= window else { return (nil, state.sink) }
            let count = seen.since
            seen = Seen(reported: time)
            return (count, state.sink)
        }
        guard let count, let sink else { return count }
        sink.logger.error(
            "the server turned down this process's CURVE handshake: is this key on its curve.allow, and curve.server_key its key? Retrying",
            metadata: ["endpoint": "\(WireText.escape(endpoint, limit: 200))", "count": "\(count)"]
        )
        return count
    }
}
