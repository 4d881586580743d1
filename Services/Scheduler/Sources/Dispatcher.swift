import Metrics
public import Foundation
public import Logging
public import Messaging
public import Runtime
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

    /// Creates a dispatcher.
    /// - Parameters:
    ///   - sink: Where requests go.
    ///   - ledger: The scheduler's durable state, if any.
    ///   - publisher: The status bus, if any.
    ///   - resend: Rung after each fire, for the ``RunResender``.
    ///   - logger: The logger.
    ///   - metrics: Fires (`baton_runs_fired_total`, `baton_runs_skipped_total`) and their lateness
    ///     (`baton_fire_lateness_seconds`) per job.
    public init(
        sink: any RunSink,
        ledger: SchedulerState?,
        publisher: StatusPublisher?,
        resend: Doorbell?,
        logger: Logger,
        metrics: ServiceMetrics = .disabled
    ) {
        self.metrics = metrics
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

    /// Records a slot that is not run, with the reason.
    public func skip(job: String, slot: Date, reason: String) async {
        let request = RunRequest.scheduled(job: job, slot: slot, firedAt: Date())
        do {
            try await ledger?.recordFire(request, state: "skipped", detail: reason)
        } catch {
            logger.error("cannot record a skipped slot", metadata: ["run": "\(request.runID)", "error": "\(error)"])
        }
        metrics.counter("baton_runs_skipped_total", job: job).increment()
        publisher?.publish(
            EventType.runSkipped,
            job: job,
            run: request.runID,
            message: reason,
            attributes: ["logical_time": Timestamp.format(slot)]
        )
    }

    /// Fires a run: applies the overlap policy (for scheduled runs), records it, sends it.
    public func dispatch(_ request: RunRequest, job: Configuration.Job, lateness: Double) async {
        if request.trigger == .schedule, let ledger {
            let running = ((try? await ledger.inFlight(job: job.name)) ?? []).filter { $0.request.runID != request.runID }
            if let previous = running.last {
                switch job.overlap {
                case .allow:
                    break
                case .forbid:
                    await skip(
                        job: job.name,
                        slot: request.logicalTime,
                        reason: "previous run \(previous.request.runID) still running (overlap: forbid)"
                    )
                    return
                case .queue:
                    do {
                        try await ledger.recordFire(request, state: "queued", detail: "waiting for \(previous.request.runID)")
                    } catch {
                        logger.error("cannot record a queued run", metadata: ["run": "\(request.runID)", "error": "\(error)"])
                    }
                    publisher?.publish(
                        EventType.runQueued,
                        job: job.name,
                        run: request.runID,
                        attributes: ["after": previous.request.runID]
                    )
                    return
                case .replace:
                    for old in running {
                        _ = sink.cancel(RunCancel(runID: old.request.runID, reason: "replaced by \(request.runID)"))
                        try? await ledger.markReplaced(old.request.runID, by: request.runID)
                        publisher?.publish(EventType.runReplaced, job: job.name, run: old.request.runID, attributes: ["by": request.runID])
                    }
                }
            }
        }
        if let ledger {
            do {
                guard try await ledger.recordFire(request) else {
                    logger.notice("slot already handled before a restart; not fired again", metadata: ["run": "\(request.runID)"])
                    return
                }
            } catch {
                // Without a record the request could be lost silently; send it anyway and say so.
                logger.error("cannot record the fire; sending it unrecorded", metadata: ["run": "\(request.runID)", "error": "\(error)"])
            }
        }
        send(request, lateness: lateness)
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
