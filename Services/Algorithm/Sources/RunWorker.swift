import Metrics
import Foundation
public import Logging
import Messaging
public import Config
public import ServiceKit
public import MetricsHTTP
import Commands
public import ServiceLifecycle
public import Storage
import UnixSignals
public import ZMQ

/// Takes run requests from the scheduler and runs them, `concurrency` at a time; hands each successful
/// result off by sealing its raw file and adding it to the outbox, then rings the sender's doorbell.
/// It never waits for processors.
public struct RunWorker: Service {
    private let configuration: Configuration
    private let runs: AsyncSocket
    private let running = RunningRuns()
    private let reports: AsyncSocket
    private let ledger: RunLedger
    private let doorbell: Doorbell
    private let publisher: StatusPublisher
    private let logger: Logger
    private let metrics: ServiceMetrics
    private let rejector: MessageRejector

    /// Creates the worker.
    /// - Parameters:
    ///   - configuration: Jobs and data directory.
    ///   - runs: The PULL socket connected to the scheduler.
    ///   - reports: The PUSH socket for run reports to the scheduler.
    ///   - ledger: The record of accepted runs.
    ///   - doorbell: Rung after each hand-off.
    ///   - publisher: The status bus.
    ///   - logger: The logger.
    ///   - metrics: Runs started, succeeded and failed, run duration and hand-off cost, per job.
    ///   - rejector: How malformed messages on `runs` are turned away; by default a `runs` rejector on `publisher`.
    public init(
        configuration: Configuration,
        runs: AsyncSocket,
        reports: AsyncSocket,
        ledger: RunLedger,
        doorbell: Doorbell,
        publisher: StatusPublisher,
        logger: Logger,
        metrics: ServiceMetrics = .disabled,
        rejector: MessageRejector? = nil
    ) {
        self.rejector = rejector ?? MessageRejector(socket: "runs", publisher: publisher, logger: logger, metrics: metrics)
        self.configuration = configuration
        self.runs = runs
        self.reports = reports
        self.ledger = ledger
        self.doorbell = doorbell
        self.publisher = publisher
        self.logger = logger
        self.metrics = metrics
    }

    public func run() async throws {
        let queue = RunQueue()
        // Runs a crash or a stop interrupted come first: they were accepted, so nobody else will ask again.
        if let unfinished = try? await ledger.unfinished(), !unfinished.isEmpty {
            logger.notice("resuming interrupted runs", metadata: ["count": "\(unfinished.count)"])
            for run in unfinished { await queue.push(run.request) }
        }
        // The outcomes of the last few minutes are reported again: a killed service may have taken a report
        // with it (the scheduler also asks, but only about runs it has not heard of for a while).
        for run in (try? await ledger.ended(since: Date().addingTimeInterval(-300))) ?? [] {
            report(RunReport(runID: run.request.runID, job: run.request.job, state: run.state, detail: run.error))
        }
        let algorithm = configuration.algorithm
        let workers = algorithm.concurrency + algorithm.backfillConcurrency
        await withTaskGroup(of: Role.self) { group in
            // Reads the `runs` socket until shutdown begins: requests into the queue, cancels at once.
            group.addTask {
                await cancelWhenGracefulShutdown { await self.receive(into: queue) }
                return .receiver
            }
            for _ in 0..<algorithm.concurrency {
                group.addTask {
                    await self.work(.live, from: queue)
                    return .worker
                }
            }
            for _ in 0..<algorithm.backfillConcurrency {
                group.addTask {
                    await self.work(.backfill, from: queue)
                    return .worker
                }
            }
            // The drain: on SIGTERM no new run starts; running ones get `algorithm.drain` to finish (a second
            // SIGTERM or SIGINT ends the wait), then they are stopped and run again at the next start.
            group.addTask {
                do { try await gracefulShutdown() } catch {
                    await queue.close()
                    return .drain
                }
                await queue.close()
                let count = await running.count
                if count > 0 {
                    logger.notice(
                        "stopping: waiting for running runs to finish",
                        metadata: ["runs": "\(count)", "drain": "\(DurationText.format(algorithm.drain))"]
                    )
                }
                await withTaskGroup(of: Void.self) { wait in
                    wait.addTask { try? await Task.sleep(for: algorithm.drain) }
                    wait.addTask { await Self.nextStopSignal() }
                    await wait.next()
                    wait.cancelAll()
                }
                if Task.isCancelled { return .drain }
                let stopped = await running.stopAll()
                if stopped > 0 { logger.notice("stopped running runs; they run again at the next start", metadata: ["runs": "\(stopped)"]) }
                return .drain
            }
            var finished = 0
            while let role = await group.next() {
                if role == .worker { finished += 1 }
                // Every worker has drained, or the drain is over: stop the rest.
                if finished == workers || role == .drain { group.cancelAll() }
            }
        }
    }

    /// The parts of the worker's task group.
    private enum Role { case receiver, worker, drain }

    /// Waits for a second SIGTERM or SIGINT (the first began the shutdown).
    private static func nextStopSignal() async {
        let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        for await _ in signals { return }
    }

    /// Takes every message from the scheduler at once: a request is recorded and queued in its lane (a run
    /// waiting for a worker is `accepted`, and the scheduler hears so), a cancel is applied, a request
    /// already known is answered with its state. So the algorithm answers even while all workers are busy.
    private func receive(into queue: RunQueue) async {
        while !Task.isCancelled {
            let frames: [Data]
            do {
                frames = try await runs.receive()
            } catch {
                return
            }
            do {
                if try Wire.kind(of: frames) == RunCancel.kind {
                    await cancel(try Wire.decode(RunCancel.self, from: frames).message, queue: queue)
                    continue
                }
                let request = try Wire.decode(RunRequest.self, from: frames).message
                if await accept(request) { await queue.push(request) }
            } catch {
                rejector.reject(error, frames: frames)
            }
        }
    }

    /// A worker of one lane: runs queued requests one at a time until the queue is closed.
    private func work(_ lane: RunQueue.Lane, from queue: RunQueue) async {
        while let request = await queue.next(lane) {
            await execute(request)
        }
    }

    /// Applies a cancel: a queued run is dropped, a running one stopped (its command's whole process group),
    /// an ended one keeps its outcome; each is reported to the scheduler.
    private func cancel(_ cancel: RunCancel, queue: RunQueue) async {
        if cancel.queuedOnly == true, await running.contains(cancel.runID) {
            return
        }
        if await running.cancel(cancel.runID, reason: cancel.reason) {
            // `execute` records and reports the end once the run has stopped.
            logger.notice("stopping run at the scheduler's request: \(cancel.reason)", metadata: ["run": "\(cancel.runID)"])
            return
        }
        await queue.remove(cancel.runID)
        do {
            let run = try await ledger.cancel(cancel.runID, reason: cancel.reason)
            report(RunReport(runID: cancel.runID, job: run.request.job, state: run.state, detail: run.error))
            if run.state == .cancelled {
                publisher.publish(EventType.runCancelled, job: run.request.job, run: cancel.runID, message: cancel.reason)
            }
        } catch {
            logger.error("cannot record a cancel; the scheduler sends it again", metadata: ["run": "\(cancel.runID)", "error": "\(error)"])
        }
    }

    /// Records a request in the ledger, unless it was seen before: then the scheduler is told again what
    /// became of it (its earlier report may have been lost, or it is asking), and nothing runs twice.
    /// - Returns: whether the request is new and should run.
    private func accept(_ request: RunRequest) async -> Bool {
        let known: RunLedger.Run?
        do {
            known = try await ledger.accept(request)
        } catch {
            // Not recorded: do not run it; the scheduler sends it again since it was never accepted.
            logger.error(
                "cannot record a run request; it will be taken when sent again",
                metadata: ["run": "\(request.runID)", "error": "\(error)"]
            )
            return false
        }
        if let known {
            report(RunReport(runID: request.runID, job: request.job, state: known.state, detail: known.error, askedAt: request.firedAt))
            publisher.publish(EventType.runDuplicate, job: request.job, run: request.runID, attributes: ["state": known.state.rawValue])
            return false
        }
        report(RunReport(runID: request.runID, job: request.job, state: .accepted, askedAt: request.firedAt))
        publisher.publish(EventType.runAccepted, job: request.job, run: request.runID)
        return true
    }

    private func report(_ report: RunReport) {
        if !reports.post(Wire.encode(report)) {
            logger.warning("run report queue full; the scheduler will ask again", metadata: ["run": "\(report.runID)"])
        }
    }

    /// Runs one request to completion and hands off its result.
    func execute(_ request: RunRequest) async {
        var logger = logger
        logger[metadataKey: "job"] = "\(request.job)"
        logger[metadataKey: "run"] = "\(request.runID)"
        guard let job = configuration.job(named: request.job) else {
            await fail(request, reason: "unknown job \"\(request.job)\": not in this algorithm's configuration", logger: logger)
            return
        }
        let data = configuration.dataDirectory
        let final = RawResults.resultPath(dataDirectory: data, job: job.name, runID: request.runID)
        do {
            try FileManager.default.createDirectory(
                atPath: RawResults.directory(dataDirectory: data, job: job.name),
                withIntermediateDirectories: true
            )
        } catch {
            await fail(request, reason: "cannot create the raw result directory: \(error)", logger: logger)
            return
        }

        let clock = ContinuousClock()
        var attempt = 0
        while true {
            attempt += 1
            // A file of its own per attempt: nothing left of an earlier attempt can write into the one sealed.
            let partial = RawResults.partialPath(dataDirectory: data, job: job.name, runID: request.runID, attempt: attempt)
            let start = clock.now
            metrics.counter("baton_runs_started_total", job: job.name).increment()
            publisher.publish(
                EventType.runStarted,
                job: job.name,
                run: request.runID,
                attributes: [
                    "logical_time": Timestamp.format(request.logicalTime), "trigger": request.trigger.rawValue, "attempt": "\(attempt)",
                ]
            )
            if (try? await ledger.markRunning(request.runID)) == false {
                // Cancelled while waiting for its retry (or ended otherwise): nothing more to run.
                logger.notice("run no longer runnable (cancelled); not started")
                return
            }
            let stop = await running.begin(request.runID)
            report(RunReport(runID: request.runID, job: job.name, state: .running))
            let runLogger = logger
            // The run races a stop: the scheduler's cancel (`baton cancel`, overlap policy `replace`) or the
            // end of the drain at shutdown.
            let ending: Ending = await withTaskGroup(of: Ending?.self) { group in
                group.addTask { .ran(failure: await self.runAlgorithm(job, request: request, output: partial, logger: runLogger)) }
                group.addTask { await stop.doorbell.wait() ? .stopped : nil }
                var first: Ending?
                while first == nil, let next = await group.next() { first = next }
                group.cancelAll()
                return first ?? .ran(failure: "interrupted")
            }
            let stopReason = await running.end(request.runID)
            if case .stopped = ending, stopReason == nil || Task.isCancelled {
                // Stopping the service: the run stays `running` in the ledger and is run again on restart.
                try? FileManager.default.removeItem(atPath: partial)
                logger.notice("run stopped by shutdown; it will run again on restart")
                return
            }
            if case .stopped = ending, let stopReason {
                try? FileManager.default.removeItem(atPath: partial)
                await cancelled(request, reason: stopReason, logger: logger, duration: clock.now - start)
                return
            }
            guard case .ran(let failure) = ending else { return }
            let elapsed = clock.now - start
            if Task.isCancelled {
                // Stopping: the run stays `running` in the ledger and is run again on restart.
                try? FileManager.default.removeItem(atPath: partial)
                logger.notice("run interrupted by shutdown; it will run again on restart")
                return
            }
            let reason: String
            if let failure {
                reason = failure
            } else if let problem = await handOff(request, job: job, partial: partial, final: final, elapsed: elapsed, logger: logger) {
                if Task.isCancelled {
                    // Stopped during the hand-off: not a failure; the run is still `running` and runs again on restart.
                    logger.notice("hand-off interrupted by shutdown; the run will run again on restart")
                    return
                }
                reason = problem
            } else {
                return
            }
            try? FileManager.default.removeItem(atPath: partial)
            if attempt <= job.retries {
                let delay = min(Duration.seconds(1) * (1 << min(attempt - 1, 6)), .seconds(60))
                logger.warning("run failed, trying again in \(DurationText.format(delay)): \(reason)", metadata: ["attempt": "\(attempt)"])
                publisher.publish(
                    EventType.runFailed,
                    job: job.name,
                    run: request.runID,
                    message: reason,
                    attributes: ["attempt": "\(attempt)", "retry": "true"]
                )
                do { try await Task.sleep(for: delay) } catch { return }
                continue
            }
            await fail(request, reason: reason, logger: logger, duration: elapsed)
            return
        }
    }

    /// Seals the raw result and records it in the outbox together with the run's `finished` state.
    /// Returns why that failed, or nil.
    private func handOff(
        _ request: RunRequest,
        job: Configuration.Job,
        partial: String,
        final: String,
        elapsed: Duration,
        logger: Logger
    ) async -> String? {
        do {
            let (seal, handoff) = try await ResultHandOff(ledger: ledger, doorbell: doorbell).handOff(
                runID: request.runID,
                job: job.name,
                logicalTime: request.logicalTime,
                partial: partial,
                final: final
            )
            metrics.counter("baton_runs_succeeded_total", job: job.name).increment()
            metrics.timer("baton_run_duration_seconds", job: job.name).record(duration: elapsed)
            metrics.timer("baton_handoff_cost_seconds", job: job.name).record(duration: handoff)
            report(RunReport(runID: request.runID, job: job.name, state: .finished))
            publisher.publish(
                EventType.runFinished,
                job: job.name,
                run: request.runID,
                attributes: [
                    "duration_ms": Self.milliseconds(elapsed),
                    "handoff_ms": Self.milliseconds(handoff),
                    "size": "\(seal.size)",
                    "sha256": seal.sha256,
                ]
            )
            logger.info("run finished", metadata: ["size": "\(seal.size)", "duration_ms": "\(Self.milliseconds(elapsed))"])
            return nil
        } catch {
            return "cannot keep the result: \(error)"
        }
    }

    /// Runs the job's algorithm; returns why it failed, or nil.
    private func runAlgorithm(_ job: Configuration.Job, request: RunRequest, output: String, logger: Logger) async -> String? {
        switch job.algorithm {
        case .demo(let duration, let size):
            do {
                try await DemoAlgorithm(duration: duration, resultSize: size).run(runID: request.runID, output: output) { fraction in
                    publisher.publish(
                        EventType.runProgress,
                        job: job.name,
                        run: request.runID,
                        attributes: ["percent": String(format: "%.0f", fraction * 100)]
                    )
                }
                return nil
            } catch {
                return "the demo algorithm failed: \(error)"
            }
        case .command(let command):
            var environment = command.environment
            environment["BATON_RUN_ID"] = request.runID
            environment["BATON_JOB"] = job.name
            environment["BATON_LOGICAL_TIME"] = Timestamp.format(request.logicalTime)
            environment["BATON_OUTPUT"] = output
            let runner = CommandRunner(
                argv: command.argv,
                environment: environment,
                workingDirectory: command.workingDirectory,
                timeout: job.timeout
            )
            let stderr = OutputTail()
            do {
                let outcome = try await runner.run(
                    onOutput: { line in
                        if let progress = ProgressLine(line) {
                            publisher.publish(
                                EventType.runProgress,
                                job: job.name,
                                run: request.runID,
                                message: progress.message,
                                attributes: ["percent": String(format: "%.1f", progress.percent)]
                            )
                        } else {
                            logger.info("\(line)", metadata: ["stream": "stdout"])
                        }
                    },
                    onError: { line in
                        stderr.append(line)
                        logger.warning("\(line)", metadata: ["stream": "stderr"])
                    }
                )
                // The cause goes with the failure (ledger, report, run.failed): the last lines of standard error.
                return outcome.succeeded ? nil : stderr.reason("the command \(outcome)")
            } catch {
                return "cannot start \(command.argv[0]): \(error)"
            }
        }
    }

    private func cancelled(_ request: RunRequest, reason: String, logger: Logger, duration: Duration) async {
        logger.notice("run cancelled: \(reason)")
        let run = try? await ledger.cancel(request.runID, reason: reason)
        report(RunReport(runID: request.runID, job: request.job, state: run?.state ?? .cancelled, detail: reason))
        publisher.publish(
            EventType.runCancelled,
            job: request.job,
            run: request.runID,
            message: reason,
            attributes: ["duration_ms": Self.milliseconds(duration)]
        )
    }

    private func fail(_ request: RunRequest, reason: String, logger: Logger, duration: Duration? = nil) async {
        logger.error("run failed: \(reason)")
        metrics.counter("baton_runs_failed_total", job: request.job).increment()
        try? await ledger.fail(request.runID, reason: reason)
        report(RunReport(runID: request.runID, job: request.job, state: .failed, detail: reason))
        var attributes = ["reason": reason]
        if let duration { attributes["duration_ms"] = Self.milliseconds(duration) }
        publisher.publish(EventType.runFailed, job: request.job, run: request.runID, message: reason, attributes: attributes)
    }

    static func milliseconds(_ duration: Duration) -> String {
        String(format: "%.3f", Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15)
    }
}

extension RunWorker {
    /// How a run's execution ended.
    enum Ending: Sendable {
        /// The algorithm ran; `failure` says why it failed, if it did.
        case ran(failure: String?)
        /// The scheduler stopped it.
        case stopped
    }
}

/// The runs executing now, each with a doorbell that stops it and the reason it was stopped for.
actor RunningRuns {
    struct Stop: Sendable {
        let doorbell: Doorbell
    }

    private var runs: [String: (doorbell: Doorbell, reason: String?)] = [:]

    var count: Int { runs.count }

    func begin(_ runID: String) -> Stop {
        let doorbell = Doorbell()
        runs[runID] = (doorbell, nil)
        return Stop(doorbell: doorbell)
    }

    /// Ends a run's entry; returns the cancel reason if it was cancelled (nil if stopped by shutdown).
    func end(_ runID: String) -> String? { runs.removeValue(forKey: runID)?.reason }

    func contains(_ runID: String) -> Bool { runs[runID] != nil }

    /// Stops a run if it is executing here; returns whether it was.
    func cancel(_ runID: String, reason: String) -> Bool {
        guard let run = runs[runID] else { return false }
        runs[runID]?.reason = reason
        run.doorbell.ring()
        return true
    }

    /// Stops every run for shutdown (they stay `running` and run again at the next start); returns how many.
    func stopAll() -> Int {
        for run in runs.values { run.doorbell.ring() }
        return runs.count
    }
}

/// Runs accepted and waiting for a worker, in two lanes: live runs (scheduled and manual) and backfills,
/// so a backfill never delays a live slot. First come, first run within a lane.
actor RunQueue {
    enum Lane: Sendable { case live, backfill }

    private var waiting: [Lane: [RunRequest]] = [.live: [], .backfill: []]
    private var waiters: [Lane: [CheckedContinuation<RunRequest?, Never>]] = [.live: [], .backfill: []]
    private var closed = false

    static func lane(of request: RunRequest) -> Lane { request.trigger == .backfill ? .backfill : .live }

    func push(_ request: RunRequest) {
        let lane = Self.lane(of: request)
        if !waiters[lane, default: []].isEmpty {
            waiters[lane]!.removeFirst().resume(returning: request)
            return
        }
        waiting[lane, default: []].append(request)
    }

    /// The next run of a lane, waiting for one; nil once the queue is closed (or the task cancelled).
    func next(_ lane: Lane) async -> RunRequest? {
        if closed || Task.isCancelled { return nil }
        if !waiting[lane, default: []].isEmpty { return waiting[lane]!.removeFirst() }
        return await withCheckedContinuation { continuation in
            waiters[lane, default: []].append(continuation)
        }
    }

    /// Drops a waiting run; returns whether it was waiting.
    @discardableResult
    func remove(_ runID: String) -> Bool {
        for lane in [Lane.live, .backfill] {
            if let index = waiting[lane]?.firstIndex(where: { $0.runID == runID }) {
                waiting[lane]!.remove(at: index)
                return true
            }
        }
        return false
    }

    /// No more runs start: waiting workers get nil (their runs stay `accepted` and run at the next start).
    func close() {
        closed = true
        for lane in [Lane.live, .backfill] {
            for waiter in waiters[lane] ?? [] { waiter.resume(returning: nil) }
            waiters[lane] = []
        }
    }
}
