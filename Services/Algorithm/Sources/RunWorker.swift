import Metrics
import Foundation
public import Logging
import Messaging
public import Runtime
public import ServiceLifecycle
public import Storage
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
    public init(
        configuration: Configuration,
        runs: AsyncSocket,
        reports: AsyncSocket,
        ledger: RunLedger,
        doorbell: Doorbell,
        publisher: StatusPublisher,
        logger: Logger,
        metrics: ServiceMetrics = .disabled
    ) {
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
        await cancelWhenGracefulShutdown {
            // Runs a crash or a stop interrupted come first: they were accepted, so nobody else will ask again.
            if let unfinished = try? await ledger.unfinished(), !unfinished.isEmpty {
                logger.notice("resuming interrupted runs", metadata: ["count": "\(unfinished.count)"])
                for run in unfinished where !Task.isCancelled {
                    await execute(run.request)
                }
            }
            await withDiscardingTaskGroup { group in
                for _ in 0..<configuration.algorithm.concurrency {
                    group.addTask { await self.work() }
                }
            }
        }
    }

    private func work() async {
        while !Task.isCancelled {
            let frames: [Data]
            do {
                frames = try await runs.receive()
            } catch {
                return
            }
            do {
                if try Wire.kind(of: frames) == RunCancel.kind {
                    let cancel = try Wire.decode(RunCancel.self, from: frames).message
                    if await running.cancel(cancel.runID) {
                        logger.notice("stopping run at the scheduler's request: \(cancel.reason)", metadata: ["run": "\(cancel.runID)"])
                    }
                    continue
                }
                await accept(try Wire.decode(RunRequest.self, from: frames).message)
            } catch {
                logger.warning("rejected a malformed message", metadata: ["socket": "runs", "error": "\(error)"])
                publisher.publish(EventType.messageRejected, message: "\(error)", attributes: ["socket": "runs"])
            }
        }
    }

    /// Records a request in the ledger and runs it, unless it was seen before: then the scheduler is told
    /// again what became of it (its earlier report may have been lost), and nothing runs twice.
    private func accept(_ request: RunRequest) async {
        let known: RunLedger.Run?
        do {
            known = try await ledger.accept(request)
        } catch {
            // Not recorded: do not run it; the scheduler sends it again since it was never accepted.
            logger.error(
                "cannot record a run request; it will be taken when sent again",
                metadata: ["run": "\(request.runID)", "error": "\(error)"]
            )
            return
        }
        if let known {
            let state: RunReport.State =
                switch known.state {
                case "finished": .finished
                case "failed": .failed
                default: .accepted
                }
            report(RunReport(runID: request.runID, job: request.job, state: state, detail: known.error))
            publisher.publish(EventType.runDuplicate, job: request.job, run: request.runID, attributes: ["state": known.state])
            return
        }
        report(RunReport(runID: request.runID, job: request.job, state: .accepted))
        publisher.publish(EventType.runAccepted, job: request.job, run: request.runID)
        await execute(request)
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
            try? await ledger.markRunning(request.runID)
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
            let stop = await running.begin(request.runID)
            let runLogger = logger
            // The run races the scheduler's stop request (overlap policy `replace`).
            let ending: Ending = await withTaskGroup(of: Ending?.self) { group in
                group.addTask { .ran(failure: await self.runAlgorithm(job, request: request, output: partial, logger: runLogger)) }
                group.addTask { await stop.wait() ? .stopped : nil }
                var first: Ending?
                while first == nil, let next = await group.next() { first = next }
                group.cancelAll()
                return first ?? .ran(failure: "interrupted")
            }
            await running.end(request.runID)
            guard case .ran(let failure) = ending else {
                try? FileManager.default.removeItem(atPath: partial)
                await fail(request, reason: "stopped by the scheduler (overlap: replace)", logger: logger, duration: clock.now - start)
                publisher.publish(EventType.runCancelled, job: job.name, run: request.runID)
                return
            }
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
                    onError: { line in logger.warning("\(line)", metadata: ["stream": "stderr"]) }
                )
                return outcome.succeeded ? nil : "the command \(outcome)"
            } catch {
                return "cannot start \(command.argv[0]): \(error)"
            }
        }
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

/// The runs executing now, each with a doorbell that stops it.
actor RunningRuns {
    private var runs: [String: Doorbell] = [:]

    func begin(_ runID: String) -> Doorbell {
        let doorbell = Doorbell()
        runs[runID] = doorbell
        return doorbell
    }

    func end(_ runID: String) { runs[runID] = nil }

    /// Stops a run if it is executing here; returns whether it was.
    func cancel(_ runID: String) -> Bool {
        guard let doorbell = runs[runID] else { return false }
        doorbell.ring()
        return true
    }
}
