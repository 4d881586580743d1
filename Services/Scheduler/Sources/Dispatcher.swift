import Metrics
public import Foundation
public import Logging
public import Messaging
public import Config
public import ServiceKit
public import MetricsHTTP
public import Storage

/// Records each fire durably, applies the job's overlap policy, and sends the request.
///
/// With a ledger, a fire is committed before it is sent, so a restart neither fires a slot twice nor
/// forgets one; without one (unit tests), requests go straight to the sink.
public struct Dispatcher: Sendable {
    private let sink: any RunSink
    private let ledger: SchedulerState?
    private let publisher: StatusPublisher?
    private let resend: Doorbell?
    private let logger: Logger
    private let metrics: ServiceMetrics
    private let confirmWithin: Duration

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
    public init(
        sink: any RunSink,
        ledger: SchedulerState?,
        publisher: StatusPublisher?,
        resend: Doorbell?,
        logger: Logger,
        metrics: ServiceMetrics = .disabled,
        confirmWithin: Duration = .zero
    ) {
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
    /// ``plan(job:fire:skip:firedAt:overlap:inFlight:hasQueued:)`` and confirmation of the runs in flight), but
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
        return Self.plan(
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

    /// The job's live runs in flight, each confirmed by the algorithm: it is asked about (its request sent
    /// again, stamped with the time of asking; the algorithm answers a request it has with the run's state and
    /// that stamp) and the answer awaited, asking again every 2 s while the algorithm is away. So overlap is
    /// never decided on a run whose end was reported but lost (a service killed as the report travelled).
    /// - Returns: nil if the task was cancelled first.
    private func confirmedInFlight(job: String, giveUpAfter: Duration? = nil) async -> [String]? {
        guard let ledger else { return [] }
        let deadline = giveUpAfter.map { ContinuousClock.now + $0 }
        // Only an answer to a question asked from now on tells the state as it is now: a report that was
        // already on its way can be older than an end whose report was lost.
        let since = Date().addingTimeInterval(-(confirmWithin / .seconds(1)))
        var asked = Date.distantPast
        var waiting = false
        while !Task.isCancelled {
            let fires = (try? await ledger.inFlight(job: job)) ?? []
            let unconfirmed = fires.filter { ($0.lastAnswer ?? .distantPast) < since }
            if unconfirmed.isEmpty {
                if waiting { logger.notice("the algorithm confirmed the runs in flight", metadata: ["job": "\(job)"]) }
                return fires.map(\.request.runID)
            }
            if Date().timeIntervalSince(asked) >= 2 {
                if asked != .distantPast, !waiting {
                    waiting = true
                    logger.notice(
                        "waiting for the algorithm to confirm the runs in flight before applying the overlap policy",
                        metadata: ["job": "\(job)", "runs": "\(unconfirmed.map(\.request.runID).joined(separator: ", "))"]
                    )
                }
                asked = Date()
                for fire in unconfirmed {
                    var question = fire.request
                    question.firedAt = asked
                    if sink.submit(question) { try? await ledger.markResent(fire.request.runID) }
                }
            }
            if let deadline, ContinuousClock.now >= deadline { return nil }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return nil
    }

    /// What to record for a job's due slots, as a pure decision: skips as given, and each slot to fire
    /// through the overlap policy, in order, counting the runs in flight and those fired before it in the
    /// same step.
    public static func plan(
        job: String,
        fire: [Date],
        skip: [(Date, String)],
        firedAt: Date,
        overlap: Configuration.OverlapPolicy,
        inFlight: [String],
        hasQueued: Bool
    ) -> (records: [SchedulerState.Record], cancels: [String]) {
        plan(
            job: job,
            requests: fire.map { RunRequest.scheduled(job: job, slot: $0, firedAt: firedAt) },
            skip: skip,
            firedAt: firedAt,
            overlap: overlap,
            inFlight: inFlight,
            hasQueued: hasQueued
        )
    }

    /// The same decision for requests already made (a scheduled slot's, or one asked for by hand).
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
            guard let previous = running.last else {
                records.append(.init(request))
                running.append(request.runID)
                continue
            }
            switch overlap {
            case .allow:
                records.append(.init(request))
                running.append(request.runID)
            case .forbid:
                records.append(.init(request, state: .skipped, detail: "previous run \(previous) still running (overlap: forbid)"))
            case .queue:
                records.append(.init(request, state: .queued, detail: "waiting for \(queued ? "the runs queued before it" : previous)"))
                queued = true
            case .replace:
                if index < fire.count - 1 {
                    // A newer slot in the same step replaces this one before it is ever sent.
                    records.append(
                        .init(request, state: .skipped, detail: "replaced by a newer slot before it was sent (overlap: replace)")
                    )
                } else {
                    cancels += running.filter { inFlight.contains($0) }
                    records.append(.init(request))
                    running = [request.runID]
                }
            }
        }
        // Slots are recorded oldest first: a crash between two records would otherwise leave a hole behind
        // the job's last slot. (They commit in one transaction anyway.)
        records.sort { $0.request.logicalTime < $1.request.logicalTime }
        return (records, cancels)
    }

    /// Records fires, retrying while the state cannot be written; reports a full disk and its end.
    /// - Returns: for each record, whether it was new; empty if the task was cancelled first.
    private func record(_ records: [SchedulerState.Record], job: String) async -> [Bool] {
        guard let ledger else { return records.map { _ in true } }
        var delay = Duration.milliseconds(200)
        var failing = false
        while true {
            do {
                let isNew = try await ledger.record(records)
                if failing {
                    logger.notice("the scheduler state is writable again; recorded what was waiting", metadata: ["job": "\(job)"])
                    publisher?.publish(EventType.diskOK, job: job, level: "notice", message: "scheduler state writable again")
                }
                return isNew
            } catch {
                if !failing {
                    let full = SchedulerState.isDiskFull(error)
                    logger.error(
                        "cannot record fired slots\(full ? " (disk full)" : ""); holding them and retrying: nothing is sent unrecorded",
                        metadata: ["job": "\(job)", "slots": "\(records.count)", "error": "\(error)"]
                    )
                    publisher?.publish(
                        EventType.diskFull,
                        job: job,
                        level: "error",
                        message: "cannot record fired slots: \(error)",
                        attributes: ["path": "scheduler/state.sqlite", "full": "\(full)"]
                    )
                    failing = true
                }
                do { try await Task.sleep(for: delay) } catch { return [] }
                delay = min(delay * 2, .seconds(5))
            }
        }
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
