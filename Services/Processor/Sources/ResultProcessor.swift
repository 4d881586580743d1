import Foundation
import Metrics
import NIOPosix
public import Logging
import Messaging
public import ServiceKit
public import MetricsHTTP
import Commands
public import ServiceLifecycle

public import ZMQ
import Racing

/// Asks the algorithm for work and takes its results, one at a time (it asks for the next only when it is done
/// with one, so it never holds tasks it has not started on), checks them, processes and stores them (through a
/// ``ResultHandler``), and tells the algorithm: a lease renewal when it starts and then every third of the
/// lease while it works, an acknowledgement once the result is committed (or found already stored with the
/// same sha256), or a failure report: a conflict (stored with another sha256) is reported as one, marked permanent.
///
/// On SIGTERM a result being processed is handed back (the algorithm sends it again at once) unless it
/// was already stored, in which case it is acknowledged.
public struct ResultProcessor: Service {
    private let handler: ResultHandler
    private let results: SocketInbound
    private let asks: SocketOutbound
    private let acks: SocketOutbound
    private let instance: String
    private let publisher: StatusPublisher
    private let logger: Logger
    private let metrics: ServiceMetrics
    private let rejector: MessageRejector
    private let recent = RecentOutputs()
    /// The largest acknowledgement the hub takes (`limits.result_size`): a stage's outputs over it are a failure.
    private let maxAckBytes: Int64
    /// How long it waits for an answer before asking again (``reaskAfter``).
    private let reaskAfter: Duration

    /// Creates the processor.
    /// - Parameters:
    ///   - handler: What processing a result means here.
    ///   - results: The inbound side of the DEALER connected to the algorithm's `results`.
    ///   - asks: Its outbound side, where this processor asks for work.
    ///   - acks: The PUSH socket connected to the algorithm.
    ///   - instance: This processor's name.
    ///   - publisher: The status bus.
    ///   - logger: The logger.
    ///   - metrics: Hand-off latency (result durable → this processor starts on it), processing duration,
    ///     and results processed by outcome, per job.
    public init(
        handler: ResultHandler,
        results: SocketInbound,
        asks: SocketOutbound,
        acks: SocketOutbound,
        instance: String,
        publisher: StatusPublisher,
        logger: Logger,
        metrics: ServiceMetrics = .disabled,
        rejector: MessageRejector? = nil,
        maxAckBytes: Int64 = .max,
        reaskAfter: Duration = Self.reaskAfter
    ) {
        self.maxAckBytes = maxAckBytes
        self.reaskAfter = reaskAfter
        self.rejector = rejector ?? MessageRejector(socket: "results", publisher: publisher, logger: logger, metrics: metrics)
        self.handler = handler
        self.results = results
        self.asks = asks
        self.acks = acks
        self.instance = instance
        self.publisher = publisher
        self.logger = logger
        self.metrics = metrics
    }

    /// The most small store tasks asked for at once, when the store is the built-in one.
    public static let batchSize = 500

    /// How long an idle processor waits before it asks again with a new number. The hub answers each number once,
    /// and an answer can be lost with a connection that drops while it is on the way (its task comes back to some
    /// processor when its lease runs out): repeating the same number after the reconnect would then never be
    /// answered, and the processor would wait for good.
    public static let reaskAfter = Duration.seconds(30)

    /// Tasks of at most this many bytes in all are checked on the calling thread (about 0.1 ms of SHA-256).
    static let decodedInline = 64 * 1024

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            // Tasks are received as they arrive (the hub sends only what was asked for), so that a batch is taken
            // whole, without a wait per task.
            let arrivals = BatchInbox<[Data]>()
            await withDiscardingTaskGroup { group in
                group.addTask {
                    while let frames = try? await results.receive() { arrivals.put(frames) }
                    arrivals.close()
                }
                await work(arrivals)
                group.cancelAll()
            }
            // Stopping: what came and was not started goes back at once rather than after its lease.
            for frames in arrivals.drain() {
                guard let header = try? ResultMessage(frames: frames).header else { continue }
                handBack(header)
            }
        }
    }

    /// Tells the hub a task is not done here and should go to another processor now.
    private func handBack(_ header: ResultHeader) {
        let report = FailureReport(
            runID: header.runID,
            part: header.part,
            processor: instance,
            reason: "processor \(instance) stopping",
            handBack: true,
            stage: header.stageIndex
        )
        acks.post(Wire.encode(report))
    }

    private func work(_ arrivals: BatchInbox<[Data]>) async {
        var seq: UInt64 = 0
        // The name in an ask is for logs and status only, and the protocol takes at most 200 bytes of it: a
        // longer `--name` is cut (50 scalars are at most 200 bytes) rather than have every ask refused.
        let asker = instance.utf8.count <= 200 ? instance : String(String.UnicodeScalarView(instance.unicodeScalars.prefix(50)))
        let batch = handler.storesInBatches ? Self.batchSize : nil
        while !Task.isCancelled {
            seq += 1
            let ask = WorkRequest(processor: asker, seq: seq, batch: batch)
            guard let arrived = await nextTasks(ask: ask, from: arrivals, limit: batch ?? 1) else {
                return
            }
            // Nothing for a while: ask again, with a new number (see `reaskAfter`).
            guard !arrived.isEmpty else { continue }
            let decode: @Sendable () -> [ResultMessage] = {
                arrived.compactMap { frames in
                    do { return try ResultMessage(frames: frames) } catch {
                        rejector.reject(error, frames: frames)
                        return nil
                    }
                }
            }
            let messages: [ResultMessage]
            if arrived.reduce(0, { $0 + $1.reduce(0) { $0 + $1.count } }) <= Self.decodedInline {
                // A few KiB: checked here, as a hop to another thread and back costs more than the SHA-256.
                messages = decode()
            } else {
                do {
                    // Checking the payloads' SHA-256 reads every byte of what may be gigabytes: on NIO's blocking
                    // pool, not on one of the cooperative pool's few threads.
                    messages = try await NIOThreadPool.singleton.runIfActive(decode)
                } catch {
                    return
                }
            }
            // The small store tasks together in one transaction (when there are several), the others one by one.
            var together: [ResultMessage] = []
            var alone: [ResultMessage] = []
            for message in messages {
                if batch != nil, WorkRequest.isBatchable(message.header) { together.append(message) } else { alone.append(message) }
            }
            if together.count > 1 { await handleBatch(together) } else { alone = messages }
            for message in alone { await handle(message) }
        }
    }

    /// Asks for work and waits for it; nil once stopping. The ask is also set as the socket's greeting, so
    /// it is sent again whenever the connection is made again (an ask sent just before a connection dropped is
    /// lost with it); the algorithm answers each ask once however often it arrives.
    private func nextTasks(ask: WorkRequest, from arrivals: BatchInbox<[Data]>, limit: Int) async -> [[Data]]? {
        let frames = Wire.encode(ask)
        asks.greet(frames)
        _ = asks.post(frames)
        defer { asks.greet(nil) }
        return await arrivals.take(limit: limit, until: Date().addingTimeInterval(reaskAfter / .seconds(1)))
    }

    private func handle(_ message: ResultMessage) async {
        let header = message.header
        if header.stage?.producesOutput == true, header.attempt > 1, let outputs = recent.outputs(for: header) {
            // A second copy of a task this processor finished (re-sent after its lease ran out while it waited
            // here): the same ack again, not a second run of the stage. A first delivery (a task made again by
            // `baton replay --from-stage`) always runs.
            acknowledge(header, outputs: outputs)
            publisher.publish(
                EventType.resultDuplicate,
                job: header.job,
                run: header.runID,
                part: header.part,
                attributes: ["stage": header.stage?.name ?? "", "stage_index": "\(header.stageNumber)"]
            )
            return
        }
        var received = ["size": "\(header.size)", "attempt": "\(header.attempt)"]
        if let durable = header.durableAtUs, header.attempt == 1 {
            // Only first deliveries: a re-sent result's age is its retry history, not the hand-off.
            let now = Timestamp.microseconds()
            let latency = max(now - durable, 0)
            metrics.timer("baton_handoff_latency_seconds").recordNanoseconds(latency * 1000)
            received["handoff_us"] = "\(latency)"
            if let sent = header.sentAtUs { received["transit_us"] = "\(max(now - sent, 0))" }
        }
        var logger = logger
        logger[metadataKey: "job"] = "\(header.job)"
        logger[metadataKey: "run"] = "\(header.runID)"
        logger[metadataKey: "part"] = "\(header.part)"
        let stage = header.stageIndex
        if let spec = header.stage {
            received["stage"] = spec.name
            received["stage_index"] = "\(header.stageNumber)"
            logger[metadataKey: "stage"] = "\(spec.name)"
        }
        publisher.publish(EventType.resultReceived, job: header.job, run: header.runID, part: header.part, attributes: received)
        publisher.publish(EventType.taskStarted, job: header.job, run: header.runID, part: header.part, attributes: received)
        let processLogger = logger
        let renewal = Wire.encode(LeaseRenewal(runID: header.runID, part: header.part, processor: instance, stage: stage))
        acks.post(renewal)
        let clock = ContinuousClock()
        let start = clock.now
        let result: Result<ResultHandler.Handled, any Error> =
            await firstResult(
                of: {
                    // Keep the lease alive for as long as the work takes.
                    let every = Duration.milliseconds(max(header.leaseMs / 3, 5))
                    while (try? await Task.sleep(for: every)) != nil { acks.post(renewal) }
                    return nil
                },
                {
                    do { return .success(try await handler.handle(message, logger: processLogger)) } catch { return .failure(error) }
                }
            ) ?? .failure(CancellationError())
        switch result {
        case .success(.produced(let outputs)) where Int64(outputs.reduce(0) { $0 + $1.count }) > maxAckBytes:
            // The hub would drop an ack over its limit with the connection, and the task would be done again in vain.
            let reason = "the stage's output is \(outputs.reduce(0) { $0 + $1.count }) bytes, over limits.result_size (\(maxAckBytes))"
            logger.error("\(reason)")
            publisher.publish(EventType.resultFailed, job: header.job, run: header.runID, part: header.part, message: reason)
            let report = FailureReport(
                runID: header.runID,
                part: header.part,
                processor: instance,
                reason: reason,
                permanent: true,
                stage: stage
            )
            acks.post(Wire.encode(report))
        case .success(.produced(let outputs)):
            let elapsed = clock.now - start
            let stageName = header.stage?.name ?? "\(header.stageNumber)"
            metrics.timer("baton_task_duration_seconds", job: header.job, [("stage", stageName)]).record(duration: elapsed)
            metrics.counter("baton_tasks_processed_total", job: header.job, [("stage", stageName), ("outcome", "succeeded")]).increment()
            recent.remember(outputs, for: header)
            acknowledge(header, outputs: outputs)
        case .success(.stored(.conflict(let stored))):
            reportConflict(header, stored: stored)
        case .success(.stored(let outcome)):
            let elapsed = clock.now - start
            metrics.timer("baton_processing_duration_seconds", job: header.job).record(duration: elapsed)
            metrics.counter(
                "baton_results_processed_total",
                job: header.job,
                [("outcome", outcome == .duplicate ? "duplicate" : "stored")]
            ).increment()
            if outcome == .duplicate {
                publisher.publish(EventType.resultDuplicate, job: header.job, run: header.runID, part: header.part)
            } else if case .stored(let records) = outcome {
                publisher.publish(
                    EventType.resultStored,
                    job: header.job,
                    run: header.runID,
                    part: header.part,
                    attributes: ["records": "\(records)", "duration_ms": String(format: "%.3f", elapsed / .milliseconds(1))]
                )
            }
            acknowledge(header, duplicate: outcome == .duplicate)
        case .failure(let error):
            let stopping = Task.isCancelled || error is CancellationError
            let reason = stopping ? "processor \(instance) stopping" : "\(error)"
            if stopping {
                logger.notice("handing the result back: stopping")
            } else {
                metrics.counter("baton_results_processed_total", job: header.job, [("outcome", "failed")]).increment()
                logger.error("processing failed: \(error)")
                publisher.publish(EventType.resultFailed, job: header.job, run: header.runID, part: header.part, message: reason)
            }
            // A command that exists but cannot be executed fails every attempt alike: dead-letter it at once.
            // So does a part too large for the store.
            let permanent = !stopping && ((error as? CommandError)?.code == .notExecutable || error is ResultStore.TooLarge)
            let report = FailureReport(
                runID: header.runID,
                part: header.part,
                processor: instance,
                reason: reason,
                handBack: stopping,
                permanent: permanent,
                stage: stage
            )
            acks.post(Wire.encode(report))
        }
    }

    /// Stores small store tasks in one transaction and acknowledges each; one `batch.stored` event for all. Should
    /// the transaction fail, each is handled alone (so one bad task fails alone); stopping hands them all back.
    private func handleBatch(_ messages: [ResultMessage]) async {
        let now = Timestamp.microseconds()
        var handoff: Int64?
        for message in messages {
            guard let durable = message.header.durableAtUs, message.header.attempt == 1 else { continue }
            let latency = max(now - durable, 0)
            metrics.timer("baton_handoff_latency_seconds").recordNanoseconds(latency * 1000)
            handoff = handoff ?? latency
        }
        let renewals = messages.map { message in
            let header = message.header
            return Wire.encode(LeaseRenewal(runID: header.runID, part: header.part, processor: instance, stage: header.stageIndex))
        }
        let lease = messages.map(\.header.leaseMs).min() ?? 30_000
        let clock = ContinuousClock()
        let start = clock.now
        let result: Result<[ResultStore.Outcome], any Error> =
            await firstResult(
                of: {
                    // Keep the leases alive should the store be slow (a busy disk).
                    let every = Duration.milliseconds(max(lease / 3, 5))
                    while (try? await Task.sleep(for: every)) != nil { for renewal in renewals { acks.post(renewal) } }
                    return nil
                },
                {
                    do { return .success(try await handler.storeBatch(messages)) } catch { return .failure(error) }
                }
            ) ?? .failure(CancellationError())
        guard case .success(let outcomes) = result else {
            if Task.isCancelled {
                logger.notice("handing \(messages.count) results back: stopping")
                for message in messages { handBack(message.header) }
                return
            }
            for message in messages { await handle(message) }
            return
        }
        let elapsed = clock.now - start
        var (stored, duplicates, conflicts, records) = (0, 0, 0, 0)
        for (message, outcome) in zip(messages, outcomes) {
            let header = message.header
            switch outcome {
            case .conflict(let stored):
                conflicts += 1
                reportConflict(header, stored: stored)
            case .stored(let count):
                stored += 1
                records += count
                acknowledge(header, duplicate: false)
            case .duplicate:
                duplicates += 1
                acknowledge(header, duplicate: true)
            }
        }
        let job = messages[0].header.job
        // A batch may hold several jobs' tasks: each job's counters get its own.
        var counts: [String: (stored: Int64, duplicates: Int64)] = [:]
        for (message, outcome) in zip(messages, outcomes) {
            if case .stored = outcome { counts[message.header.job, default: (0, 0)].stored += 1 }
            if outcome == .duplicate { counts[message.header.job, default: (0, 0)].duplicates += 1 }
        }
        for (job, count) in counts {
            metrics.timer("baton_processing_duration_seconds", job: job).record(duration: elapsed)
            metrics.counter("baton_results_processed_total", job: job, [("outcome", "stored")]).increment(by: count.stored)
            metrics.counter("baton_results_processed_total", job: job, [("outcome", "duplicate")]).increment(by: count.duplicates)
        }
        var attributes = [
            "tasks": "\(messages.count)", "stored": "\(stored)", "duplicates": "\(duplicates)", "conflicts": "\(conflicts)",
            "records": "\(records)", "runs": "\(Set(messages.map(\.header.runID)).count)",
            "duration_ms": String(format: "%.3f", elapsed / .milliseconds(1)),
        ]
        if let handoff { attributes["handoff_us"] = "\(handoff)" }
        publisher.publish(
            EventType.batchStored,
            job: job,
            run: messages[0].header.runID,
            part: messages[0].header.part,
            attributes: attributes
        )
    }

    /// Never a duplicate: the stored part stays, this one was kept aside by the store and is refused.
    private func reportConflict(_ header: ResultHeader, stored: String) {
        metrics.counter("baton_results_processed_total", job: header.job, [("outcome", "conflict")]).increment()
        let reason =
            "conflict: \(header.runID) part \(header.part) is stored with sha256 \(stored); this result has sha256 \(header.sha256)"
        logger.error("refused a conflicting result: \(reason)")
        publisher.publish(
            EventType.resultConflict,
            job: header.job,
            run: header.runID,
            part: header.part,
            level: "error",
            message: reason,
            attributes: ["stored_sha256": stored, "received_sha256": header.sha256, "processor": instance]
        )
        let report = FailureReport(
            runID: header.runID,
            part: header.part,
            processor: instance,
            reason: reason,
            conflict: true,
            stage: header.stageIndex
        )
        acks.post(Wire.encode(report))
    }

    /// Sends the ack of a task of the store.
    private func acknowledge(_ header: ResultHeader, duplicate: Bool) {
        let ack = Acknowledgement(
            runID: header.runID,
            part: header.part,
            processor: instance,
            duplicate: duplicate,
            stage: header.stageIndex
        )
        acks.post(Wire.encode(ack))
    }

    /// Sends a stage task's ack with its outputs.
    private func acknowledge(_ header: ResultHeader, outputs: [Data]) {
        let digests = outputs.map { PartDigest(size: $0.count, sha256: SHA256.hex(of: $0)) }
        let ack = Acknowledgement(
            runID: header.runID,
            part: header.part,
            processor: instance,
            duplicate: false,
            stage: header.stageIndex,
            outputs: digests
        )
        acks.post(Wire.encode(ack, payloads: outputs))
    }
}
