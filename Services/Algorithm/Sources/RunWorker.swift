import Metrics
import Foundation
public import Logging
import Messaging
public import Config
public import ServiceKit
public import MetricsHTTP
import Commands
public import ServiceLifecycle

import UnixSignals
public import ZMQ

/// Takes run requests from the scheduler and runs them, `concurrency` at a time; hands each successful
/// result off by sealing its raw file and adding it to the outbox, then rings the sender's doorbell.
/// It never waits for processors.
public struct RunWorker: Service {
    let configuration: Configuration
    private let runs: SocketInbound
    let running = RunningRuns()
    private let reports: SocketOutbound
    let ledger: RunLedger
    let doorbell: Doorbell
    let publisher: StatusPublisher
    let logger: Logger
    let metrics: ServiceMetrics
    private let rejector: MessageRejector
    /// What retry back-offs and the drain wait on.
    let clock: any Clock<Duration>

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
    ///   - clock: What retry back-offs and the drain wait on.
    public init(
        configuration: Configuration,
        runs: SocketInbound,
        reports: SocketOutbound,
        ledger: RunLedger,
        doorbell: Doorbell,
        publisher: StatusPublisher,
        logger: Logger,
        metrics: ServiceMetrics = .disabled,
        rejector: MessageRejector? = nil,
        clock: any Clock<Duration> = ContinuousClock()
    ) {
        self.clock = clock
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
                    wait.addTask { try? await clock.sleep(for: algorithm.drain) }
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
            let pipeline = configuration.job(named: request.job)?.pipeline(processor: configuration.processor) ?? .default
            known = try await ledger.accept(request, pipeline: pipeline)
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

    func report(_ report: RunReport) {
        if !reports.post(Wire.encode(report)) {
            logger.warning("run report queue full; the scheduler will ask again", metadata: ["run": "\(report.runID)"])
        }
    }
}
