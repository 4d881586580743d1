/// Whether the event log can be written, and what to do about it: a state machine with no I/O, so the
/// logger's handling of a full disk is tested with an injected clock.
///
/// While writes fail, events are dropped and counted and a write is tried again only after a backoff
/// (doubling from ``initialBackoff`` to ``maxBackoff``), so a full disk costs neither CPU nor a flood of
/// messages. The state changes, and only they, are reported: ``Action/reportFull`` once when writing
/// starts to fail, ``Action/reportOK(dropped:)`` once when it works again.
///
/// ```swift
/// var health = EventLogHealth<ContinuousClock.Instant>(now: clock.now)
/// if health.shouldWrite(at: clock.now) { ... health.succeeded() or health.failed(at: clock.now) } else { health.skipped() }
/// ```
public struct EventLogHealth<Instant: InstantProtocol<Duration>>: Sendable {
    /// What the logger should report after a write or a skip.
    public enum Action: Sendable, Equatable {
        /// Nothing changed.
        case none
        /// Writing has just started to fail.
        case reportFull
        /// Writing works again; `dropped` events were lost meanwhile.
        case reportOK(dropped: Int)
    }

    /// The first wait before trying again.
    public let initialBackoff: Duration
    /// The longest wait between tries.
    public let maxBackoff: Duration
    /// True while writes fail.
    public private(set) var failing = false
    /// Events dropped since writing started to fail.
    public private(set) var dropped = 0
    /// Events dropped since the logger started.
    public private(set) var droppedTotal = 0
    private var backoff: Duration
    private var nextAttempt: Instant

    /// Creates the state: writing is assumed to work.
    public init(now: Instant, initialBackoff: Duration = .milliseconds(500), maxBackoff: Duration = .seconds(30)) {
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
        backoff = initialBackoff
        nextAttempt = now
    }

    /// Whether to try writing now: always while writes work, else once the backoff has passed.
    public func shouldWrite(at now: Instant) -> Bool {
        !failing || now >= nextAttempt
    }

    /// An event not written because the backoff has not passed.
    public mutating func skipped() {
        dropped += 1
        droppedTotal += 1
    }

    /// A write failed: the event is dropped, and the next try waits longer.
    public mutating func failed(at now: Instant) -> Action {
        dropped += 1
        droppedTotal += 1
        if failing {
            backoff = min(backoff * 2, maxBackoff)
            nextAttempt = now.advanced(by: backoff)
            return .none
        }
        failing = true
        backoff = initialBackoff
        nextAttempt = now.advanced(by: backoff)
        return .reportFull
    }

    /// A write worked.
    public mutating func succeeded() -> Action {
        guard failing else { return .none }
        failing = false
        backoff = initialBackoff
        defer { dropped = 0 }
        return .reportOK(dropped: dropped)
    }
}
