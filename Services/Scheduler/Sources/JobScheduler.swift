import Foundation
public import Logging
public import Messaging
public import Runtime
import Scheduling
public import ServiceLifecycle
import Storage
public import ZMQ

/// Fires each job's runs on time and hands the run requests to the algorithm.
///
/// Each job has its own timer loop: compute the next slot from the job's schedule (interval, cron or once;
/// never by adding up sleeps), wait for it on the injected clock, then fire through the ``Dispatcher``.
/// After a restart, a late wake or a pause, the slots that passed are handled by the job's misfire policy
/// (``MissedSlots``): fired, or recorded as skipped with the reason; never dropped silently.
public struct JobScheduler: Service {
    private let jobs: [Configuration.Job]
    private let clock: any WallClock
    private let dispatcher: Dispatcher
    private let control: JobControl
    private let logger: Logger

    /// Creates the scheduler.
    /// - Parameters:
    ///   - jobs: The jobs to fire.
    ///   - clock: The wall clock to fire by.
    ///   - dispatcher: Records and sends fires.
    ///   - control: Pause state, shared with the control server.
    ///   - logger: The logger.
    public init(jobs: [Configuration.Job], clock: any WallClock, dispatcher: Dispatcher, control: JobControl, logger: Logger) {
        self.jobs = jobs
        self.clock = clock
        self.dispatcher = dispatcher
        self.control = control
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
            // One-shot jobs end, and a scheduler may have no jobs: keep serving control commands until stopped.
            try? await gracefulShutdown()
        }
    }

    private func fireForever(_ job: Configuration.Job) async {
        let schedule = job.schedule
        let wake = await control.doorbell(job.name)
        // Where we left off: the last slot handled before a restart, so that none is fired twice.
        var last = await dispatcher.lastSlot(job: job.name)
        if let previous = last {
            await handleMissed(job, after: previous, cause: "the scheduler was not running", applyPolicy: true)
            last = max(previous, clock.now())
        }
        var next = schedule.next(after: last ?? clock.now())
        if let next {
            logger.info(
                "scheduled",
                metadata: ["job": "\(job.name)", "trigger": "\(job.trigger)", "next": "\(Timestamp.format(next))"]
            )
        }
        while !Task.isCancelled, let slot = next {
            if let resume = await control.takeResume(job.name) {
                // Resumed (perhaps before this loop even saw the pause): the slots since the last one handled.
                let from = await dispatcher.lastSlot(job: job.name) ?? slot.addingTimeInterval(-0.001)
                await handleMissed(job, after: from, cause: "the job was paused", applyPolicy: resume.catchUp)
                next = schedule.next(after: max(clock.now(), from))
                continue
            }
            if await control.isPaused(job.name) {
                guard await wake.wait() else { return }
                continue
            }
            let jitter = job.jitter > .zero ? Double.random(in: 0...(job.jitter / .seconds(1))) : 0
            // Returns early when the job is paused or resumed.
            await sleep(until: slot.addingTimeInterval(jitter), orWake: wake)
            if Task.isCancelled { return }
            let now = clock.now()
            if now < slot.addingTimeInterval(jitter) { continue }
            // Paused or resumed while waiting: the top of the loop decides.
            if await control.isPaused(job.name) { continue }
            if await control.hasResume(job.name) { continue }
            let firedAt = now
            let lateness = firedAt.timeIntervalSince(slot) * 1000
            // A wake later than the next slot (suspend, clock jump): the slots in between are missed.
            let later = MissedSlots.slots(of: schedule, after: slot, until: now)
            if later.isEmpty {
                await dispatcher.dispatch(
                    .scheduled(job: job.name, slot: slot, firedAt: firedAt),
                    job: job,
                    lateness: lateness
                )
            } else {
                await handleMissed(job, after: slot.addingTimeInterval(-0.001), cause: "the timer woke late", applyPolicy: true)
            }
            next = schedule.next(after: max(later.last ?? slot, slot))
        }
    }

    /// Sleeps until `deadline` on the clock, or until the doorbell rings.
    private func sleep(until deadline: Date, orWake wake: Doorbell) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await clock.sleep(until: deadline) }
            group.addTask { _ = await wake.wait() }
            await group.next()
            group.cancelAll()
        }
    }

    /// Applies the misfire policy (or skips all, when not `applyPolicy`) to the slots after `after` up to now.
    private func handleMissed(_ job: Configuration.Job, after: Date, cause: String, applyPolicy: Bool) async {
        let now = clock.now()
        let slots = MissedSlots.slots(of: job.schedule, after: after, until: now)
        guard !slots.isEmpty else { return }
        let decision =
            applyPolicy
            ? MissedSlots.decide(slots, policy: job.misfire, grace: job.grace, now: now, cause: cause)
            : MissedSlots.Decision(fire: [], skip: slots.map { ($0, "missed (\(cause)); resumed without catching up") })
        logger.notice(
            "missed slots",
            metadata: ["job": "\(job.name)", "missed": "\(slots.count)", "firing": "\(decision.fire.count)", "cause": "\(cause)"]
        )
        for (slot, reason) in decision.skip {
            await dispatcher.skip(job: job.name, slot: slot, reason: reason)
        }
        for slot in decision.fire {
            await dispatcher.dispatch(
                .scheduled(job: job.name, slot: slot, firedAt: now),
                job: job,
                lateness: now.timeIntervalSince(slot) * 1000
            )
        }
    }
}

/// Where the scheduler hands fired runs.
public protocol RunSink: Sendable {
    /// Queues a run request without waiting; false if it could not be queued.
    func submit(_ request: RunRequest) -> Bool
    /// Asks the algorithm to stop a run; false if it could not be queued.
    func cancel(_ cancel: RunCancel) -> Bool
    /// Requests waiting for the algorithm to take them (none connected, or it is slow).
    var backlog: Int { get }
}

extension RunSink {
    public func cancel(_ cancel: RunCancel) -> Bool { false }
    public var backlog: Int { 0 }
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

    public func cancel(_ cancel: RunCancel) -> Bool {
        socket.post(Wire.encode(cancel))
    }

    public var backlog: Int { socket.backlog }
}
