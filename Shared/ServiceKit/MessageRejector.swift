public import Foundation
public import Logging
import Messaging
import CoreMetrics
public import MetricsHTTP
import Synchronization

/// The one way a receiving socket turns away bad input: a `message.rejected` event with the socket, a reason
/// from a fixed vocabulary and a sanitised excerpt, a warning log line, and a count in
/// `baton_messages_rejected_total{socket,reason}`.
///
/// Floods are rate-limited per socket: at most `maxPerSecond` events (and log lines) in any one-second
/// window; the rest are only counted, and when the window ends one summary event says how many were
/// suppressed, with a few of their reasons as samples. Nothing here ever publishes in reply to its own
/// events, so a rejection cannot loop.
///
/// ```swift
/// let rejector = MessageRejector(socket: "reports", publisher: publisher, logger: logger, metrics: metrics)
/// do { report = try Wire.decode(RunReport.self, from: frames).message } catch { rejector.reject(error, frames: frames) }
/// ```
public final class MessageRejector: Sendable {
    /// Why a message was rejected: the `reason` attribute and metric label.
    public struct Reason: Sendable, Hashable, CustomStringConvertible {
        /// The word used on the wire and in metrics.
        public let rawValue: String
        private init(_ rawValue: String) { self.rawValue = rawValue }

        /// Wrong number of frames.
        public static let frames = Reason("frames")
        /// Unknown protocol identifier or version.
        public static let version = Reason("version")
        /// A message kind this socket does not take.
        public static let kind = Reason("kind")
        /// The JSON is not valid or not of the expected shape.
        public static let json = Reason("json")
        /// A field is missing a value in its range or format.
        public static let field = Reason("field")
        /// A payload does not match its size or checksum.
        public static let checksum = Reason("checksum")
        /// A message or subscription larger than its limit.
        public static let size = Reason("size")
        /// More distinct subscriptions than the limit.
        public static let subscriptions = Reason("subscriptions")
        /// Anything else the receiver could not take.
        public static let other = Reason("other")

        /// The reason for a decoding error: a ``ProtocolError``'s code, else ``other``.
        public init(_ error: any Error) {
            guard let error = error as? ProtocolError else {
                self = .other
                return
            }
            switch error.code {
            case .frames: self = .frames
            case .version: self = .version
            case .kind: self = .kind
            case .header: self = .json
            case .field: self = .field
            case .checksum: self = .checksum
            default: self = .other
            }
        }

        public var description: String { rawValue }
    }

    /// What ``reject(_:detail:frames:)`` did with a rejection.
    public enum Outcome: Sendable, Equatable {
        /// Published and logged.
        case reported
        /// Only counted: the socket's budget for this second is spent.
        case suppressed
    }

    /// The socket's name in events and metrics, e.g. `reports`.
    public let socket: String
    /// The most events per second; further rejections in the same second are counted and summarised.
    public let maxPerSecond: Int
    /// How many bytes of the first frame an event quotes.
    public static let excerptBytes = 64
    /// How many suppressed reasons a summary names.
    public static let sampleCount = 5

    private let publisher: StatusPublisher?
    private let logger: Logger
    private let metrics: ServiceMetrics
    private let now: @Sendable () -> ContinuousClock.Instant
    private let state: Mutex<Window>

    private struct Window {
        var start: ContinuousClock.Instant
        var reported = 0
        var suppressed = 0
        var samples: [String] = []
        var flushScheduled = false
    }

    /// Creates a rejector for one socket.
    /// - Parameters:
    ///   - socket: The socket's name (`reports`, `control`, `query`, `status_in`, `status_out`, `runs`, `acks`, `results`).
    ///   - publisher: Where `message.rejected` goes; nil publishes nothing (logs and counts only).
    ///   - logger: Where the warning goes.
    ///   - metrics: Where `baton_messages_rejected_total` is counted.
    ///   - maxPerSecond: Events per second before rejections are only counted.
    ///   - now: The clock (injected by tests).
    public init(
        socket: String,
        publisher: StatusPublisher?,
        logger: Logger,
        metrics: ServiceMetrics = .disabled,
        maxPerSecond: Int = 10,
        now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }
    ) {
        self.socket = socket
        self.publisher = publisher
        self.logger = logger
        self.metrics = metrics
        self.maxPerSecond = max(maxPerSecond, 1)
        self.now = now
        state = Mutex(Window(start: now()))
    }

    /// Rejects a message that failed to decode: the reason comes from the error.
    @discardableResult
    public func reject(_ error: any Error, frames: [Data]) -> Outcome {
        let detail = (error as? ProtocolError)?.reason ?? "\(error)"
        return reject(Reason(error), detail: detail, frames: frames)
    }

    /// Rejects a message.
    /// - Parameters:
    ///   - reason: Why, from the fixed vocabulary.
    ///   - detail: A sentence saying what is wrong; escaped and bounded before it is shown.
    ///   - frames: The message as received; only an escaped excerpt of its first frame is shown.
    /// - Returns: Whether it was reported or only counted.
    @discardableResult
    public func reject(_ reason: Reason, detail: String, frames: [Data]) -> Outcome {
        metrics.counter("baton_messages_rejected_total", [("socket", socket), ("reason", reason.rawValue)]).increment()
        let time = now()
        let (summary, report, scheduleFlush) = state.withLock { window -> (Summary?, Bool, Bool) in
            let summary = roll(&window, at: time)
            if window.reported < maxPerSecond {
                window.reported += 1
                return (summary, true, false)
            }
            window.suppressed += 1
            if window.samples.count < Self.sampleCount { window.samples.append(reason.rawValue) }
            defer { window.flushScheduled = true }
            return (summary, false, !window.flushScheduled)
        }
        if let summary { publish(summary) }
        if scheduleFlush { scheduleSummary() }
        guard report else { return .suppressed }
        let excerpt = WireText.excerpt(frames.first ?? Data(), limit: Self.excerptBytes)
        let shown = WireText.escape(detail, limit: 300)
        let size = frames.reduce(0) { $0 + $1.count }
        logger.warning(
            "rejected a malformed message",
            metadata: ["socket": "\(socket)", "reason": "\(reason.rawValue)", "error": "\(shown)", "excerpt": "\(excerpt)"]
        )
        publisher?.publish(
            EventType.messageRejected,
            level: "warning",
            message: "rejected a malformed message on \(socket) (\(reason.rawValue)): \(shown)",
            attributes: [
                "socket": socket, "reason": reason.rawValue, "excerpt": excerpt, "frames": "\(frames.count)", "size": "\(size)",
            ]
        )
        return .reported
    }

    /// Publishes the summary of a window that has ended, if rejections were suppressed in it. Called by
    /// the next rejection, and a second after a flood begins; tests call it with their own clock.
    public func flush() {
        let time = now()
        if let summary = state.withLock({ roll(&$0, at: time) }) { publish(summary) }
    }

    private struct Summary {
        var suppressed: Int
        var samples: [String]
    }

    /// Starts a new window once a second has passed; returns the old window's summary if it suppressed any.
    private func roll(_ window: inout Window, at time: ContinuousClock.Instant) -> Summary? {
        guard time - window.start >= .seconds(1) else { return nil }
        let summary = window.suppressed > 0 ? Summary(suppressed: window.suppressed, samples: window.samples) : nil
        window = Window(start: time)
        return summary
    }

    private func publish(_ summary: Summary) {
        logger.warning(
            "rejected more malformed messages than reported",
            metadata: [
                "socket": "\(socket)", "suppressed": "\(summary.suppressed)", "samples": "\(summary.samples.joined(separator: ","))",
            ]
        )
        publisher?.publish(
            EventType.messageRejected,
            level: "warning",
            message: "\(summary.suppressed) more malformed message(s) on \(socket) not reported one by one",
            attributes: [
                "socket": socket, "reason": "suppressed", "suppressed": "\(summary.suppressed)",
                "samples": summary.samples.joined(separator: ","),
            ]
        )
    }

    /// One summary a little after the window ends, even if no further rejection comes to trigger it.
    /// (A `Task` from a synchronous call: it holds nothing but this rejector, and ends after one flush.)
    private func scheduleSummary() {
        Task { [self] in
            try? await Task.sleep(for: .milliseconds(1100))
            flush()
        }
    }
}
