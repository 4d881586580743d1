/// One run's attempts, retries, stops and hand-off as a pure state machine: ``RunWorker`` does the I/O each
/// ``Action`` asks for and feeds back what happened as an ``Event``. Nothing here reads a clock, a file or
/// a socket, so every path (including those only a shutdown or a cancel at the wrong moment takes) is
/// unit-tested.
///
/// ```
/// starting(1) ─admitted→ running(1) ─ran ok→ handingOff(1) ─handedOff ok→ ended(finished)
///      │ not admitted        │ ran failed / handOff failed: attempts left → backingOff(1) ─elapsed→ starting(2)
///      ↓                     │                              none left     → ended(failed)
/// ended(notRunnable)         └ stopped: by a cancel → ended(cancelled), by shutdown → ended(interrupted)
/// ```
public struct RunAttempts: Sendable, Equatable {
    /// Where the run is.
    public enum State: Sendable, Equatable {
        /// An attempt is about to start: the ledger is asked to mark the run `running`.
        case starting(attempt: Int)
        /// The algorithm runs.
        case running(attempt: Int)
        /// The algorithm succeeded; its result is being sealed and queued.
        case handingOff(attempt: Int)
        /// An attempt failed and another is due after a pause.
        case backingOff(attempt: Int)
        /// Nothing more happens to this run here.
        case ended(End)
    }

    /// How the run ended here.
    public enum End: Sendable, Equatable {
        /// Its result was handed off.
        case finished
        /// Its last attempt failed.
        case failed(RunFailure)
        /// The scheduler stopped it.
        case cancelled(reason: String)
        /// The service is stopping: the run stays `running` in the ledger and runs again at the next start.
        case interrupted(Interruption)
        /// The ledger would not start it (cancelled while it waited, or ended otherwise).
        case notRunnable
    }

    /// What a shutdown interrupted (each is logged in its own words).
    public enum Interruption: Sendable, Equatable {
        /// The run was stopped by the end of the drain.
        case stopped
        /// The algorithm ended while the service was stopping.
        case run
        /// The hand-off was cut short.
        case handOff
        /// The pause before a retry was cut short.
        case backOff
    }

    /// What happened.
    public enum Event: Sendable, Equatable {
        /// The ledger answered whether the run may start (false: it ended meanwhile, e.g. cancelled).
        case admitted(Bool)
        /// The algorithm ended: with a failure or without; `shuttingDown` if the service stops meanwhile.
        case ran(RunFailure?, shuttingDown: Bool)
        /// The run was stopped: by a cancel with its reason, or (`reason` nil, or `shuttingDown`) by shutdown.
        case stopped(reason: String?, shuttingDown: Bool)
        /// The hand-off ended: with a failure or without; `shuttingDown` if the service stops meanwhile.
        case handedOff(RunFailure?, shuttingDown: Bool)
        /// The pause before the next attempt is over.
        case backedOff
        /// The pause before the next attempt was cut short by shutdown.
        case backOffInterrupted
    }

    /// What the worker is to do next.
    public enum Action: Sendable, Equatable {
        /// Start an attempt: announce it and ask the ledger to mark the run `running`.
        case start(attempt: Int)
        /// Run the algorithm, racing it against a stop.
        case run(attempt: Int)
        /// Seal and queue the result.
        case handOff
        /// Drop the attempt's file, announce the failure and wait `delay` before the next attempt.
        case retry(after: Duration, failure: RunFailure, attempt: Int)
        /// Record and announce the end (dropping the attempt's file unless it was handed off or is kept).
        case end(End)
    }

    /// Retries after the first attempt.
    public let retries: Int
    /// Where the run is.
    public private(set) var state: State

    /// Starts a run that may be tried `1 + retries` times; the first action is ``Action/start(attempt:)`` 1.
    public init(retries: Int) {
        self.retries = max(retries, 0)
        self.state = .starting(attempt: 1)
    }

    /// The first action.
    public var firstAction: Action { .start(attempt: 1) }

    /// The pause before the attempt after `attempt`: 1 s, doubling, at most 60 s.
    public static func backOff(after attempt: Int) -> Duration {
        min(Duration.seconds(1) * (1 << min(max(attempt, 1) - 1, 6)), .seconds(60))
    }

    /// Applies an event; returns the next action, or nil if the event does not apply where the run is
    /// (the state is left as it was).
    public mutating func handle(_ event: Event) -> Action? {
        guard let (next, action) = Self.transition(from: state, on: event, retries: retries) else { return nil }
        state = next
        return action
    }

    /// The transition table.
    static func transition(from state: State, on event: Event, retries: Int) -> (State, Action)? {
        switch (state, event) {
        case (.starting(let attempt), .admitted(true)):
            return (.running(attempt: attempt), .run(attempt: attempt))
        case (.starting, .admitted(false)):
            return end(.notRunnable)
        case (.running, .stopped(let reason, let shuttingDown)):
            guard let reason, !shuttingDown else { return end(.interrupted(.stopped)) }
            return end(.cancelled(reason: reason))
        case (.running, .ran(_, shuttingDown: true)):
            return end(.interrupted(.run))
        case (.running(let attempt), .ran(let failure?, shuttingDown: false)):
            return failed(attempt, failure, retries: retries)
        case (.running(let attempt), .ran(nil, shuttingDown: false)):
            return (.handingOff(attempt: attempt), .handOff)
        case (.handingOff, .handedOff(nil, _)):
            return end(.finished)
        case (.handingOff, .handedOff(_?, shuttingDown: true)):
            return end(.interrupted(.handOff))
        case (.handingOff(let attempt), .handedOff(let failure?, shuttingDown: false)):
            return failed(attempt, failure, retries: retries)
        case (.backingOff(let attempt), .backedOff):
            return (.starting(attempt: attempt + 1), .start(attempt: attempt + 1))
        case (.backingOff, .backOffInterrupted):
            return end(.interrupted(.backOff))
        default:
            return nil
        }
    }

    private static func end(_ end: End) -> (State, Action) { (.ended(end), .end(end)) }

    private static func failed(_ attempt: Int, _ failure: RunFailure, retries: Int) -> (State, Action) {
        guard attempt <= retries else { return end(.failed(failure)) }
        return (.backingOff(attempt: attempt), .retry(after: backOff(after: attempt), failure: failure, attempt: attempt))
    }
}
