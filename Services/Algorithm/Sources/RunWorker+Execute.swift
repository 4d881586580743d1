import Foundation
import Logging
import Messaging
import Metrics
import Racing
import Config
import ServiceKit
import MetricsHTTP
import Commands

// The I/O around one run: ``RunAttempts`` decides what comes next, these functions do it.
extension RunWorker {
    /// How an attempt's race between the algorithm and a stop ended.
    enum Ending: Sendable {
        /// The algorithm ran; `failure` says why it failed, if it did.
        case ran(failure: RunFailure?)
        /// The scheduler, or the end of the drain, stopped it.
        case stopped
    }

    /// Runs one request to completion and hands off its result.
    func execute(_ request: RunRequest) async {
        var logger = logger
        logger[metadataKey: "job"] = "\(request.job)"
        logger[metadataKey: "run"] = "\(request.runID)"
        guard let job = configuration.job(named: request.job) else {
            await fail(request, failure: .unknownJob(request.job), logger: logger)
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
            await fail(request, failure: .rawDirectory("\(error)"), logger: logger)
            return
        }

        // Durations are measured, for events and metrics; waits go through the injected `clock`.
        let stopwatch = ContinuousClock()
        var attempts = RunAttempts(retries: job.retries)
        var next: RunAttempts.Action? = attempts.firstAction
        var partial = ""
        var start = stopwatch.now
        var elapsed = Duration.zero
        while let action = next {
            switch action {
            case .start(let attempt):
                // A file of its own per attempt: nothing left of an earlier attempt can write into the one sealed.
                partial = RawResults.partialPath(dataDirectory: data, job: job.name, runID: request.runID, attempt: attempt)
                start = stopwatch.now
                metrics.counter("baton_runs_started_total", job: job.name).increment()
                publisher.publish(
                    EventType.runStarted,
                    job: job.name,
                    run: request.runID,
                    attributes: [
                        "logical_time": Timestamp.format(request.logicalTime), "trigger": request.trigger.rawValue,
                        "attempt": "\(attempt)",
                    ]
                )
                // Not admitted only on a clear no (cancelled while it waited); a ledger error lets it run.
                next = attempts.handle(.admitted((try? await ledger.markRunning(request.runID)) != false))
            case .run:
                let ending = await attempt(job, request: request, output: partial, logger: logger)
                elapsed = stopwatch.now - start
                let stopReason = await running.end(request.runID)
                switch ending {
                case .stopped: next = attempts.handle(.stopped(reason: stopReason, shuttingDown: Task.isCancelled))
                case .ran(let failure): next = attempts.handle(.ran(failure, shuttingDown: Task.isCancelled))
                }
            case .handOff:
                let failure = await handOff(request, job: job, partial: partial, final: final, elapsed: elapsed, logger: logger)
                next = attempts.handle(.handedOff(failure, shuttingDown: Task.isCancelled))
            case .retry(let delay, let failure, let attempt):
                RawResults.remove(partial: partial)
                let reason = failure.description
                logger.warning("run failed, trying again in \(DurationText.format(delay)): \(reason)", metadata: ["attempt": "\(attempt)"])
                publisher.publish(
                    EventType.runFailed,
                    job: job.name,
                    run: request.runID,
                    message: reason,
                    attributes: ["attempt": "\(attempt)", "retry": "true"]
                )
                do {
                    try await clock.sleep(for: delay)
                    next = attempts.handle(.backedOff)
                } catch {
                    next = attempts.handle(.backOffInterrupted)
                }
            case .end(let end):
                await ended(request, end, partial: partial, logger: logger, elapsed: elapsed)
                next = nil
            }
        }
    }

    /// Runs the algorithm once, racing it against a stop: the scheduler's cancel (`baton cancel`, overlap
    /// policy `replace`) or the end of the drain at shutdown.
    private func attempt(_ job: Configuration.Job, request: RunRequest, output: String, logger: Logger) async -> Ending {
        let stop = await running.begin(request.runID)
        report(RunReport(runID: request.runID, job: job.name, state: .running))
        return await firstResult(
            of: { .ran(failure: await self.runAlgorithm(job, request: request, output: output, logger: logger)) },
            { await stop.doorbell.wait() ? .stopped : nil }
        ) ?? .ran(failure: .interrupted)
    }

    /// Records, reports and logs how a run ended here.
    private func ended(_ request: RunRequest, _ end: RunAttempts.End, partial: String, logger: Logger, elapsed: Duration) async {
        switch end {
        case .finished:
            // The hand-off recorded, reported and announced it.
            break
        case .failed(let failure):
            RawResults.remove(partial: partial)
            await fail(request, failure: failure, logger: logger, duration: elapsed)
        case .cancelled(let reason):
            RawResults.remove(partial: partial)
            await cancelled(request, reason: reason, logger: logger, duration: elapsed)
        case .interrupted(let interruption):
            // Stopping the service: the run stays `running` in the ledger and runs again on restart.
            switch interruption {
            case .stopped:
                RawResults.remove(partial: partial)
                logger.notice("run stopped by shutdown; it will run again on restart")
            case .run:
                RawResults.remove(partial: partial)
                logger.notice("run interrupted by shutdown; it will run again on restart")
            case .handOff:
                logger.notice("hand-off interrupted by shutdown; the run will run again on restart")
            case .backOff:
                break
            }
        case .notRunnable:
            logger.notice("run no longer runnable (cancelled); not started")
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
    ) async -> RunFailure? {
        do {
            // The run's events are published as its hand-off commits, before its tasks can leave from memory: a
            // processor's acknowledgement of them then never reaches the bus before the run says it finished.
            let handedOff = try await ResultHandOff(ledger: ledger, doorbell: doorbell).handOff(
                runID: request.runID,
                job: job.name,
                partial: partial,
                outputDirectory: RawResults.outputDirectory(partial: partial),
                final: final
            ) { handedOff in
                publisher.publish(
                    EventType.runFinished,
                    job: job.name,
                    run: request.runID,
                    attributes: [
                        "duration_ms": Self.milliseconds(elapsed),
                        "handoff_ms": Self.milliseconds(handedOff.duration),
                        "size": "\(handedOff.size)",
                        "parts": "\(handedOff.parts.count)",
                        "sha256": handedOff.parts.count == 1
                            ? handedOff.parts[0].digest.sha256 : PartDigest.combined(handedOff.parts.map(\.digest)),
                    ]
                )
                publisher.publish(progress: handedOff.progress)
            }
            let handoff = handedOff.duration
            metrics.counter("baton_runs_succeeded_total", job: job.name).increment()
            metrics.timer("baton_run_duration_seconds", job: job.name).record(duration: elapsed)
            metrics.timer("baton_handoff_cost_seconds", job: job.name).record(duration: handoff)
            report(RunReport(runID: request.runID, job: job.name, state: .finished))
            logger.info(
                "run finished",
                metadata: [
                    "size": "\(handedOff.size)", "parts": "\(handedOff.parts.count)", "duration_ms": "\(Self.milliseconds(elapsed))",
                ]
            )
            return nil
        } catch {
            return .handOff("\(error)")
        }
    }

    /// Runs the job's algorithm; returns why it failed, or nil.
    private func runAlgorithm(_ job: Configuration.Job, request: RunRequest, output: String, logger: Logger) async -> RunFailure? {
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
                return .demo("\(error)")
            }
        case .command(let command):
            var environment = command.environment
            environment["BATON_RUN_ID"] = request.runID
            environment["BATON_JOB"] = job.name
            environment["BATON_LOGICAL_TIME"] = Timestamp.format(request.logicalTime)
            environment["BATON_OUTPUT"] = output
            let outputDirectory = RawResults.outputDirectory(partial: output)
            do {
                try FileManager.default.createDirectory(atPath: outputDirectory, withIntermediateDirectories: true)
            } catch {
                return .rawDirectory("\(error)")
            }
            environment["BATON_OUTPUT_DIR"] = outputDirectory
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
                return outcome.succeeded ? nil : .command(stderr.reason("the command \(outcome)"))
            } catch {
                return .cannotStart(program: command.argv.first ?? "", error: "\(error)")
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

    private func fail(_ request: RunRequest, failure: RunFailure, logger: Logger, duration: Duration? = nil) async {
        let reason = failure.description
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
