import Foundation
public import Logging
public import Messaging
public import Runtime
public import ServiceLifecycle
public import Storage
public import ZMQ

/// Fires each job's runs on time and hands the run requests to the algorithm.
///
/// Each job has its own timer loop: compute the next slot from the schedule (never by adding up sleeps),
/// wait for it on the injected clock, then fire. Firing never waits for the algorithm: the request is
/// queued on the `runs` PUSH socket (the ``RunSink``), which delivers it when an algorithm is connected.
public struct JobScheduler: Service {
    private let jobs: [Configuration.Job]
    private let clock: any WallClock
    private let sink: any RunSink
    private let publisher: StatusPublisher?
    private let ledger: SchedulerState?
    private let doorbell: Doorbell?
    private let logger: Logger

    /// Creates the scheduler.
    /// - Parameters:
    ///   - jobs: The jobs to fire.
    ///   - clock: The wall clock to fire by.
    ///   - sink: Where fired run requests go.
    ///   - publisher: The status bus publisher, if any.
    ///   - ledger: Where fires are recorded before they are sent; `nil` keeps nothing (tests).
    ///   - doorbell: Rung after each fire, for the ``RunResender``.
    ///   - logger: The logger.
    public init(
        jobs: [Configuration.Job],
        clock: any WallClock,
        sink: any RunSink,
        publisher: StatusPublisher?,
        ledger: SchedulerState? = nil,
        doorbell: Doorbell? = nil,
        logger: Logger
    ) {
        self.jobs = jobs
        self.clock = clock
        self.sink = sink
        self.publisher = publisher
        self.ledger = ledger
        self.doorbell = doorbell
        self.logger = logger
    }

    public func run() async throws {
        if jobs.isEmpty { logger.warning("no jobs configured: nothing will be scheduled") }
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                for job in jobs {
                    group.addTask { await self.fireForever(job) }
                }
            }
        }
    }

    private func fireForever(_ job: Configuration.Job) async {
        let schedule = IntervalSchedule(every: job.every, anchor: job.anchor)
        var start = clock.now()
        // Never fire a slot again that was fired before a restart.
        if let ledger, let last = try? await ledger.lastSlot(job: job.name), last > start { start = last }
        var next = schedule.slot(after: start)
        logger.info(
            "scheduled",
            metadata: ["job": "\(job.name)", "every": "\(DurationText.format(job.every))", "next": "\(Timestamp.format(next))"]
        )
        while !Task.isCancelled {
            do {
                try await clock.sleep(until: next)
            } catch {
                return
            }
            let firedAt = clock.now()
            let request = RunRequest(
                runID: RunID.make(job: job.name, logicalTime: next),
                job: job.name,
                logicalTime: next,
                firedAt: firedAt,
                trigger: .schedule
            )
            let lateness = firedAt.timeIntervalSince(next) * 1000
            await fire(request, lateness: lateness)
            // The next slot after the one just fired, or after now if the wake was later than a whole interval.
            next = schedule.slot(after: max(next, firedAt))
        }
    }
}

extension JobScheduler {
    /// Records the fire durably (when there is a ledger), then queues the request.
    func fire(_ request: RunRequest, lateness: Double) async {
        if let ledger {
            do {
                guard try await ledger.recordFire(request) else {
                    logger.notice("slot already fired before a restart; not fired again", metadata: ["run": "\(request.runID)"])
                    return
                }
            } catch {
                // Without a record the request could be lost silently; fire it anyway and say so.
                logger.error("cannot record the fire; sending it unrecorded", metadata: ["run": "\(request.runID)", "error": "\(error)"])
            }
        }
        if sink.submit(request) {
            publisher?.publish(
                EventType.runScheduled,
                job: request.job,
                run: request.runID,
                attributes: [
                    "logical_time": Timestamp.format(request.logicalTime), "lateness_ms": String(format: "%.3f", lateness),
                    "trigger": request.trigger.rawValue,
                ]
            )
        } else {
            logger.error(
                "run request queue full: the algorithm is not taking runs; it will be sent again",
                metadata: ["job": "\(request.job)", "run": "\(request.runID)"]
            )
        }
        doorbell?.ring()
    }
}

/// Where the scheduler hands fired runs.
public protocol RunSink: Sendable {
    /// Queues a run request without waiting; false if it could not be queued.
    func submit(_ request: RunRequest) -> Bool
}

/// The `runs` PUSH socket as a ``RunSink``.
public struct SocketRunSink: RunSink {
    private let socket: AsyncSocket

    /// Wraps a bound PUSH socket.
    public init(socket: AsyncSocket) {
        self.socket = socket
    }

    public func submit(_ request: RunRequest) -> Bool {
        socket.post(Wire.encode(request))
    }
}
