/// The lifecycles of a run, as explicit state machines: states are enums, transitions are pure functions,
/// and the stores only persist what these functions decide.
///
/// Two machines meet here. The algorithm's ``RunState`` is the truth about a run's execution; the
/// scheduler's ``FireState`` is its record of every slot, which follows the algorithm's reports. Terminal
/// states are absorbing in both, so a late, repeated or reordered report can never undo an outcome.

/// A run at the algorithm: `accepted → running → finished | failed`, or `cancelled` from either.
public enum RunState: String, Codable, Sendable, CaseIterable {
    /// Recorded durably; waiting for a free worker in its lane.
    case accepted
    /// Executing (again, after a restart, if it was running when the service stopped).
    case running
    /// Succeeded; its result is handed off.
    case finished
    /// Failed after its retries.
    case failed
    /// Stopped or dropped at the scheduler's request (`baton cancel`, overlap policy `replace`).
    case cancelled

    /// What happens to a run.
    public enum Event: Sendable, Equatable {
        /// A worker starts an attempt.
        case start
        /// The result was handed off.
        case succeed
        /// The last attempt failed (or the run cannot be run at all).
        case fail
        /// The scheduler asked to stop it.
        case cancel
    }

    /// Whether the run has ended; nothing moves it on from here.
    public var isTerminal: Bool {
        switch self {
        case .finished, .failed, .cancelled: true
        case .accepted, .running: false
        }
    }

    /// The state after `event`, or nil when the event does not apply (the state stays as it is).
    public func applying(_ event: Event) -> RunState? {
        switch (self, event) {
        case (.accepted, .start), (.running, .start): .running
        case (.running, .succeed): .finished
        case (.accepted, .fail), (.running, .fail): .failed
        case (.accepted, .cancel), (.running, .cancel): .cancelled
        default: nil
        }
    }
}

/// A slot or run in the scheduler's fire ledger.
///
/// ```
/// fired ──accepted──▶ accepted ──running──▶ running ──▶ finished | failed | cancelled
///   ▲                  └──────────────┴─────────────────▶ (any terminal report)
/// queued ──released──┘      queued ──cancel──▶ cancelled        skipped (recorded, never run)
/// ```
public enum FireState: String, Codable, Sendable, CaseIterable {
    /// Recorded and sent; the algorithm has not said it has it.
    case fired
    /// Waiting at the scheduler for the job's previous run (overlap policy `queue`); not sent yet.
    case queued
    /// The algorithm recorded it (it may be waiting for a worker).
    case accepted
    /// The algorithm is executing it.
    case running
    /// It succeeded.
    case finished
    /// It failed.
    case failed
    /// It was cancelled before or while it ran.
    case cancelled
    /// The slot was not run, for the recorded reason (misfire policy, overlap, paused, cancelled).
    case skipped

    /// What happens to a fire.
    public enum Event: Sendable, Equatable {
        /// The algorithm reported the run in this state.
        case reported(RunState)
        /// A queued fire is sent now.
        case released
        /// A queued fire is cancelled at the scheduler (it was never sent).
        case cancel
    }

    /// Whether the fire has its outcome; nothing moves it on from here.
    public var isTerminal: Bool {
        switch self {
        case .finished, .failed, .cancelled, .skipped: true
        case .fired, .queued, .accepted, .running: false
        }
    }

    /// Sent and not ended: what the overlap policy counts.
    public var isInFlight: Bool {
        switch self {
        case .fired, .accepted, .running: true
        default: false
        }
    }

    /// The fire state that mirrors a run state reported by the algorithm.
    public init(_ run: RunState) {
        switch run {
        case .accepted: self = .accepted
        case .running: self = .running
        case .finished: self = .finished
        case .failed: self = .failed
        case .cancelled: self = .cancelled
        }
    }

    /// The state after `event`, or nil when the event is not news (a repeated, stale or late report).
    public func applying(_ event: Event) -> FireState? {
        switch (self, event) {
        case (.queued, .released): return .fired
        case (.queued, .cancel): return .cancelled
        case (.fired, .reported(let run)): return FireState(run)
        case (.accepted, .reported(let run)) where run != .accepted: return FireState(run)
        case (.running, .reported(let run)) where run.isTerminal: return FireState(run)
        default: return nil
        }
    }
}
