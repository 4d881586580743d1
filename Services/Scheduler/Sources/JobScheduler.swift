import Foundation
public import Logging
public import Messaging
public import Config
import ServiceKit
import Scheduling
public import ServiceLifecycle

public import ZMQ
import Racing

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

    /// One job's timer. `cursor` is the last slot handled (fired or recorded skipped), durable in the
    /// scheduler state: every slot after it is handled, in order, and the cursor moves only past slots that
    /// were recorded. So a slot that falls due while a catch-up is being recorded and sent, or while the disk
    /// is full, is handled on the next turn, never dropped.
    private func fireForever(_ job: Configuration.Job) async {
        let schedule = job.schedule
        let wake = await control.doorbell(job.name)
        var cursor: Date
        if let previous = await dispatcher.lastSlot(job: job.name) {
            cursor = previous
            // Slots missed while the scheduler was down (a paused job's wait for its resume).
            if await !control.isPaused(job.name) {
                cursor = await handleDue(job, after: cursor, cause: "the scheduler was not running", applyPolicy: true)
            }
        } else {
            // A new job: its schedule starts now.
            cursor = clock.now()
        }
        if let next = schedule.next(after: cursor) {
            logger.info(
                "scheduled",
                metadata: ["job": "\(job.name)", "trigger": "\(job.trigger)", "next": "\(Timestamp.format(next))"]
            )
        }
        while !Task.isCancelled {
            if let resume = await control.takeResume(job.name) {
                // Resumed (perhaps before this loop even saw the pause): the slots since the last one handled.
                cursor = await handleDue(job, after: cursor, cause: "the job was paused", applyPolicy: resume.catchUp)
                continue
            }
            if await control.isPaused(job.name) {
                guard await wake.wait() else { return }
                continue
            }
            guard let slot = schedule.next(after: cursor) else {
                // A one-shot job that has fired: nothing more to do.
                return
            }
            let jitter = job.jitter > .zero ? Double.random(in: 0...(job.jitter / .seconds(1))) : 0
            // Returns early when the job is paused or resumed.
            await sleep(until: slot.addingTimeInterval(jitter), orWake: wake)
            if Task.isCancelled { return }
            if clock.now() < slot.addingTimeInterval(jitter) { continue }
            // Paused or resumed while waiting: the top of the loop decides.
            if await control.isPaused(job.name) { continue }
            if await control.hasResume(job.name) { continue }
            cursor = await handleDue(job, after: cursor, cause: nil, applyPolicy: true)
        }
    }

    /// Handles every slot after `cursor` up to now: the one due slot of a timer's wake fires; anything else
    /// (a restart, a late wake, a resume, with `cause` saying why) goes through the misfire policy, or is all
    /// skipped when not `applyPolicy`. Returns the new cursor: the last slot handled, or `cursor` if nothing
    /// could be recorded (the task was cancelled).
    private func handleDue(_ job: Configuration.Job, after cursor: Date, cause: String?, applyPolicy: Bool) async -> Date {
        var cursor = cursor
        while true {
            let (next, more) = await handleChunk(job, after: cursor, cause: cause, applyPolicy: applyPolicy)
            guard more, next > cursor, !Task.isCancelled else { return next }
            cursor = next
        }
    }

    /// One chunk of ``handleDue(_:after:cause:applyPolicy:)``; returns the new cursor and whether more slots are due.
    private func handleChunk(_ job: Configuration.Job, after cursor: Date, cause: String?, applyPolicy: Bool) async -> (Date, Bool) {
        let now = clock.now()
        // At most 10,000 slots a turn (a long downtime of a fine grid is handled in chunks, oldest first).
        let (slots, more) = MissedSlots.firstSlots(of: job.schedule, after: cursor, until: now, count: 10_000)
        guard let last = slots.last else { return (cursor, false) }
        var decision: MissedSlots.Decision
        if slots.count == 1, !more, cause == nil {
            decision = MissedSlots.Decision(fire: slots, skip: [])
        } else {
            let cause = cause ?? "the timer woke late"
            decision =
                applyPolicy
                ? MissedSlots.decide(slots, policy: job.misfire, grace: job.grace, now: now, cause: cause)
                : MissedSlots.Decision(fire: [], skip: slots.map { ($0, "missed (\(cause)); resumed without catching up") })
            if more, applyPolicy, job.misfire == .latest {
                // The newest slot is in a later chunk: everything here is older than it.
                decision = MissedSlots.Decision(
                    fire: [],
                    skip: slots.map { ($0, "missed (\(cause)); misfire policy latest runs only the newest") }
                )
            }
            logger.notice(
                "missed slots",
                metadata: ["job": "\(job.name)", "missed": "\(slots.count)", "firing": "\(decision.fire.count)", "cause": "\(cause)"]
            )
        }
        await dispatcher.handle(job: job, fire: decision.fire, skip: decision.skip, firedAt: now)
        if Task.isCancelled, await dispatcher.lastSlot(job: job.name).map({ $0 < last }) ?? true {
            // Stopped before the slots were recorded: they are handled again at the next start.
            return (cursor, false)
        }
        return (last, more)
    }

    /// Sleeps until `deadline` on the clock, or until the doorbell rings.
    private func sleep(until deadline: Date, orWake wake: Doorbell) async {
        _ = await firstResult(
            of: { _ = try? await clock.sleep(until: deadline) },
            { _ = await wake.wait() }
        )
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
    private let socket: SocketOutbound

    /// Wraps a bound PUSH socket.
    public init(socket: SocketOutbound) {
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
