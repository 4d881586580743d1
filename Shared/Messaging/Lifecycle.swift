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

/// A result part's delivery at the algorithm's outbox: `pending → sent → acked`, or `dead` after its retries.
///
/// ```
/// pending ──send──▶ sent ──ack──▶ acked
///    ▲  ◀─fail, hand back─┘  └─lease ran out: sent again, or dead when the retries are used up
///    └────────requeue (baton replay --dead)──────── dead
/// ```
public enum DeliveryState: String, Codable, Sendable, CaseIterable {
    /// Waiting to be sent (new, or retried after a failure or a hand-back).
    case pending
    /// With a processor, under a lease.
    case sent
    /// Stored by a processor and acknowledged: done.
    case acked
    /// Failed `1 + processor.retries` times (or its raw file is unusable, or a processor refused it as a conflict):
    /// kept for `baton replay --dead`.
    case dead

    /// What happens to a part.
    public enum Event: Sendable, Equatable {
        /// Handed to a processor (again, after a lease ran out).
        case send
        /// The processor renewed its lease.
        case renew
        /// The lease ran out after the processor had started; `exhausted` when that used up the retries.
        case leaseExpired(exhausted: Bool)
        /// A processor stored it.
        case ack
        /// A processor failed on it; `exhausted` when that used up the retries.
        case fail(exhausted: Bool)
        /// A stopping processor handed it back unprocessed (not a failure).
        case handBack
        /// Its raw file is unusable: dead at once.
        case kill
        /// A user brings it back (`baton replay --dead`), as new.
        case requeue
    }

    /// The state after `event`, or nil when the event does not apply to this state.
    public func applying(_ event: Event) -> DeliveryState? {
        switch (self, event) {
        case (.pending, .send), (.sent, .send), (.sent, .renew): .sent
        case (.sent, .leaseExpired(let exhausted)): exhausted ? .dead : .sent
        case (.pending, .ack), (.sent, .ack), (.dead, .ack): .acked
        case (.pending, .fail(let exhausted)), (.sent, .fail(let exhausted)): exhausted ? .dead : .pending
        case (.pending, .handBack), (.sent, .handBack): .pending
        case (.pending, .kill), (.sent, .kill), (.dead, .kill): .dead
        case (_, .requeue): .pending
        default: nil
        }
    }

    /// The states `event` applies to, as a SQL list (`'pending', 'sent'`): the outbox's set-based updates
    /// take their `WHERE state IN (…)` from the machine, so the SQL cannot allow what the machine refuses.
    public static func sqlStates(accepting event: Event) -> String {
        allCases.filter { $0.applying(event) != nil }.map { "'\($0.rawValue)'" }.joined(separator: ", ")
    }
}
