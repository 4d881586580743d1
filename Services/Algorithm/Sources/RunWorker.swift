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
    private let outbox: Outbox
    private let doorbell: Doorbell
    private let publisher: StatusPublisher
    private let logger: Logger

    /// Creates the worker.
    /// - Parameters:
    ///   - configuration: Jobs and data directory.
    ///   - runs: The PULL socket connected to the scheduler.
    ///   - outbox: Where results are handed off.
    ///   - doorbell: Rung after each hand-off.
    ///   - publisher: The status bus.
    ///   - logger: The logger.
    public init(
        configuration: Configuration,
        runs: AsyncSocket,
        outbox: Outbox,
        doorbell: Doorbell,
        publisher: StatusPublisher,
        logger: Logger
    ) {
        self.configuration = configuration
        self.runs = runs
        self.outbox = outbox
        self.doorbell = doorbell
        self.publisher = publisher
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
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
            let request: RunRequest
            do {
                request = try Wire.decode(RunRequest.self, from: frames).message
            } catch {
                logger.warning("rejected a malformed run request", metadata: ["error": "\(error)"])
                publisher.publish(EventType.messageRejected, message: "\(error)", attributes: ["socket": "runs"])
                continue
            }
            await execute(request)
        }
    }

    /// Runs one request to completion and hands off its result.
    func execute(_ request: RunRequest) async {
        var logger = logger
        logger[metadataKey: "job"] = "\(request.job)"
        logger[metadataKey: "run"] = "\(request.runID)"
        guard let job = configuration.job(named: request.job) else {
            fail(request, reason: "unknown job \"\(request.job)\": not in this algorithm's configuration", logger: logger)
            return
        }
        let data = configuration.dataDirectory
        let partial = RawResults.partialPath(dataDirectory: data, job: job.name, runID: request.runID)
        let final = RawResults.resultPath(dataDirectory: data, job: job.name, runID: request.runID)
        do {
            try FileManager.default.createDirectory(
                atPath: RawResults.directory(dataDirectory: data, job: job.name),
                withIntermediateDirectories: true
            )
        } catch {
            fail(request, reason: "cannot create the raw result directory: \(error)", logger: logger)
            return
        }
        try? FileManager.default.removeItem(atPath: partial)

        let clock = ContinuousClock()
        let start = clock.now
        publisher.publish(
            EventType.runStarted,
            job: job.name,
            run: request.runID,
            attributes: ["logical_time": Timestamp.format(request.logicalTime), "trigger": request.trigger.rawValue]
        )
        let failure = await runAlgorithm(job, request: request, output: partial, logger: logger)
        let elapsed = clock.now - start
        if let failure {
            try? FileManager.default.removeItem(atPath: partial)
            fail(request, reason: failure, logger: logger, duration: elapsed)
            return
        }
        do {
            guard FileManager.default.fileExists(atPath: partial) else {
                throw StorageError("the algorithm succeeded but wrote no result to $BATON_OUTPUT (\(partial))")
            }
            let handoffStart = clock.now
            let seal = try RawResults.seal(partial: partial, final: final)
            let header = ResultHeader(
                runID: request.runID,
                job: job.name,
                logicalTime: request.logicalTime,
                size: seal.size,
                sha256: seal.sha256
            )
            try await outbox.add(.init(header: header, path: final))
            doorbell.ring()
            let handoff = clock.now - handoffStart
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
        } catch {
            fail(request, reason: "cannot keep the result: \(error)", logger: logger, duration: elapsed)
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
                    onOutput: { line in logger.info("\(line)", metadata: ["stream": "stdout"]) },
                    onError: { line in logger.warning("\(line)", metadata: ["stream": "stderr"]) }
                )
                return outcome.succeeded ? nil : "the command \(outcome)"
            } catch {
                return "cannot start \(command.argv[0]): \(error)"
            }
        }
    }

    private func fail(_ request: RunRequest, reason: String, logger: Logger, duration: Duration? = nil) {
        logger.error("run failed: \(reason)")
        var attributes = ["reason": reason]
        if let duration { attributes["duration_ms"] = Self.milliseconds(duration) }
        publisher.publish(EventType.runFailed, job: request.job, run: request.runID, message: reason, attributes: attributes)
    }

    static func milliseconds(_ duration: Duration) -> String {
        String(format: "%.3f", Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15)
    }
}
