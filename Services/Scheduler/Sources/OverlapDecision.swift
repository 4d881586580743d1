public import Foundation
public import Messaging
public import Config
public import ServiceKit

/// The overlap policy as pure decisions: what to do with a slot given the job's runs in flight, and when the
/// runs in flight are known well enough to decide on. The ``Dispatcher`` reads the ledger, asks the
/// algorithm and records; everything it decides is decided here, without I/O.
public enum OverlapDecision {
    /// What the policy does with one slot to fire.
    public enum Action: Sendable, Equatable {
        /// Fire it.
        case fire
        /// Record it skipped, with the reason.
        case skip(String)
        /// Record it queued behind the runs in flight, with what it waits for.
        case queue(String)
        /// Fire it and cancel these runs, which it replaces.
        case replace(cancelling: [String])
    }

    /// Decides one slot.
    /// - Parameters:
    ///   - policy: The job's overlap policy.
    ///   - running: The job's live runs in flight and those fired before this slot in the same step, oldest first.
    ///   - confirmed: The runs that were in flight when the step began (only those are at the algorithm to cancel).
    ///   - hasQueued: Whether a run of the job is already queued.
    ///   - isLast: Whether this is the step's newest slot.
    public static func decide(
        _ policy: Configuration.OverlapPolicy,
        running: [String],
        confirmed: [String],
        hasQueued: Bool,
        isLast: Bool
    ) -> Action {
        // A newer slot in the same step replaces this one before it is ever sent, whether or not a run is in
        // flight. (The first version fired it when nothing was in flight, and never cancelled it: two runs.)
        if policy == .replace, !isLast { return .skip("replaced by a newer slot before it was sent (overlap: replace)") }
        guard let previous = running.last else { return .fire }
        switch policy {
        case .allow:
            return .fire
        case .forbid:
            return .skip("previous run \(previous) still running (overlap: forbid)")
        case .queue:
            return .queue("waiting for \(hasQueued ? "the runs queued before it" : previous)")
        case .replace:
            return .replace(cancelling: running.filter { confirmed.contains($0) })
        }
    }

    /// What to record for a job's due slots: skips as given, and each request to fire through the overlap
    /// policy, in order, counting the runs in flight and those fired before it in the same step.
    public static func plan(
        job: String,
        requests fire: [RunRequest],
        skip: [(Date, String)],
        firedAt: Date,
        overlap: Configuration.OverlapPolicy,
        inFlight: [String],
        hasQueued: Bool
    ) -> (records: [SchedulerState.Record], cancels: [String]) {
        var records = skip.map { slot, reason in
            SchedulerState.Record(.scheduled(job: job, slot: slot, firedAt: firedAt), state: .skipped, detail: reason)
        }
        var running = inFlight
        var queued = hasQueued
        var cancels: [String] = []
        for (index, request) in fire.enumerated() {
            let action = decide(overlap, running: running, confirmed: inFlight, hasQueued: queued, isLast: index == fire.count - 1)
            switch action {
            case .fire:
                records.append(.init(request))
                running.append(request.runID)
            case .skip(let reason):
                records.append(.init(request, state: .skipped, detail: reason))
            case .queue(let behind):
                records.append(.init(request, state: .queued, detail: behind))
                queued = true
            case .replace(let old):
                cancels += old
                records.append(.init(request))
                running = [request.runID]
            }
        }
        // Slots are recorded oldest first: a crash between two records would otherwise leave a hole behind
        // the job's last slot. (They commit in one transaction anyway.)
        records.sort { $0.request.logicalTime < $1.request.logicalTime }
        return (records, cancels)
    }
}

/// Whether the runs in flight are confirmed well enough to apply the overlap policy to, as a pure step.
///
/// A run counts as confirmed once the algorithm answered a question about it asked after `since` (reports
/// carry the question's stamp as `askedAt`); a report already on its way when the decision began could be
/// older than an end whose report was lost. Unconfirmed runs are asked about (their request sent again,
/// stamped with the time of asking) at most every `askEvery`.
public struct InFlightConfirmation: Sendable, Equatable {
    /// What the dispatcher does next.
    public enum Step: Sendable, Equatable {
        /// All confirmed: decide over these runs. `afterWaiting` if a wait was announced.
        case confirmed([String], afterWaiting: Bool)
        /// Send these questions; `announceWaiting` the first time an answer is overdue.
        case ask([RunRequest], announceWaiting: Bool)
        /// Wait for answers.
        case wait
    }

    /// Answers to questions asked before this do not count.
    public let since: Date
    /// How often unconfirmed runs are asked about again.
    public let askEvery: TimeInterval
    /// When the last questions were sent.
    public private(set) var asked: Date?
    /// Whether a wait was announced.
    public private(set) var waiting = false

    /// Starts confirming.
    /// - Parameters:
    ///   - since: Answers to questions asked before this do not count.
    ///   - askEvery: How often unconfirmed runs are asked about again.
    public init(since: Date, askEvery: TimeInterval = 2) {
        self.since = since
        self.askEvery = askEvery
    }

    /// The next step, given the job's fires in flight as the ledger has them now: each one's request and
    /// the stamp of the latest question the algorithm answered about it.
    public mutating func step(fires: [(request: RunRequest, lastAnswer: Date?)], now: Date) -> Step {
        let unconfirmed = fires.filter { ($0.lastAnswer ?? .distantPast) < since }
        if unconfirmed.isEmpty { return .confirmed(fires.map(\.request.runID), afterWaiting: waiting) }
        if let asked, now.timeIntervalSince(asked) < askEvery { return .wait }
        let announce = asked != nil && !waiting
        if announce { waiting = true }
        asked = now
        let questions = unconfirmed.map { fire in
            var question = fire.request
            question.firedAt = now
            return question
        }
        return .ask(questions, announceWaiting: announce)
    }
}
