import Foundation
public import Logging
public import Messaging
public import Config
public import ServiceKit
import Scheduling
public import ServiceLifecycle

public import ZMQ

/// Answers `baton jobs`, `trigger`, `pause`, `resume` and `backfill` on the `control` REP socket.
public struct ControlServer: Service {
    private let jobs: [Configuration.Job]
    private let socket: SocketChannel
    private let ledger: SchedulerState
    private let dispatcher: Dispatcher
    private let control: JobControl
    private let logger: Logger
    private let rejector: MessageRejector

    /// The most slots one backfill may fire.
    public static let maxBackfill = 10_000

    /// Creates the server.
    public init(
        jobs: [Configuration.Job],
        socket: SocketChannel,
        ledger: SchedulerState,
        dispatcher: Dispatcher,
        control: JobControl,
        logger: Logger,
        rejector: MessageRejector? = nil
    ) {
        self.rejector = rejector ?? MessageRejector(socket: "control", publisher: nil, logger: logger)
        self.jobs = jobs
        self.socket = socket
        self.ledger = ledger
        self.dispatcher = dispatcher
        self.control = control
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                guard let frames = try? await socket.receive() else { return }
                let reply: ControlReply
                do {
                    let request = try Wire.decode(ControlRequest.self, from: frames).message
                    reply = try await handle(request)
                } catch let error as ProtocolError {
                    // Still a reply: a REQ client waits for one.
                    rejector.reject(error, frames: frames)
                    reply = ControlReply(ok: false, error: WireText.readable(error.reason))
                } catch {
                    reply = ControlReply(ok: false, error: "the scheduler could not do it: \(error)")
                }
                // REP must answer every request before it can receive the next.
                do { try await socket.send(Wire.encode(reply)) } catch { return }
            }
        }
    }

    /// The answer to one request (what the socket loop sends back).
    public func handle(_ request: ControlRequest) async throws -> ControlReply {
        if request.command == .jobs { return ControlReply(ok: true, jobs: try await describeJobs()) }
        if request.command == .cancel, let run = request.run { return try await cancel(run) }
        guard let name = request.job, let job = jobs.first(where: { $0.name == name }) else {
            let known = jobs.map(\.name).joined(separator: ", ")
            return ControlReply(
                ok: false,
                error: "unknown job \"\(request.job ?? "")\"; configured jobs: \(known.isEmpty ? "none" : known)"
            )
        }
        switch request.command {
        case .jobs:
            return ControlReply(ok: true)
        case .pause:
            try await control.pause(name)
            logger.notice("job paused", metadata: ["job": "\(name)"])
            return ControlReply(ok: true, message: "\(name) paused")
        case .resume:
            let catchUp = request.catchUp ?? false
            try await control.resume(name, catchUp: catchUp)
            logger.notice("job resumed", metadata: ["job": "\(name)", "catch_up": "\(catchUp)"])
            return ControlReply(
                ok: true,
                message: "\(name) resumed"
                    + (catchUp ? ", missed slots handled by misfire policy \(job.misfire.rawValue)" : "; missed slots recorded as skipped")
            )
        case .cancel:
            return try await cancelWaiting(job)
        case .fires:
            // The last slot first: every slot up to it was recorded with it, so the fires read after include them all.
            let lastSlot = try await ledger.lastSlot(job: name)
            return ControlReply(
                fires: try await ledger.fires(job: name).map { ControlReply.Fire(request: $0.request, state: $0.state, detail: $0.detail) },
                lastSlot: lastSlot,
                paused: await control.isPaused(name)
            )
        case .trigger:
            // Whole milliseconds, so that the run id and `BATON_LOGICAL_TIME` name the same instant.
            let now = Timestamp.wholeMilliseconds(Date())
            let runID = RunID.make(job: name, logicalTime: now) + "~manual"
            return await trigger(job, runID: runID, at: now, force: request.force ?? false)
        case .backfill:
            return try await backfill(job, from: request.from ?? Date(), to: request.to ?? Date(), rerun: request.rerun ?? false)
        }
    }

    /// Runs a job now: refused while it is paused (unless forced), then through its overlap policy, as a
    /// scheduled slot would be; the reply says what happened.
    private func trigger(_ job: Configuration.Job, runID: String, at now: Date, force: Bool) async -> ControlReply {
        let name = job.name
        if await control.isPaused(name), !force {
            return ControlReply(
                ok: false,
                error: "\(name) is paused; not triggered (resume it, or trigger it with --force to run it once while paused)"
            )
        }
        let request = RunRequest(runID: runID, job: name, logicalTime: now, firedAt: now, trigger: .manual)
        let outcome = await dispatcher.trigger(request, job: job)
        logger.notice("job triggered", metadata: ["job": "\(name)", "run": "\(runID)", "outcome": "\(outcome)"])
        let policy = "overlap: \(job.overlap.rawValue)"
        switch outcome {
        case .fired(let replaced) where !replaced.isEmpty:
            return ControlReply(
                ok: true,
                message: "\(name) triggered, replacing \(replaced.joined(separator: ", ")) (\(policy): cancelled)",
                runs: [runID]
            )
        case .fired:
            return ControlReply(ok: true, message: "\(name) triggered", runs: [runID])
        case .queued(let behind):
            return ControlReply(ok: true, message: "\(name) queued (\(policy)): \(behind); it runs when they end", runs: [runID])
        case .refused(let reason):
            return ControlReply(ok: false, error: "\(name) not triggered: \(reason)")
        case .duplicate:
            return ControlReply(ok: false, error: "\(name) not triggered: run \(runID) was already recorded; try again")
        }
    }

    private func backfill(_ job: Configuration.Job, from: Date, to: Date, rerun: Bool) async throws -> ControlReply {
        let slots = MissedSlots.slots(of: job.schedule, after: from.addingTimeInterval(-0.001), until: to, limit: Self.maxBackfill + 1)
        guard slots.count <= Self.maxBackfill else {
            return ControlReply(ok: false, error: "the range has more than \(Self.maxBackfill) slots; split it")
        }
        var fired: [String] = []
        var done = 0
        for slot in slots {
            let base = RunID.make(job: job.name, logicalTime: slot)
            var runID = base
            if let state = try await ledger.state(runID: base) {
                let ran = [.fired, .accepted, .running, .finished, .queued].contains(state)
                if ran && !rerun {
                    done += 1
                    continue
                }
                var attempt = 2
                while try await ledger.contains(runID: "\(base)~\(attempt)") { attempt += 1 }
                runID = "\(base)~\(attempt)"
            }
            let request = RunRequest(runID: runID, job: job.name, logicalTime: slot, firedAt: Date(), trigger: .backfill)
            await dispatcher.dispatch(request, job: job, lateness: 0)
            fired.append(runID)
        }
        logger.notice("backfill", metadata: ["job": "\(job.name)", "fired": "\(fired.count)", "already_done": "\(done)"])
        return ControlReply(
            ok: true,
            message:
                "\(job.name): \(fired.count) slot(s) fired, \(done) already done\(done > 0 && !rerun ? " (use --rerun to run them again)" : "")",
            runs: fired
        )
    }

    /// Ends one run: a queued fire at once; a run at the algorithm (waiting or running) by a cancel, sent
    /// until the algorithm reports the run's end.
    private func cancel(_ runID: String) async throws -> ControlReply {
        guard let fire = try await ledger.fire(runID) else {
            return ControlReply(ok: false, error: "unknown run \"\(runID)\"")
        }
        if fire.state.isTerminal {
            return ControlReply(ok: false, error: "\(runID) has already ended: \(fire.state.rawValue)")
        }
        let done = try await dispatcher.cancel([fire], reason: "cancelled by a user", queuedOnly: false)
        return ControlReply(ok: true, message: "\(runID): \(done.first?.1 ?? "cancelled")", runs: [runID])
    }

    /// Ends every run of a job that has not started: queued at the scheduler, or waiting at the algorithm.
    private func cancelWaiting(_ job: Configuration.Job) async throws -> ControlReply {
        let waiting = try await ledger.waiting(job: job.name)
        let cancelled = try await dispatcher.cancel(waiting, reason: "cancelled by a user (queued runs of \(job.name))", queuedOnly: true)
            .map(\.0)
        logger.notice("cancelled queued runs", metadata: ["job": "\(job.name)", "runs": "\(cancelled.count)"])
        return ControlReply(ok: true, message: "\(job.name): cancel sent for \(cancelled.count) run(s) not started", runs: cancelled)
    }

    private func describeJobs() async throws -> [ControlReply.Job] {
        var result: [ControlReply.Job] = []
        let now = Date()
        for job in jobs {
            let last = try await ledger.lastSlot(job: job.name)
            let ended = try await ledger.lastEnded(job: job.name)
            result.append(
                ControlReply.Job(
                    name: job.name,
                    schedule: "\(job.trigger)",
                    // Foundation on Linux names UTC "GMT"; say it as the configuration does.
                    timeZone: job.timeZone.identifier == "GMT" ? "UTC" : job.timeZone.identifier,
                    next: job.schedule.next(after: max(now, last ?? now)),
                    paused: await control.isPaused(job.name),
                    running: try await ledger.unfinished(job: job.name).map(\.request.runID),
                    lastRun: ended?.request.runID,
                    lastOutcome: ended.map { $0.state == .finished ? "succeeded" : $0.state.rawValue },
                    lastDurationMs: ended?.duration.map { Int(($0 * 1000).rounded()) },
                    policies: "misfire=\(job.misfire.rawValue) overlap=\(job.overlap.rawValue)"
                )
            )
        }
        return result
    }
}
