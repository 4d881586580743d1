import Foundation
import Synchronization
public import Logging
import Messaging
public import MetricsHTTP
public import ServiceKit
public import ServiceLifecycle

public import ZMQ

/// Receives what processors say about results on the `acks` PULL socket: acknowledgements (stored),
/// lease renewals (still working) and failure reports, and updates the outbox.
public struct AckReceiver: Service {
    private let outbox: Outbox
    private let acks: SocketInbound
    private let doorbell: Doorbell
    private let lease: Duration
    private let publisher: StatusPublisher
    private let logger: Logger
    private let rejector: MessageRejector
    private let dataDirectory: String
    private let blocking = BlockingWork.shared
    private let tally: TaskTally

    /// Creates the receiver.
    /// - Parameters:
    ///   - outbox: The outbox to update.
    ///   - acks: The bound PULL socket.
    ///   - doorbell: Rung when a result becomes due again.
    ///   - lease: How far a renewal extends a lease.
    ///   - publisher: The status bus.
    ///   - logger: The logger.
    ///   - rejector: How malformed messages are turned away; by default an `acks` rejector on `publisher`.
    ///   - dataDirectory: Where stages' outputs are kept (under `raw/<job>/`), as the raw results are.
    ///   - metrics: Where tasks settled and failed are counted (`baton_tasks_total`).
    public init(
        dataDirectory: String,
        outbox: Outbox,
        acks: SocketInbound,
        doorbell: Doorbell,
        lease: Duration,
        publisher: StatusPublisher,
        logger: Logger,
        rejector: MessageRejector? = nil,
        metrics: ServiceMetrics = .disabled
    ) {
        self.tally = TaskTally(metrics: metrics, outbox: outbox)
        self.rejector = rejector ?? MessageRejector(socket: "acks", publisher: publisher, logger: logger)
        self.dataDirectory = dataDirectory
        self.outbox = outbox
        self.acks = acks
        self.doorbell = doorbell
        self.lease = lease
        self.publisher = publisher
        self.logger = logger
    }

    public func run() async throws {
        // Messages are taken off the socket as they come and applied in batches: whatever arrived while one
        // batch committed goes into the next transaction together (group commit), so under load the outbox
        // does one commit for many acknowledgements and renewals.
        let inbox = BatchInbox<Message>()
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask {
                    while !Task.isCancelled {
                        guard let frames = try? await acks.receive() else { break }
                        do {
                            inbox.put(try await decode(frames))
                        } catch is CancellationError {
                            break
                        } catch {
                            rejector.reject(error, frames: frames)
                        }
                    }
                    inbox.close()
                }
                group.addTask {
                    while let batch = await inbox.take() { await apply(batch) }
                }
            }
        }
    }

    /// Says what was settled: `result.acknowledged` and `task.succeeded` per task, or, for a run of several tasks
    /// of one run's stage from one processor in the same batch (small tasks stored together), one
    /// `batch.acknowledged`: a status event per small task would cost more than the task.
    private func announce(_ acked: [(ack: Acknowledgement, outputs: Int, progress: [Outbox.StageProgress])]) async {
        var index = acked.startIndex
        while index < acked.endIndex {
            let first = acked[index].ack
            var end = index + 1
            while end < acked.endIndex, acked[end].ack.runID == first.runID, acked[end].ack.stage == first.stage,
                acked[end].ack.processor == first.processor, acked[end].outputs == 0, acked[index].outputs == 0
            {
                end += 1
            }
            let job = RunID.job(of: first.runID)
            let group = acked[index..<end]
            if group.count > 1 {
                publisher.publish(
                    EventType.batchAcknowledged,
                    job: job,
                    run: first.runID,
                    part: first.part,
                    attributes: [
                        "tasks": "\(group.count)", "processor": first.processor, "stage_index": "\(first.stage ?? 0)",
                        "duplicates": "\(group.filter(\.ack.duplicate).count)", "last_part": "\(group.last?.ack.part ?? first.part)",
                    ]
                )
            }
            for (ack, outputs, progress) in group {
                if group.count == 1 {
                    publisher.publish(
                        EventType.resultAcknowledged,
                        job: job,
                        run: ack.runID,
                        part: ack.part,
                        attributes: ["processor": ack.processor, "duplicate": "\(ack.duplicate)", "stage_index": "\(ack.stage ?? 0)"]
                    )
                    publisher.publish(
                        EventType.taskSucceeded,
                        job: job,
                        run: ack.runID,
                        part: ack.part,
                        attributes: ["processor": ack.processor, "stage_index": "\(ack.stage ?? 0)", "outputs": "\(outputs)"]
                    )
                }
                publisher.publish(progress: progress)
                tally.learn(progress)
                await tally.count(.succeeded, job: job, runID: ack.runID, stage: ack.stage ?? 0)
            }
            index = end
        }
    }

    private func decode(_ frames: [Data]) async throws -> Message {
        switch try Wire.kind(of: frames) {
        case Acknowledgement.kind where frames.count > 3:
            // Checking a stage's outputs against their SHA-256 reads every byte: on the blocking pool.
            let (ack, outputs) = try await blocking.run { try Acknowledgement.decode(frames: frames) }
            return .ack(ack, outputs: outputs)
        case Acknowledgement.kind:
            // No payload frame, so none to hash; it still must not claim outputs it does not carry.
            return .ack(try Acknowledgement.decode(frames: frames).ack, outputs: [])
        case LeaseRenewal.kind: return .renewal(try Wire.decode(LeaseRenewal.self, from: frames).message)
        case FailureReport.kind: return .failure(try Wire.decode(FailureReport.self, from: frames).message)
        case let kind: throw ProtocolError(.kind, "expected ack, lease or nack on the acks socket, got \"\(kind)\"")
        }
    }

    /// Applies a batch in order: runs of acknowledgements and renewals in one transaction each, failure
    /// reports one by one.
    private func apply(_ batch: [Message]) async {
        var pending: [(settlement: Outbox.Settlement, ack: Acknowledgement?, files: [String])] = []
        func flush() async {
            guard !pending.isEmpty else { return }
            do {
                let settled = try await outbox.settle(pending.map(\.settlement))
                var acked: [(ack: Acknowledgement, outputs: Int, progress: [Outbox.StageProgress])] = []
                for (entry, settled) in zip(pending, settled) {
                    guard settled.changed else {
                        // Already settled by another processor's ack: its outputs were committed, these are not.
                        for file in entry.files { try? FileManager.default.removeItem(atPath: file) }
                        continue
                    }
                    guard let ack = entry.ack else { continue }
                    acked.append((ack, entry.files.count, settled.progress))
                }
                await announce(acked)
                if settled.contains(where: { !$0.progress.isEmpty }) { doorbell.ring() }
            } catch {
                // Not recorded (stopping, or the outbox failed): the leases run out and the tasks are sent again,
                // which is safe; the outputs written for them are not referenced.
                if !(error is CancellationError) {
                    logger.error("cannot update the outbox", metadata: ["error": "\(error)", "messages": "\(pending.count)"])
                }
                for file in pending.flatMap(\.files) { try? FileManager.default.removeItem(atPath: file) }
            }
            pending.removeAll()
        }
        let deadline = Date().addingTimeInterval(lease / .seconds(1))
        for message in batch {
            switch message {
            case .ack(let ack, let outputs):
                let stored: [Outbox.StoredPart]
                do {
                    stored = try await keep(outputs, of: ack)
                } catch {
                    // Not settled: the lease runs out and the task is done again, which is safe.
                    logger.error(
                        "cannot keep a stage's output; the task will be sent again",
                        metadata: ["run": "\(ack.runID)", "stage": "\(ack.stage ?? 0)", "part": "\(ack.part)", "error": "\(error)"]
                    )
                    continue
                }
                pending.append(
                    (
                        .ack(runID: ack.runID, stage: ack.stage ?? 0, part: ack.part, processor: ack.processor, outputs: stored), ack,
                        stored.map(\.path)
                    )
                )
            case .renewal(let renewal):
                pending.append(
                    (
                        .renew(
                            runID: renewal.runID,
                            stage: renewal.stage ?? 0,
                            part: renewal.part,
                            processor: renewal.processor,
                            until: deadline
                        ),
                        nil, []
                    )
                )
            case .failure(let report):
                await flush()
                do {
                    try await handle(report)
                } catch {
                    logger.error("cannot update the outbox", metadata: ["error": "\(error)"])
                }
            }
        }
        await flush()
    }

    /// Writes a task's outputs as durable files (each fsynced, then the directory) before the transaction
    /// that commits them as the next stage's input.
    private func keep(_ outputs: [Data], of ack: Acknowledgement) async throws -> [Outbox.StoredPart] {
        guard !outputs.isEmpty, let digests = ack.outputs else { return [] }
        let directory = RawResults.stageDirectory(dataDirectory: dataDirectory, job: RunID.job(of: ack.runID), runID: ack.runID)
        let token = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let paths = outputs.indices.map { index in
            (directory as NSString).appendingPathComponent("s\(ack.stage ?? 0)-p\(ack.part)-o\(index)-\(token).out")
        }
        try await blocking.run { try RawResults.write(outputs, to: paths, in: directory) }
        return zip(paths, digests).map { Outbox.StoredPart(path: $0, digest: $1) }
    }

    private func handle(_ report: FailureReport) async throws {
        let stage = report.stage ?? 0
        if report.conflict == true {
            // Permanent: the processors' store holds this key with another sha256, so every retry would be
            // refused the same way. Dead-lettered at once, with cause `conflict`, never acknowledged.
            if try await outbox.markDead(
                runID: report.runID,
                stage: stage,
                part: report.part,
                reason: report.reason,
                cause: Outbox.conflictCause
            ) {
                await announceDead(report, stage: stage, cause: Outbox.conflictCause)
            }
            doorbell.ring()
            return
        }
        let outcome = try await outbox.recordFailure(
            runID: report.runID,
            stage: stage,
            part: report.part,
            reason: report.reason,
            countsAsFailure: !report.handBack,
            permanent: report.permanent && !report.handBack
        )
        switch outcome {
        case .retry(let delay):
            if !report.handBack {
                publisher.publish(
                    EventType.taskFailed,
                    job: RunID.job(of: report.runID),
                    run: report.runID,
                    part: report.part,
                    message: report.reason,
                    attributes: ["processor": report.processor, "stage_index": "\(stage)", "dead": "false"]
                )
                await tally.count(.retry, job: RunID.job(of: report.runID), runID: report.runID, stage: stage)
            }
            publisher.publish(
                EventType.resultRetry,
                job: RunID.job(of: report.runID),
                run: report.runID,
                part: report.part,
                message: report.reason,
                attributes: [
                    "processor": report.processor, "retry_in_ms": "\(Int(delay / .milliseconds(1)))", "hand_back": "\(report.handBack)",
                ]
            )
        case .dead:
            await announceDead(report, stage: stage, cause: nil)
        case .ignored:
            break
        }
        doorbell.ring()
    }

    /// A task dead-lettered on a processor's report: logged, `task.failed` (dead), `result.dead`, counted.
    private func announceDead(_ report: FailureReport, stage: Int, cause: String?) async {
        let job = RunID.job(of: report.runID)
        logger.error("result dead-lettered: \(report.reason)", metadata: ["run": "\(report.runID)", "part": "\(report.part)"])
        publisher.publish(
            EventType.taskFailed,
            job: job,
            run: report.runID,
            part: report.part,
            message: report.reason,
            attributes: ["processor": report.processor, "stage_index": "\(stage)", "dead": "true"]
        )
        var attributes = ["processor": report.processor]
        if let cause { attributes["cause"] = cause }
        publisher.publish(
            EventType.resultDead,
            job: job,
            run: report.runID,
            part: report.part,
            message: report.reason,
            attributes: attributes
        )
        await tally.count(.dead, job: job, runID: report.runID, stage: stage)
    }

    enum Message: Sendable {
        case ack(Acknowledgement, outputs: [Data])
        case renewal(LeaseRenewal)
        case failure(FailureReport)
    }
}
