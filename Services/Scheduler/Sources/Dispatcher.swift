import Metrics
public import Foundation
public import Logging
public import Messaging
public import Config
public import ServiceKit
public import MetricsHTTP

/// Records each fire durably, applies the job's overlap policy, and sends the request.
///
/// With a ledger, a fire is committed before it is sent, so a restart neither fires a slot twice nor
/// forgets one; without one (unit tests), requests go straight to the sink.
public struct Dispatcher: Sendable {
    let sink: any RunSink
    let ledger: SchedulerState?
    let publisher: StatusPublisher?
    private let resend: Doorbell?
    let logger: Logger
    private let metrics: ServiceMetrics
    let confirmWithin: Duration
    /// What waits and the confirmation's stamps read.
    let clock: any WallClock

    /// Creates a dispatcher.
    /// - Parameters:
    ///   - sink: Where requests go.
    ///   - ledger: The scheduler's durable state, if any.
    ///   - publisher: The status bus, if any.
    ///   - resend: Rung after each fire, for the ``RunResender``.
    ///   - logger: The logger.
    ///   - metrics: Fires (`baton_runs_fired_total`, `baton_runs_skipped_total`) and their lateness
    ///     (`baton_fire_lateness_seconds`) per job.
    ///   - confirmWithin: How old an answer about a run in flight the overlap policy may count on (zero in
    ///     production: it asks, and waits for an answer to a question asked after its decision began).
    ///   - clock: The wall clock that stamps questions and that waits wait on.
    public init(
        sink: any RunSink,
        ledger: SchedulerState?,
        publisher: StatusPublisher?,
        resend: Doorbell?,
        logger: Logger,
        metrics: ServiceMetrics = .disabled,
        confirmWithin: Duration = .zero,
        clock: any WallClock = SystemWallClock()
    ) {
        self.clock = clock
        self.metrics = metrics
        self.confirmWithin = confirmWithin
        self.sink = sink
        self.ledger = ledger
        self.publisher = publisher
        self.resend = resend
        self.logger = logger
    }

    /// The last slot handled for a job before now (fired or skipped), if any.
    public func lastSlot(job: String) async -> Date? {
        try? await ledger?.lastSlot(job: job)
    }

    /// Fires a run: applies the overlap policy (for scheduled runs), records it, sends it.
    public func dispatch(_ request: RunRequest, job: Configuration.Job, lateness: Double) async {
        guard request.trigger == .schedule else {
            // Manual and backfill runs: recorded and sent as they are; backfills run in their own lane.
            guard await record([SchedulerState.Record(request)], job: job.name) == [true] else {
                logger.notice("run already recorded; not fired again", metadata: ["run": "\(request.runID)"])
                return
            }
            send(request, lateness: lateness)
            return
        }
        await handle(job: job, fire: [request.logicalTime], skip: [], firedAt: request.firedAt)
    }

    /// Handles a job's due slots in one step: applies the overlap policy to the slots to fire, in order,
    /// records them and the skipped ones in one transaction, then sends what fires. Nothing is sent that
    /// is not recorded: while the state cannot be written (disk full), this waits and retries, so the
    /// job's timer holds its place and no slot is lost.
    public func handle(job: Configuration.Job, fire: [Date], skip: [(Date, String)], firedAt: Date) async {
        let requests = fire.map { RunRequest.scheduled(job: job.name, slot: $0, firedAt: firedAt) }
        guard let plan = await plan(job: job, fire: requests, skip: skip, firedAt: firedAt, confirmWithin: nil) else { return }
        await carryOut(plan, job: job)
    }

    /// What became of a run asked for by hand (`baton trigger`), under the job's overlap policy.
    public enum TriggerOutcome: Sendable, Equatable {
        /// Recorded and sent to the algorithm; `replacing` the runs cancelled for it (overlap `replace`).
        case fired(replacing: [String])
        /// Recorded as queued behind the runs in flight (overlap `queue`); sent when they end.
        case queued(behind: String)
        /// Not recorded, not sent: why (overlap `forbid` with a run in flight, or the runs in flight could
        /// not be confirmed in time).
        case refused(String)
        /// A run with this id was already recorded.
        case duplicate
    }

    /// Fires a run asked for by hand through the job's overlap policy, as a scheduled slot would be (the same
    /// ``OverlapDecision/plan(job:requests:skip:firedAt:overlap:inFlight:hasQueued:)`` and confirmation of the runs in flight), but
    /// a run the policy would skip is refused instead of recorded, so the one who asked learns why.
    /// - Parameter confirmWithin: How long to wait for the algorithm to confirm the runs in flight (the
    ///   control socket answers one request at a time, so this must not wait for ever).
    public func trigger(_ request: RunRequest, job: Configuration.Job, confirmWithin: Duration = .seconds(3)) async -> TriggerOutcome {
        guard
            let plan = await plan(job: job, fire: [request], skip: [], firedAt: request.firedAt, confirmWithin: confirmWithin)
        else {
            return .refused(
                "the algorithm did not confirm \(job.name)'s runs in flight within \(confirmWithin); "
                    + "its overlap policy (\(job.overlap.rawValue)) cannot be applied yet, try again"
            )
        }
        guard let record = plan.records.first(where: { $0.request.runID == request.runID }) else { return .duplicate }
        if record.state == .skipped { return .refused(record.detail ?? "skipped by the overlap policy") }
        let isNew = await carryOut(plan, job: job)
        guard isNew.count == plan.records.count, isNew.allSatisfy({ $0 }) else { return .duplicate }
        if record.state == .queued { return .queued(behind: record.detail ?? "the runs in flight") }
        return .fired(replacing: plan.cancels)
    }

    /// The overlap plan for requests to fire now, over the job's runs in flight (confirmed by the algorithm
    /// unless the policy is `allow`).
    /// - Returns: nil if the task was cancelled, or `confirmWithin` passed, before the runs were confirmed.
    private func plan(
        job: Configuration.Job,
        fire: [RunRequest],
        skip: [(Date, String)],
        firedAt: Date,
        confirmWithin: Duration?
    ) async -> (records: [SchedulerState.Record], cancels: [String])? {
        let inFlight: [String]
        if fire.isEmpty || job.overlap == .allow {
            inFlight = ((try? await ledger?.inFlight(job: job.name)) ?? []).map(\.request.runID)
        } else {
            guard let confirmed = await confirmedInFlight(job: job.name, giveUpAfter: confirmWithin) else { return nil }
            inFlight = confirmed
        }
        let hasQueued = ((try? await ledger?.oldestQueued(job: job.name)) ?? nil) != nil
        return OverlapDecision.plan(
            job: job.name,
            requests: fire,
            skip: skip,
            firedAt: firedAt,
            overlap: job.overlap,
            inFlight: inFlight,
            hasQueued: hasQueued
        )
    }

    /// Records a plan, cancels what it replaces and sends what fires.
    /// - Returns: for each record, whether it was new; fewer if the task was cancelled first.
    @discardableResult
    private func carryOut(_ plan: (records: [SchedulerState.Record], cancels: [String]), job: Configuration.Job) async -> [Bool] {
        let isNew = await record(plan.records, job: job.name)
        guard isNew.count == plan.records.count else { return isNew }
        for old in plan.cancels {
            let reason = "replaced by \(plan.records.last { $0.state == .fired }?.request.runID ?? "a newer run")"
            _ = try? await ledger?.requestCancel(old, reason: reason)
            _ = sink.cancel(RunCancel(runID: old, reason: reason))
            publisher?.publish(EventType.runReplaced, job: job.name, run: old, attributes: ["reason": reason])
        }
        for (record, new) in zip(plan.records, isNew) {
            let request = record.request
            guard new else {
                logger.notice("slot already handled before a restart; not fired again", metadata: ["run": "\(request.runID)"])
                continue
            }
            switch record.state {
            case .skipped:
                metrics.counter("baton_runs_skipped_total", job: job.name).increment()
                publisher?.publish(
                    EventType.runSkipped,
                    job: job.name,
                    run: request.runID,
                    message: record.detail,
                    attributes: ["logical_time": Timestamp.format(request.logicalTime)]
                )
            case .queued:
                publisher?.publish(EventType.runQueued, job: job.name, run: request.runID, attributes: ["after": record.detail ?? ""])
            default:
                send(request, lateness: request.firedAt.timeIntervalSince(request.logicalTime) * 1000)
            }
        }
        return isNew
    }

    /// Cancels fires in one step: a queued one ends at once; one at the algorithm gets a cancel, which the
    /// ``RunResender`` sends again until the algorithm reports the run's end.
    /// - Returns: each fire's run id with what was done, in words.
    public func cancel(_ fires: [SchedulerState.Fire], reason: String, queuedOnly: Bool) async throws -> [(String, String)] {
        guard let ledger else { return [] }
        var done: [(String, String)] = []
        for after in try await ledger.requestCancel(fires.map(\.request.runID), reason: reason, queuedOnly: queuedOnly) {
            let runID = after.request.runID
            if after.state == .cancelled {
                publisher?.publish(EventType.runCancelled, job: after.request.job, run: runID, message: reason)
                done.append((runID, "cancelled"))
            } else if after.state.isTerminal {
                done.append((runID, "already \(after.state.rawValue)"))
            } else {
                _ = sink.cancel(RunCancel(runID: runID, reason: reason, queuedOnly: queuedOnly))
                done.append((runID, "cancel sent to the algorithm"))
            }
        }
        return done
    }

    /// Sends a request already recorded (a released queued run, a backfill slot).
    public func send(_ request: RunRequest, lateness: Double) {
        if !sink.submit(request) {
            logger.warning(
                "run request queue full: the algorithm is not taking runs; the recorded request will be sent again",
                metadata: ["job": "\(request.job)", "run": "\(request.runID)"]
            )
        }
        metrics.counter("baton_runs_fired_total", job: request.job, [("trigger", request.trigger.rawValue)]).increment()
        if request.trigger == .schedule {
            metrics.timer("baton_fire_lateness_seconds", job: request.job).recordNanoseconds(Int64(max(lateness, 0) * 1_000_000))
        }
        publisher?.publish(
            EventType.runScheduled,
            job: request.job,
            run: request.runID,
            attributes: [
                "logical_time": Timestamp.format(request.logicalTime), "lateness_ms": String(format: "%.3f", lateness),
                "trigger": request.trigger.rawValue,
            ]
        )
        resend?.ring()
    }
}
