import Foundation
public import Logging
import Messaging
public import MetricsHTTP
import Persistence
public import ServiceKit
public import ServiceLifecycle

public import ZMQ

/// Drains the outbox into the `results` ROUTER, oldest first, handing each task to a processor that asked for
/// work (``WorkRequests``), and sends again what was not acknowledged in time.
///
/// A task goes only to a processor that has asked and still has credit, so no processor holds tasks it has not
/// started on: one that dies takes none with it, and one that connects late gets its share. A sent task carries
/// a lease: the processor must report that it started within the lease and renew it while it works; otherwise
/// the task becomes due again and goes to another processor. Between tasks the sender sleeps on the
/// ``Doorbell`` (rung by the hand-off, acknowledgements and asks) or until the next deadline; it never polls.
public struct ResultSender: Service {
    private let outbox: Outbox
    private let results: SocketOutbound
    private let requests: WorkRequests
    private let doorbell: Doorbell
    private let lease: Duration
    private let publisher: StatusPublisher
    private let logger: Logger
    private let blocking = BlockingWork.shared
    private let tally: TaskTally
    /// The largest message a processor takes (`limits.result_size`): a task over it is dead-lettered, not sent.
    private let maxMessageBytes: Int64

    /// Creates the sender.
    /// - Parameters:
    ///   - outbox: The durable queue to drain.
    ///   - results: The outbound side of the bound `results` ROUTER processors connect to.
    ///   - requests: The processors' asks for work, filled by a ``WorkRequestReceiver`` on the same socket.
    ///   - doorbell: Rung when the outbox changes.
    ///   - lease: How long a processor has to start on a result, and between renewals.
    ///   - publisher: The status bus.
    ///   - logger: The logger.
    ///   - metrics: Where dead-lettered tasks are counted (`baton_tasks_total`).
    public init(
        outbox: Outbox,
        results: SocketOutbound,
        requests: WorkRequests,
        doorbell: Doorbell,
        lease: Duration,
        publisher: StatusPublisher,
        logger: Logger,
        metrics: ServiceMetrics = .disabled,
        maxMessageBytes: Int64 = .max
    ) {
        self.maxMessageBytes = maxMessageBytes
        self.tally = TaskTally(metrics: metrics, outbox: outbox)
        self.outbox = outbox
        self.results = results
        self.requests = requests
        self.doorbell = doorbell
        self.lease = lease
        self.publisher = publisher
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            // The last query found nothing due: what was committed since is then all that is due, oldest first,
            // and goes out first without a query (the fast path); the query follows, off the latency path.
            var drained = false
            // The tasks the last query found due when no processor had asked: they go to the next asks without
            // another query (a durable transaction per batch, when processors are the bottleneck). The query after
            // each batch still finds expired leases and dead letters.
            var held: [Outbox.Entry] = []
            while !Task.isCancelled {
                do {
                    if drained, let fresh = outbox.takeFresh() { try await sendFresh(fresh) }
                    // Marking tasks sent and finding the next ones share a transaction: one commit per batch.
                    var (due, dead): ([Outbox.Entry], [Outbox.Entry]) = (held, [])
                    if held.isEmpty { (due, dead) = try await outbox.nextDue(limit: batchLimit) }
                    held = []
                    var waitingForAsk = false
                    while !Task.isCancelled {
                        for part in dead { announceDead(part) }
                        for part in outbox.takeLeaseRetries() { announceLeaseRetry(part) }
                        guard !due.isEmpty else { break }
                        let (sent, rest) = try await handOut(due.map { ($0, nil) }, claimingFresh: true)
                        waitingForAsk = !rest.isEmpty
                        if waitingForAsk {
                            held = rest
                            if !sent.isEmpty { try await outbox.markSent(sent.map(\.part)) }
                            break
                        }
                        (due, dead) = try await outbox.markSentAndNextDue(sent.map(\.part), limit: batchLimit)
                    }
                    drained = held.isEmpty
                    // Tasks due with nobody asking wait for an ask (the doorbell); only a lease running out
                    // (a processor that died on its task) needs the clock meanwhile.
                    let deadline = try await outbox.nextDeadline(after: waitingForAsk ? Date() : nil)
                    guard await doorbell.wait(until: deadline) else { return }
                    // A deadline that passed (a lease ran out) needs the query: it counts the failure, and may
                    // dead-letter the task, at once.
                    if let deadline, Date() >= deadline { held = [] }
                } catch is CancellationError {
                    return
                } catch let error as ZMQError where error.isClosed || error.isTerminated {
                    return
                } catch {
                    logger.error("cannot read the outbox; trying again in 1s", metadata: ["error": "\(error)"])
                    guard await doorbell.wait(until: Date().addingTimeInterval(1)) else { return }
                }
            }
        }
    }

    /// How many due tasks one query fetches: what the processors asked for, so that a batch ask is answered by one
    /// query and one commit (bounded, as the tasks are held in memory until sent).
    private var batchLimit: Int { min(max(requests.credit, 1), 500) }

    /// A task handed to a processor.
    private struct Sent {
        var entry: Outbox.Entry
        var taker: WorkRequests.Taker
        var leaseDeadline: Date
        /// As the outbox marks it sent.
        var part: (runID: String, stage: Int, part: Int, leaseDeadline: Date) {
            (entry.header.runID, entry.header.stageNumber, entry.header.part, leaseDeadline)
        }
    }

    /// The processor went away after it asked (or stopped reading what it asked for): the task goes to the next
    /// one that asks.
    static func gone(_ error: ZMQError) -> Bool {
        error.code == ZMQError.hostUnreachable || error.code == ZMQError.wouldBlock
    }

    /// The fast path: sends tasks just committed to the processors that asked, from memory when their bytes are
    /// still there, then records them sent in one transaction. What finds no ask is left for the query.
    private func sendFresh(_ fresh: [Outbox.FreshTask]) async throws {
        let (sent, _) = try await handOut(fresh.map { ($0.entry, $0.payload) }, claimingFresh: false)
        guard !sent.isEmpty else { return }
        try await outbox.markSent(sent.map(\.part))
    }

    /// Hands tasks, in order, to processors that asked, until one finds nobody to take it; says what went out and
    /// ends the batch asks it answered. A processor found gone is dropped and its tasks go to the next; a task
    /// that cannot be sent is dead-lettered (in ``messages(for:)``) and its credit given back.
    ///
    /// The tasks taken go out in groups of a few MiB: their files read in one job on the blocking pool and their
    /// messages handed to the socket's thread at once (``AsyncSocket/send(all:)``). One read and one send per task,
    /// each a hop to another thread and back, held a batch of 500 small tasks for half a second.
    /// - Parameters:
    ///   - tasks: Each with its bytes when they are still in memory.
    ///   - claimingFresh: Take each off the fast path's list as it goes (tasks the query found), so that none is
    ///     sent twice.
    /// - Returns: The tasks sent, and those left for lack of a processor.
    private func handOut(
        _ tasks: [(entry: Outbox.Entry, payload: Data?)],
        claimingFresh: Bool
    ) async throws -> (sent: [Sent], left: [Outbox.Entry]) {
        typealias Pending = (entry: Outbox.Entry, payload: Data?)
        var sent: [Sent] = []
        var rest = tasks[...]
        while true {
            // Who takes what, in order, within the group's budget (at least one task, however large).
            var group: [(task: Pending, taker: WorkRequests.Taker)] = []
            var bytes = 0
            while let task = rest.first, group.isEmpty || bytes + task.entry.header.size <= Self.groupBytes,
                let taker = requests.take(batchable: WorkRequest.isBatchable(task.entry.header))
            {
                if claimingFresh { outbox.claimFresh(task.entry.header) }
                group.append((task, taker))
                bytes += task.entry.header.size
                rest.removeFirst()
            }
            guard !group.isEmpty else { break }
            let messages = try await messages(for: group.map(\.task))
            var outgoing: [(index: Int, frames: [Data])] = []
            for (index, message) in messages.enumerated() {
                guard var message else {
                    requests.giveBack(group[index].taker)
                    continue
                }
                message.header.sentAtUs = Timestamp.microseconds()
                outgoing.append((index, [group[index].taker.id] + message.frames))
            }
            let outcomes = await results.send(all: outgoing.map(\.frames))
            let leaseDeadline = Date().addingTimeInterval(lease / .seconds(1))
            var failure: (any Error)?
            var unsent: [Pending] = []
            for (item, outcome) in zip(outgoing, outcomes) {
                let (task, taker) = group[item.index]
                switch outcome {
                case nil:
                    sent.append(Sent(entry: task.entry, taker: taker, leaseDeadline: leaseDeadline))
                case let error as ZMQError where Self.gone(error):
                    requests.drop(taker.id)
                    unsent.append(task)
                case let error?:
                    failure = failure ?? error
                }
            }
            if let failure { throw failure }
            // What went to a processor found gone goes to the next one, before the rest.
            rest = (unsent + rest)[...]
        }
        announce(sent)
        requests.endBatches(sent.map(\.taker))
        return (sent, rest.map(\.entry))
    }

    /// At most this many bytes of tasks are read and sent as one group (a larger task goes alone).
    static let groupBytes = 4 << 20

    /// Says what went out: a `result.sent` (or `result.redelivered`) per task, or one `batch.sent` per processor
    /// that took several at once (a status event per small task would cost more than the task).
    private func announce(_ sent: [Sent]) {
        var byTaker: [Data: [Sent]] = [:]
        var order: [Data] = []
        for task in sent {
            if byTaker[task.taker.id] == nil { order.append(task.taker.id) }
            byTaker[task.taker.id, default: []].append(task)
        }
        for id in order {
            guard let tasks = byTaker[id], let first = tasks.first else { continue }
            guard tasks.count > 1 else {
                announceSent(first.entry, to: first.taker)
                continue
            }
            let header = first.entry.header
            publisher.publish(
                EventType.batchSent,
                job: header.job,
                run: header.runID,
                part: header.part,
                attributes: [
                    "tasks": "\(tasks.count)", "runs": "\(Set(tasks.map(\.entry.header.runID)).count)",
                    "size": "\(tasks.reduce(0) { $0 + $1.entry.header.size })",
                    "redelivered": "\(tasks.filter { $0.entry.header.attempt > 1 }.count)", "processor": first.taker.processor,
                ]
            )
        }
    }

    /// A task whose processor died on it (its lease ran out after it started) will be sent again.
    private func announceLeaseRetry(_ entry: Outbox.Entry) {
        let header = entry.header
        publisher.publish(
            EventType.taskFailed,
            job: header.job,
            run: header.runID,
            part: header.part,
            message: entry.lastError,
            attributes: ["stage_index": "\(header.stageNumber)", "dead": "false"]
        )
        tally.count(.retry, job: header.job, stage: header.stage?.name ?? StageSpec.store.name)
    }

    private func announceDead(_ entry: Outbox.Entry) {
        let header = entry.header
        logger.error(
            "result dead-lettered after \(entry.failures) failed attempts",
            metadata: ["run": "\(header.runID)", "part": "\(header.part)", "reason": "\(entry.lastError ?? "")"]
        )
        publisher.publish(
            EventType.resultDead,
            job: header.job,
            run: header.runID,
            part: header.part,
            message: entry.lastError,
            attributes: ["failures": "\(entry.failures)"]
        )
        publisher.publish(
            EventType.taskFailed,
            job: header.job,
            run: header.runID,
            part: header.part,
            message: entry.lastError,
            attributes: ["stage_index": "\(header.stageNumber)", "dead": "true"]
        )
        tally.count(.dead, job: header.job, stage: header.stage?.name ?? StageSpec.store.name)
    }

    /// The messages for `tasks`, in order; nil for a task whose bytes cannot be sent, which is dead-lettered here.
    /// The parts not in memory are read from their files (and checked against their SHA-256) in one job on the
    /// blocking pool.
    private func messages(for tasks: [(entry: Outbox.Entry, payload: Data?)]) async throws -> [ResultMessage?] {
        var headers: [ResultHeader] = []
        var messages: [ResultMessage?] = Array(repeating: nil, count: tasks.count)
        var unusable: [Int: any Error] = [:]
        var reads: [(index: Int, path: String, size: Int, sha256: String)] = []
        for (index, (entry, inMemory)) in tasks.enumerated() {
            var header = entry.header
            header.leaseMs = Int(lease / .milliseconds(1))
            headers.append(header)
            if Int64(header.size) > maxMessageBytes {
                // A processor drops a message over its limit with the connection, so it would be sent again forever.
                unusable[index] = StorageError(
                    "\(header.size) bytes are over limits.result_size (\(maxMessageBytes)), which processors take at most"
                )
            } else if header.stage?.mode == .merge {
                do {
                    messages[index] = try await mergeMessage(header)
                } catch is CancellationError {
                    throw CancellationError()
                } catch {
                    unusable[index] = error
                }
            } else if let inMemory, inMemory.count == header.size {
                // The bytes that were hashed when the part was sealed: no read back, and the processor checks them.
                messages[index] = ResultMessage(header: header, payload: inMemory)
            } else {
                reads.append((index, entry.path, header.size, header.sha256))
            }
        }
        if !reads.isEmpty {
            // Stopping before the read ran throws CancellationError: the tasks stay due, nothing is wrong with them.
            let toRead = reads
            let payloads = try await blocking.run {
                toRead.map { read in Result { try ResultPayload.read(path: read.path, size: read.size, sha256: read.sha256) } }
            }
            for (read, payload) in zip(reads, payloads) {
                switch payload {
                case .success(let bytes): messages[read.index] = ResultMessage(header: headers[read.index], payload: bytes)
                case .failure(let error): unusable[read.index] = error
                }
            }
        }
        // A missing or corrupt raw file cannot be delivered: dead-lettered at once, visibly.
        for (index, error) in unusable.sorted(by: { $0.key < $1.key }) {
            let (entry, header) = (tasks[index].entry, headers[index])
            let reason = "\(entry.path.isEmpty ? "an input of the merge" : "raw result \(entry.path)") unusable: \(error)"
            try await outbox.markDead(runID: header.runID, stage: header.stageNumber, part: header.part, reason: reason)
            var dead = entry
            dead.lastError = reason
            announceDead(dead)
        }
        return messages
    }

    /// A merge's message: every output of the stage before it, in part order, one frame each.
    private func mergeMessage(_ header: ResultHeader) async throws -> ResultMessage {
        var header = header
        let inputs = try await outbox.mergeInputs(runID: header.runID, stage: header.stageNumber)
        header.inputs = inputs.map(\.digest)
        guard PartDigest.combined(inputs.map(\.digest)) == header.sha256 else { throw StorageError(ResultPayload.mismatch) }
        let payloads = try await blocking.run {
            try inputs.map { try ResultPayload.read(path: $0.path, size: $0.digest.size, sha256: $0.digest.sha256) }
        }
        return ResultMessage(header: header, inputs: payloads)
    }

    private func announceSent(_ entry: Outbox.Entry, to taker: WorkRequests.Taker) {
        let header = entry.header
        publisher.publish(
            header.attempt > 1 ? EventType.resultRedelivered : EventType.resultSent,
            job: header.job,
            run: header.runID,
            part: header.part,
            attributes: [
                "size": "\(header.size)", "attempt": "\(header.attempt)", "stage_index": "\(header.stageNumber)",
                "processor": taker.processor,
            ]
        )
    }
}
