import AlgorithmService
import Foundation
import Persistence
import Logging
import Messaging
import MetricsHTTP
import Config
import ServiceKit
import ServiceLifecycle
import TestSupport
import Testing
import ZMQ

/// The sender and the ack receiver, each driven through real ZeroMQ sockets in the process (`inproc://`),
/// with the processor's side played by the test.
struct ResultSenderTests {
    /// A valid run id of job `j`.
    static func run(_ minute: Int) -> String { RunID.make(job: "j", logicalTime: Date(timeIntervalSince1970: Double(60 * minute))) }

    /// Writes a raw result (`onDisk`, if given, in place of the bytes recorded) and queues it in the outbox;
    /// returns its header.
    static func queue(
        _ payload: Data,
        runID: String = run(1),
        onDisk: Data? = nil,
        in scratch: Scratch,
        outbox: Outbox
    ) async throws -> ResultHeader {
        let path = scratch.directory + "/\(runID).result"
        try (onDisk ?? payload).write(to: URL(fileURLWithPath: path))
        let header = ResultHeader(
            runID: runID,
            job: "j",
            logicalTime: Date(timeIntervalSince1970: 60),
            size: payload.count,
            sha256: SHA256.hex(of: payload)
        )
        try await outbox.add(.init(header: header, path: path))
        return header
    }

    /// Runs a sender on a bound ROUTER, with its ask receiver and a processor's DEALER connected to it, until
    /// `body` returns. The processor gets a task only after it asks (``ask(_:seq:credit:)``).
    static func withSender(
        maxMessageBytes: Int64 = .max,
        _ body: (_ outbox: Outbox, _ processor: AsyncSocket, _ bus: Bus, _ doorbell: Doorbell, _ scratch: Scratch) async throws -> Void
    ) async throws {
        try await withSender(maxMessageBytes: maxMessageBytes, processors: 1) { outbox, processors, bus, doorbell, scratch in
            try await body(outbox, processors[0], bus, doorbell, scratch)
        }
    }

    /// The same with `processors` DEALERs, each with its own routing id (`p0`, `p1`, …).
    static func withSender(
        maxMessageBytes: Int64 = .max,
        processors count: Int,
        lease: Duration = .seconds(30),
        requests: WorkRequests = WorkRequests(),
        _ body: (_ outbox: Outbox, _ processors: [AsyncSocket], _ bus: Bus, _ doorbell: Doorbell, _ scratch: Scratch) async throws -> Void
    ) async throws {
        let scratch = Scratch("sender")
        defer { scratch.remove() }
        let context = Context()
        let bus = try await Bus(context: context)
        let outbox = try await Outbox(path: scratch.directory + "/outbox.sqlite")
        let endpoint = "inproc://results-\(UUID().uuidString)"
        let results = try await AsyncSocket(
            context: context,
            configuration: .init(type: .router, options: [.routerMandatory(true), .routerHandover(true)], bind: [endpoint])
        )
        var processors: [AsyncSocket] = []
        for index in 0..<count {
            processors.append(
                try await AsyncSocket(
                    context: context,
                    configuration: .init(type: .dealer, options: [.routingID(Array("p\(index)".utf8))], connect: [endpoint])
                )
            )
        }
        let doorbell = Doorbell()
        let logger = Logger(label: "test")
        let parts: [any Service] = [
            WorkRequestReceiver(
                requests: requests,
                results: results.channel.inbound,
                doorbell: doorbell,
                rejector: MessageRejector(socket: "results", publisher: bus.publisher, logger: logger)
            ),
            ResultSender(
                outbox: outbox,
                results: results.channel.outbound,
                requests: requests,
                doorbell: doorbell,
                lease: lease,
                publisher: bus.publisher,
                logger: logger,
                maxMessageBytes: maxMessageBytes
            ),
        ]
        let running = Task {
            await withDiscardingTaskGroup { group in
                for part in parts { group.addTask { try? await part.run() } }
            }
        }
        do {
            try await body(outbox, processors, bus, doorbell, scratch)
        } catch {
            running.cancel()
            throw error
        }
        running.cancel()
        _ = await running.value
        for processor in processors { await processor.close() }
        await results.close()
        await bus.close()
    }

    /// A processor's ask for work.
    static func ask(_ processor: AsyncSocket, seq: UInt64, credit: Int = 1, name: String = "test") async throws {
        try await processor.send(Wire.encode(WorkRequest(processor: name, seq: seq, credit: credit)))
    }

    /// A queued result goes out as one result message: its header with the lease, its bytes, checked.
    @Test(.timeLimit(.minutes(5)))
    func aQueuedResultIsSentWithItsLease() async throws {
        try await Self.withSender { outbox, processor, bus, doorbell, scratch in
            let payload = Data((0..<300_000).map { UInt8($0 % 251) })
            let header = try await Self.queue(payload, in: scratch, outbox: outbox)
            doorbell.ring()
            try await Self.ask(processor, seq: 1)
            let message = try ResultMessage(frames: try await receive(processor))
            #expect(message.payload == payload)
            #expect(message.header.runID == header.runID && message.header.sha256 == header.sha256)
            #expect(message.header.leaseMs == 30_000)
            #expect(message.header.sentAtUs != nil)
            let sent = try await bus.next(EventType.resultSent)
            #expect(sent.run == header.runID && sent.attributes?["size"] == "\(payload.count)")
            #expect(try await outbox.entry(runID: header.runID, part: 0)?.state == .sent)
        }
    }

    /// A raw file that no longer matches its record is dead-lettered at once, visibly, and not sent.
    /// A task over the processors' message limit would be dropped with their connection and sent again forever:
    /// it is dead-lettered, saying so, and the next one goes out.
    @Test(.timeLimit(.minutes(5)))
    func aTaskOverTheMessageLimitIsDeadLetteredNotSent() async throws {
        try await Self.withSender(maxMessageBytes: 8) { outbox, processor, bus, doorbell, scratch in
            let big = try await Self.queue(Data("nine byte".utf8), runID: Self.run(1), in: scratch, outbox: outbox)
            let small = try await Self.queue(Data("eight bt".utf8), runID: Self.run(2), in: scratch, outbox: outbox)
            doorbell.ring()
            // One ask: the credit taken for the dead-lettered task goes to the next one.
            try await Self.ask(processor, seq: 1)
            let dead = try await bus.next(EventType.resultDead)
            #expect(dead.run == big.runID)
            #expect(dead.message?.contains("over limits.result_size") == true, "\(dead.message ?? "")")
            #expect(try ResultMessage(frames: try await receive(processor)).header.runID == small.runID)
        }
    }

    @Test(.timeLimit(.minutes(5)))
    func aCorruptRawResultIsDeadLetteredNotSent() async throws {
        try await Self.withSender { outbox, processor, bus, doorbell, scratch in
            let header = try await Self.queue(Data("good".utf8), runID: Self.run(1), onDisk: Data("evil".utf8), in: scratch, outbox: outbox)
            let good = try await Self.queue(Data("fine".utf8), runID: Self.run(2), in: scratch, outbox: outbox)
            doorbell.ring()
            try await Self.ask(processor, seq: 1)
            let dead = try await bus.next(EventType.resultDead)
            #expect(dead.run == header.runID)
            #expect(dead.message?.contains(ResultPayload.mismatch) == true)
            // Also a failed task for good, as every dead letter is, so `baton status` counts it in its stage.
            let failed = try await bus.next(EventType.taskFailed)
            #expect(failed.run == header.runID && failed.attributes?["dead"] == "true" && failed.attributes?["stage_index"] == "0")
            #expect(try await outbox.entry(runID: header.runID, part: 0)?.state == .dead)
            // The next one still goes out.
            #expect(try ResultMessage(frames: try await receive(processor)).header.runID == good.runID)
        }
    }

    /// Hands off a small part as the run worker does (accepted, running, sealed with its bytes kept, finished),
    /// so it takes the fast path.
    static func handOff(_ payload: Data, minute: Int, outbox: Outbox, scratch: Scratch) async throws -> String {
        let runID = run(minute)
        let ledger = RunLedger(outbox: outbox)
        let time = Date(timeIntervalSince1970: Double(60 * minute))
        _ = try await ledger.accept(RunRequest(runID: runID, job: "j", logicalTime: time, firedAt: time, trigger: .schedule))
        _ = try await ledger.markRunning(runID)
        let partial = scratch.directory + "/\(minute).partial"
        let final = scratch.directory + "/\(minute).result"
        try payload.write(to: URL(fileURLWithPath: partial))
        let seal = try RawResults.seal(partial: partial, final: final, keep: RawResults.keptInMemory)
        _ = try await ledger.finish(
            runID,
            parts: [Outbox.StoredPart(path: final, digest: PartDigest(size: seal.size, sha256: seal.sha256), bytes: seal.bytes)]
        )
        return runID
    }

    /// The fast path: with nothing else due, a part just handed off goes to the processor that asked from memory
    /// (its file, removed here, is not read back); with many handed off while asks come and go, each is sent
    /// exactly once.
    @Test(.timeLimit(.minutes(5)))
    func aPartJustHandedOffIsSentFromMemoryAndEachOnce() async throws {
        try await Self.withSender { outbox, processor, bus, doorbell, scratch in
            doorbell.ring()
            try await Self.ask(processor, seq: 1)
            // Nothing due yet: the sender has queried and found nothing.
            #expect(try await processor.receive(timeout: .milliseconds(300)) == nil)
            let payload = Data("{\"fresh\":1}\n".utf8)
            let runID = try await Self.handOff(payload, minute: 1, outbox: outbox, scratch: scratch)
            try FileManager.default.removeItem(atPath: scratch.directory + "/1.result")
            doorbell.ring()
            let message = try ResultMessage(frames: try await receive(processor))
            #expect(message.header.runID == runID && message.payload == payload)
            #expect(message.header.durableAtUs != nil)
            #expect(try await Wait.until(timeout: .seconds(30)) { try await outbox.entry(runID: runID, part: 0)?.state == .sent })

            // Many, while the processor asks for one at a time: every one once, none twice.
            var received: [String] = []
            var seq: UInt64 = 1
            for minute in 2...41 {
                _ = try await Self.handOff(Data("{\"n\":\(minute)}\n".utf8), minute: minute, outbox: outbox, scratch: scratch)
                doorbell.ring()
                if minute % 3 == 0 {
                    seq += 1
                    try await Self.ask(processor, seq: seq, credit: 3)
                }
            }
            while received.count < 40 {
                guard let frames = try await processor.receive(timeout: .seconds(1)) else {
                    seq += 1
                    try await Self.ask(processor, seq: seq, credit: 5)
                    continue
                }
                // A task whose 30 s lease ran out (this test never renews, and a loaded machine can make it that slow)
                // comes again as a later attempt: that is the lease at work, not a second first delivery.
                let header = try ResultMessage(frames: frames).header
                if header.attempt == 1 { received.append(header.runID) }
            }
            #expect(Set(received) == Set((2...41).map(Self.run)), "missing: \(Set((2...41).map(Self.run)).subtracting(received))")
            #expect(received.count == Set(received).count, "sent twice: \(received)")
            if let late = try await processor.receive(timeout: .milliseconds(500)) {
                #expect(try ResultMessage(frames: late).header.attempt > 1, "something was sent twice")
            }
            _ = bus
        }
    }

    /// A task goes only to a processor that asked for one, as many as it asked for; an ask repeated (the same
    /// number) is answered once; a processor that went away after asking does not take the task with it.
    /// Tasks handed out together, some to a processor the socket no longer has (here one that never connected):
    /// those fail alone, that processor is dropped, and they go to the next one; every task arrives once.
    @Test(.timeLimit(.minutes(5)))
    func tasksOfAGroupSentToAGoneProcessorGoToTheNext() async throws {
        let requests = WorkRequests()
        try await Self.withSender(processors: 1, requests: requests) { outbox, processors, bus, doorbell, scratch in
            // Asked first, so it takes the first tasks; the ROUTER has no peer of that name.
            #expect(requests.offer(WorkRequest(processor: "ghost", seq: 1, credit: 3), from: Data("ghost".utf8)))
            try await Self.ask(processors[0], seq: 1, credit: 6, name: "p0")
            #expect(try await Wait.until(timeout: .seconds(30)) { requests.waiting == 2 })
            let runs = (1...6).map(Self.run)
            for (index, runID) in runs.enumerated() {
                _ = try await Self.queue(Data("r\(index)".utf8), runID: runID, in: scratch, outbox: outbox)
            }
            doorbell.ring()
            var got: [String] = []
            for _ in runs { got.append(try ResultMessage(frames: try await receive(processors[0], within: .seconds(30))).header.runID) }
            #expect(got.sorted() == runs.sorted(), "p0 got \(got)")
            #expect(try await processors[0].receive(timeout: .milliseconds(300)) == nil, "a task came twice")
            for runID in runs { #expect(try await outbox.entry(runID: runID, part: 0)?.state == .sent) }
            // The ghost was given tasks (it asked first) and dropped when they could not reach it.
            #expect(requests.waiting == 0)
        }
    }

    @Test(.timeLimit(.minutes(5)))
    func tasksGoOnlyToProcessorsThatAsked() async throws {
        try await Self.withSender(processors: 3, lease: .seconds(2)) { outbox, processors, bus, doorbell, scratch in
            for minute in 1...3 { _ = try await Self.queue(Data("r\(minute)".utf8), runID: Self.run(minute), in: scratch, outbox: outbox) }
            doorbell.ring()
            // Nobody asked: nothing is sent, and nothing is marked sent.
            #expect(try await processors[0].receive(timeout: .milliseconds(300)) == nil)
            #expect(try await outbox.entry(runID: Self.run(1), part: 0)?.state == .pending)
            try await Self.ask(processors[0], seq: 1, name: "p0")
            try await Self.ask(processors[0], seq: 1, name: "p0")
            #expect(try ResultMessage(frames: try await receive(processors[0])).header.runID == Self.run(1))
            #expect(try await bus.next(EventType.resultSent).attributes?["processor"] == "p0")
            // The repeated ask got nothing more.
            #expect(try await processors[0].receive(timeout: .milliseconds(300)) == nil)
            // Credit 2: two tasks, in order.
            try await Self.ask(processors[1], seq: 1, credit: 2, name: "p1")
            #expect(try ResultMessage(frames: try await receive(processors[1])).header.runID == Self.run(2))
            #expect(try ResultMessage(frames: try await receive(processors[1])).header.runID == Self.run(3))
            // p0 asks and goes away, p2 asks after it; then a task comes. Whether the socket already knows p0 is
            // gone (the task goes to p2 at once) or not yet (sent into p0's closing connection, it comes back to p2
            // when its lease runs out), p2 gets it and nothing is lost.
            try await Self.ask(processors[0], seq: 2, name: "p0")
            await processors[0].close()
            try await Self.ask(processors[2], seq: 1, name: "p2")
            _ = try await Self.queue(Data("r4".utf8), runID: Self.run(4), in: scratch, outbox: outbox)
            doorbell.ring()
            // Tasks sent earlier and never acknowledged come back too once their 2 s leases run out (a slow machine
            // may get there first): p2 asks on until the new one comes.
            var seq: UInt64 = 1
            var got: [String] = []
            while !got.contains(Self.run(4)), got.count < 10 {
                got.append(try ResultMessage(frames: try await receive(processors[2], within: .seconds(30))).header.runID)
                seq += 1
                try await Self.ask(processors[2], seq: seq, name: "p2")
            }
            #expect(got.contains(Self.run(4)), "p2 got \(got)")
        }
    }
}

struct AckReceiverTests {
    /// Runs a receiver on a bound PULL, with a processor's PUSH connected to it, until `body` returns.
    static func withReceiver(
        metrics: ServiceMetrics = .disabled,
        _ body: (_ outbox: Outbox, _ processor: AsyncSocket, _ bus: Bus, _ scratch: Scratch) async throws -> Void
    )
        async throws
    {
        let scratch = Scratch("acks")
        defer { scratch.remove() }
        let context = Context()
        let bus = try await Bus(context: context)
        let outbox = try await Outbox(path: scratch.directory + "/outbox.sqlite", policy: .init(maxAttempts: 2))
        let endpoint = "inproc://acks-\(UUID().uuidString)"
        let acks = try await AsyncSocket(context: context, configuration: .init(type: .pull, bind: [endpoint]))
        let processor = try await AsyncSocket(context: context, configuration: .init(type: .push, connect: [endpoint]))
        let receiver = AckReceiver(
            dataDirectory: scratch.directory,
            outbox: outbox,
            acks: acks.channel.inbound,
            doorbell: Doorbell(),
            lease: .seconds(30),
            publisher: bus.publisher,
            logger: Logger(label: "test"),
            metrics: metrics
        )
        let running = Task { try await receiver.run() }
        do {
            try await body(outbox, processor, bus, scratch)
        } catch {
            running.cancel()
            throw error
        }
        running.cancel()
        _ = try? await running.value
        await processor.close()
        await acks.close()
        await bus.close()
    }

    /// Sends a queued result's delivery as the sender would have, so it is `sent`.
    static func sent(_ runID: String, outbox: Outbox, scratch: Scratch) async throws {
        _ = try await ResultSenderTests.queue(Data("r".utf8), runID: runID, in: scratch, outbox: outbox)
        try await outbox.markSent(runID: runID, part: 0, leaseDeadline: Date().addingTimeInterval(30))
    }

    @Test(.timeLimit(.minutes(5)))
    func anAckSettlesTheResult() async throws {
        try await Self.withReceiver { outbox, processor, bus, scratch in
            try await Self.sent(ResultSenderTests.run(1), outbox: outbox, scratch: scratch)
            try await processor.send(
                Wire.encode(Acknowledgement(runID: ResultSenderTests.run(1), part: 0, processor: "p1", duplicate: false))
            )
            let event = try await bus.next(EventType.resultAcknowledged)
            #expect(event.run == ResultSenderTests.run(1) && event.attributes?["processor"] == "p1")
            #expect(try await outbox.entry(runID: ResultSenderTests.run(1), part: 0)?.state == .acked)
        }
    }

    /// A failure is retried while attempts are left, then dead-lettered; a conflict is dead at once.
    @Test(.timeLimit(.minutes(5)))
    func failuresAreRetriedThenDeadLettered() async throws {
        try await Self.withReceiver { outbox, processor, bus, scratch in
            try await Self.sent(ResultSenderTests.run(1), outbox: outbox, scratch: scratch)
            try await processor.send(Wire.encode(FailureReport(runID: ResultSenderTests.run(1), part: 0, processor: "p1", reason: "boom")))
            let retry = try await bus.next(EventType.resultRetry)
            #expect(retry.run == ResultSenderTests.run(1) && retry.message == "boom")
            #expect(try await outbox.entry(runID: ResultSenderTests.run(1), part: 0)?.state == .pending)
            try await outbox.markSent(runID: ResultSenderTests.run(1), part: 0, leaseDeadline: Date().addingTimeInterval(30))
            try await processor.send(
                Wire.encode(FailureReport(runID: ResultSenderTests.run(1), part: 0, processor: "p1", reason: "boom again"))
            )
            #expect(try await bus.next(EventType.resultDead).message == "boom again")
            #expect(try await outbox.entry(runID: ResultSenderTests.run(1), part: 0)?.state == .dead)

            try await Self.sent(ResultSenderTests.run(2), outbox: outbox, scratch: scratch)
            try await processor.send(
                Wire.encode(FailureReport(runID: ResultSenderTests.run(2), part: 0, processor: "p1", reason: "other sha", conflict: true))
            )
            let conflict = try await bus.next(EventType.resultDead)
            #expect(conflict.run == ResultSenderTests.run(2) && conflict.attributes?["cause"] == Outbox.conflictCause)
        }
    }

    /// What is not an ack, a lease or a nack is turned away, visibly, and the receiver carries on.
    @Test(.timeLimit(.minutes(5)))
    func malformedMessagesAreRejectedAndTheReceiverCarriesOn() async throws {
        try await Self.withReceiver { outbox, processor, bus, scratch in
            try await processor.send([Data("baton/1".utf8), Data("ack".utf8), Data("{".utf8)])
            let rejected = try await bus.next(EventType.messageRejected)
            #expect(rejected.attributes?["socket"] == "acks")
            try await Self.sent(ResultSenderTests.run(1), outbox: outbox, scratch: scratch)
            try await processor.send(
                Wire.encode(Acknowledgement(runID: ResultSenderTests.run(1), part: 0, processor: "p1", duplicate: true))
            )
            #expect(try await bus.next(EventType.resultAcknowledged).attributes?["duplicate"] == "true")
        }
    }
}

struct ResultPayloadTests {
    @Test func readsAndChecksAWholeFile() throws {
        let scratch = Scratch("payload")
        defer { scratch.remove() }
        let path = scratch.directory + "/r.result"
        // Over one read block, and not a multiple of it.
        let payload = Data((0..<(3 << 20) + 17).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        try payload.write(to: URL(fileURLWithPath: path))
        #expect(try ResultPayload.read(path: path, size: payload.count, sha256: SHA256.hex(of: payload)) == payload)
        let empty = scratch.directory + "/empty.result"
        try Data().write(to: URL(fileURLWithPath: empty))
        #expect(try ResultPayload.read(path: empty, size: 0, sha256: SHA256.hex(of: Data())) == Data())
    }

    @Test func refusesAWrongSizeDigestOrMissingFile() throws {
        let scratch = Scratch("payload")
        defer { scratch.remove() }
        let path = scratch.directory + "/r.result"
        let payload = Data("hello".utf8)
        try payload.write(to: URL(fileURLWithPath: path))
        let digest = SHA256.hex(of: payload)
        #expect(throws: StorageError.self) { try ResultPayload.read(path: path, size: 4, sha256: digest) }
        #expect(throws: StorageError.self) { try ResultPayload.read(path: path, size: 6, sha256: digest) }
        #expect(throws: StorageError.self) { try ResultPayload.read(path: path, size: 5, sha256: SHA256.hex(of: Data("hellO".utf8))) }
        #expect(throws: StorageError.self) { try ResultPayload.read(path: path + ".gone", size: 5, sha256: digest) }
    }
}
