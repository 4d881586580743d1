import Foundation
import Logging
import Messaging
import ProcessorService
import Config
import ServiceKit
import Testing
import TestSupport
import ZMQ

/// `ResultProcessor` with `ResultHandler` over `inproc://` sockets, without processes: the test is the algorithm,
/// answering the processor's asks with results and reading what comes back on the acknowledgement socket.
struct ResultProcessorTests {
    static let instance = "p1"

    /// One processor: its DEALER and PUSH sockets connected to the test's, its store in a scratch directory.
    struct Harness {
        let results: TaskHub
        let acks: AsyncSocket
        let directory: String

        /// Sends a result as the algorithm does: only in answer to an ask.
        func send(_ frames: [Data]) async throws { try await results.send(frames) }

        /// The next message the processor sends back, decoded as `T` (a lease renewal, acknowledgement or failure).
        func next<T: WireMessage>(_ type: T.Type) async throws -> T {
            let frames = try #require(try await acks.receive(timeout: .seconds(30)), "no answer from the processor")
            return try Wire.decode(T.self, from: frames).message
        }

        /// The answer that settles a result, after its lease renewal.
        /// What settles a task whose start (first renewal) was already read, skipping further renewals.
        func settledAfterStart<T: WireMessage>(_ type: T.Type) async throws -> T {
            while true {
                let frames = try #require(try await acks.receive(timeout: .seconds(30)), "no answer from the processor")
                if try Wire.kind(of: frames) == LeaseRenewal.kind { continue }
                return try Wire.decode(T.self, from: frames).message
            }
        }

        /// Renewals after the first (every leaseMs/3 while it works, so on a slow machine) are skipped.
        func settled<T: WireMessage>(_ type: T.Type, run: String) async throws -> T {
            #expect(try await next(LeaseRenewal.self) == LeaseRenewal(runID: run, part: 0, processor: ResultProcessorTests.instance))
            return try await settledAfterStart(T.self)
        }
    }

    static func with(
        maxAckBytes: Int64 = .max,
        reaskAfter: Duration = ResultProcessor.reaskAfter,
        name: String = instance,
        configure: (inout Configuration, String) throws -> Void = { _, _ in },
        store makeStore: ((String) async throws -> ResultStore)? = nil,
        _ body: (Harness) async throws -> Void
    ) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("processor-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var configuration = Configuration()
        configuration.dataDirectory = directory
        try configure(&configuration, directory)
        let id = UUID().uuidString
        let context = Context()
        let results = try await TaskHub(context: context, endpoint: "inproc://results-\(id)")
        let acks = try await AsyncSocket(context: context, configuration: .init(type: .pull, bind: ["inproc://acks-\(id)"]))
        let pull = try await AsyncSocket(
            context: context,
            configuration: .init(type: .dealer, options: [.routingID(Array("p-\(id)".utf8))], connect: ["inproc://results-\(id)"])
        )
        let push = try await AsyncSocket(context: context, configuration: .init(type: .push, connect: ["inproc://acks-\(id)"]))
        let logger = Logger(label: "test")
        // Nobody listens on the bus: the publisher holds its events, which is all these tests need.
        let publisher = try await StatusPublisher(
            context: context,
            endpoint: "inproc://status-\(id)",
            source: "processor",
            instance: instance
        )
        let sqlite = (directory as NSString).appendingPathComponent("results.sqlite")
        let store = if let makeStore { try await makeStore(directory) } else { try await ResultStore(path: sqlite) }
        let processor = ResultProcessor(
            handler: ResultHandler(configuration: configuration, store: store, instance: instance),
            results: pull.channel.inbound,
            asks: pull.channel.outbound,
            acks: push.channel.outbound,
            instance: name,
            publisher: publisher,
            logger: logger,
            maxAckBytes: maxAckBytes,
            reaskAfter: reaskAfter
        )
        let running = Task { try await processor.run() }
        do {
            try await body(Harness(results: results, acks: acks, directory: directory))
        } catch {
            running.cancel()
            _ = try? await running.value
            for socket in [results.socket, acks, pull, push] { await socket.close() }
            throw error
        }
        running.cancel()
        _ = try? await running.value
        for socket in [results.socket, acks, pull, push] { await socket.close() }
    }

    static let logicalTime = Date(timeIntervalSince1970: 1_767_225_600)
    static let run = RunID.make(job: "j", logicalTime: logicalTime)

    static func result(_ payload: String, run: String = run, part: Int = 0) -> [Data] {
        let data = Data(payload.utf8)
        let header = ResultHeader(
            runID: run,
            job: "j",
            logicalTime: logicalTime,
            part: part,
            parts: part + 1,
            size: data.count,
            sha256: SHA256.hex(of: data)
        )
        return ResultMessage(header: header, payload: data).frames
    }

    /// A processor with the built-in store asks for a batch; the small tasks sent for it are each stored once,
    /// each settled on its own (stored, duplicate or conflict, as alone), and the next ask comes after.
    /// About 0.1 s alone, but 59–67 s in three runs of the whole first phase of `make test` here: the limit is a
    /// safety net against a hang, not a measure.
    @Test(.timeLimit(.minutes(3)))
    func aBatchOfSmallTasksIsStoredOnceEachAndEachSettled() async throws {
        let other = RunID.make(job: "j", logicalTime: Self.logicalTime + 60)
        try await Self.with { harness in
            let first = try await harness.results.nextAsk()
            #expect(first.ask.batch == ResultProcessor.batchSize)
            // Stored before: `run` part 0 and `other` part 0.
            try await harness.results.socket.send([first.id] + Self.result("{\"a\":0}\n"))
            _ = try await harness.settledAfterStart(Acknowledgement.self)
            let second = try await harness.results.nextAsk()
            try await harness.results.socket.send([second.id] + Self.result("{\"b\":0}\n", run: other))
            _ = try await harness.settledAfterStart(Acknowledgement.self)
            let third = try await harness.results.nextAsk()
            // The batch: parts 1…40 of `run` (new), `run` part 0 again (a duplicate), `other` part 0 with another
            // payload (a conflict).
            var sent = (1...40).map { Self.result("{\"a\":\($0)}\n", part: $0) }
            sent.append(Self.result("{\"a\":0}\n"))
            sent.append(Self.result("{\"b\":1}\n", run: other))
            for frames in sent { try await harness.results.socket.send([third.id] + frames) }
            var acked: [Int: Int] = [:]
            var duplicates: [String] = []
            var conflicts: [String] = []
            while acked.values.reduce(0, +) + duplicates.count + conflicts.count < sent.count {
                let frames = try #require(try await harness.acks.receive(timeout: .seconds(30)), "no answer from the processor")
                switch try Wire.kind(of: frames) {
                case LeaseRenewal.kind: continue
                case FailureReport.kind:
                    let report = try Wire.decode(FailureReport.self, from: frames).message
                    #expect(report.conflict == true, "\(report.reason)")
                    conflicts.append("\(report.runID)/\(report.part)")
                default:
                    let ack = try Wire.decode(Acknowledgement.self, from: frames).message
                    if ack.duplicate { duplicates.append("\(ack.runID)/\(ack.part)") } else { acked[ack.part, default: 0] += 1 }
                    #expect(ack.runID == Self.run)
                }
            }
            #expect(acked == Dictionary(uniqueKeysWithValues: (1...40).map { ($0, 1) }))
            #expect(duplicates == ["\(Self.run)/0"])
            #expect(conflicts == ["\(other)/0"])
            #expect(try await harness.results.nextAsk().ask.seq > third.ask.seq)
            let store = try await ResultStore(path: harness.directory + "/results.sqlite")
            #expect(try await store.resultCount() == 42)
            for part in [0, 1, 17, 40] {
                #expect(try await store.records(runID: Self.run, part: part) == ["{\"a\":\(part)}"])
            }
        }
    }

    /// A PostgreSQL store that cannot be reached holds the result: its lease is renewed all along, nothing is
    /// reported failed, and it is acknowledged as stored once the server is back.
    @Test(.timeLimit(.minutes(2)))
    func aStoreOutageHoldsTheResultUntilTheStoreIsBack() async throws {
        let server = try await PostgresServer.start()
        defer { server.remove() }
        let url = try await server.createDatabase()
        let events = HealthLog()
        let store = ResultStore(url: url, waitThroughOutages: true) { events.append($0) }
        #expect(try await store.resultCount() == 0)
        try await Self.with(store: { _ in store }) { harness in
            try await server.stop(immediate: true)
            let data = Data("{\"a\":1}\n".utf8)
            let header = ResultHeader(
                runID: Self.run,
                job: "j",
                logicalTime: Self.logicalTime,
                size: data.count,
                sha256: SHA256.hex(of: data),
                leaseMs: 300
            )
            try await harness.send(ResultMessage(header: header, payload: data).frames)
            #expect(try await Wait.until(timeout: .seconds(30)) { events.all.contains { if case .down = $0 { true } else { false } } })
            // Still held: renewals keep coming after the store was found down.
            #expect(try await harness.next(LeaseRenewal.self).runID == Self.run)
            #expect(try await harness.next(LeaseRenewal.self).runID == Self.run)
            try await server.start()
            var renewals = 0
            while true {
                let frames = try #require(try await harness.acks.receive(timeout: .seconds(60)), "no answer from the processor")
                let kind = try Wire.kind(of: frames)
                if kind == LeaseRenewal.kind {
                    renewals += 1
                    continue
                }
                #expect(kind == Acknowledgement.kind)
                let ack = try Wire.decode(Acknowledgement.self, from: frames).message
                #expect(ack == Acknowledgement(runID: Self.run, part: 0, processor: Self.instance, duplicate: false))
                break
            }
            #expect(events.all.last == .up)
            #expect(try await store.records(runID: Self.run) == ["{\"a\":1}"])
        }
    }

    /// A result is leased (renewal first), stored, then acknowledged as new.
    @Test(.timeLimit(.minutes(1)))
    func aResultIsLeasedStoredAndAcknowledged() async throws {
        try await Self.with { harness in
            try await harness.send(Self.result("{\"a\":1}\n"))
            let ack = try await harness.settled(Acknowledgement.self, run: Self.run)
            #expect(ack == Acknowledgement(runID: Self.run, part: 0, processor: Self.instance, duplicate: false))
        }
    }

    /// A processor asks for its next task only once it has settled the one it holds (so it never holds a task it
    /// has not started on).
    @Test(.timeLimit(.minutes(1)))
    func theNextAskComesOnlyAfterTheTaskIsSettled() async throws {
        try await Self.with(configure: { configuration, directory in
            // Holds the task until the test creates `go`.
            let go = (directory as NSString).appendingPathComponent("go")
            configuration.processor.command = ["sh", "-c", "while [ ! -e '\(go)' ]; do sleep 0.02; done; cat > /dev/null"]
        }) { harness in
            let first = try await harness.results.nextAsk()
            #expect(first.ask == WorkRequest(processor: Self.instance, seq: 1))
            try await harness.results.socket.send([first.id] + Self.result("{\"a\":1}\n"))
            #expect(try await harness.next(LeaseRenewal.self).runID == Self.run)
            // Working: no new ask, however long the task takes (checked for a while; an early ask fails it).
            await #expect(throws: TaskHub.TimedOut.self) { try await harness.results.nextAsk(timeout: .milliseconds(700)) }
            FileManager.default.createFile(atPath: (harness.directory as NSString).appendingPathComponent("go"), contents: nil)
            let settled = try await harness.settledAfterStart(Acknowledgement.self)
            #expect(settled.runID == Self.run && !settled.duplicate)
            let second = try await harness.results.nextAsk()
            #expect(second.ask.seq == 2)
            #expect(second.id == first.id, "the routing id is the processor's for its lifetime")
        }
    }

    /// An answer lost on the way (a connection that dropped while the task was in flight) is not waited for
    /// forever: an idle processor asks again with a new number, which the hub answers.
    @Test(.timeLimit(.minutes(1)))
    func anIdleProcessorAsksAgainWithANewNumber() async throws {
        try await Self.with(reaskAfter: .milliseconds(300)) { harness in
            let first = try await harness.results.nextAsk()
            // Its answer lost: the hub (this test) sends nothing for ask 1.
            let again = try await harness.results.nextAsk()
            #expect(again.ask.seq > first.ask.seq, "the same number again would not be answered")
            try await harness.results.socket.send([again.id] + Self.result("{\"a\":1}\n"))
            #expect(try await harness.settledAfterStart(Acknowledgement.self).duplicate == false)
        }
    }

    /// A processor named longer than an ask's 200 bytes still gets work (its ask carries the name cut short).
    @Test(.timeLimit(.minutes(1)))
    func aProcessorWithALongNameStillGetsWork() async throws {
        try await Self.with(name: String(repeating: "é", count: 150)) { harness in
            let (id, ask) = try await harness.results.nextAsk()
            #expect(ask.processor.utf8.count <= 200 && ask.processor.hasPrefix("éé"))
            try await harness.results.socket.send([id] + Self.result("{\"a\":1}\n"))
            _ = try await harness.next(LeaseRenewal.self)
            #expect(try await harness.settledAfterStart(Acknowledgement.self).duplicate == false)
        }
    }

    /// The same result again (a re-send after a lost acknowledgement) is acknowledged as a duplicate, not stored twice.
    @Test(.timeLimit(.minutes(1)))
    func aResultSentTwiceIsAcknowledgedAsADuplicate() async throws {
        try await Self.with { harness in
            try await harness.send(Self.result("{\"a\":1}\n"))
            _ = try await harness.settled(Acknowledgement.self, run: Self.run)
            try await harness.send(Self.result("{\"a\":1}\n"))
            let again = try await harness.settled(Acknowledgement.self, run: Self.run)
            #expect(again.duplicate)
        }
    }

    /// Another payload under a stored key is a conflict: refused with a permanent failure report marked as such.
    @Test(.timeLimit(.minutes(1)))
    func anotherPayloadUnderAStoredKeyIsAConflict() async throws {
        try await Self.with { harness in
            try await harness.send(Self.result("{\"a\":1}\n"))
            _ = try await harness.settled(Acknowledgement.self, run: Self.run)
            try await harness.send(Self.result("{\"a\":2}\n"))
            let report = try await harness.settled(FailureReport.self, run: Self.run)
            #expect(report.conflict == true)
            #expect(!report.handBack)
            #expect(report.reason.hasPrefix("conflict: \(Self.run) part 0 is stored with sha256"), "\(report.reason)")
        }
    }

    /// A part too large for the store is a permanent failure (dead-lettered at once), and the processor lives on.
    @Test(.timeLimit(.minutes(1)))
    func aPartTooLargeForTheStoreIsAPermanentFailure() async throws {
        try await Self.with(store: { directory in try await ResultStore(path: directory + "/results.sqlite", valueLimit: 16) }) { harness in
            try await harness.send(Self.result(String(repeating: "z", count: 40)))
            let report = try await harness.settled(FailureReport.self, run: Self.run)
            #expect(report.permanent && !report.handBack)
            #expect(report.reason.contains("over SQLite's limit"), "\(report.reason)")
            try await harness.send(Self.result("{\"a\":1}\n", run: RunID.make(job: "j", logicalTime: Self.logicalTime + 60)))
            #expect(
                try await harness.settled(Acknowledgement.self, run: RunID.make(job: "j", logicalTime: Self.logicalTime + 60)).duplicate
                    == false
            )
        }
    }

    /// A processing failure is reported (a nack); a command that cannot be executed fails every attempt alike,
    /// so its report is permanent (dead-lettered at once).
    @Test(.timeLimit(.minutes(1)))
    func aCommandThatCannotRunIsAPermanentFailure() async throws {
        try await Self.with(configure: { configuration, directory in
            let script = (directory as NSString).appendingPathComponent("not-executable.sh")
            try Data("#!/bin/sh\n".utf8).write(to: URL(fileURLWithPath: script))
            configuration.processor.command = [script]
        }) { harness in
            try await harness.send(Self.result("{\"a\":1}\n"))
            let report = try await harness.settled(FailureReport.self, run: Self.run)
            #expect(report.permanent)
            #expect(!report.handBack)
            #expect(report.conflict != true)
            #expect(report.reason.contains("not an executable file"), "\(report.reason)")
        }
    }

    /// Malformed frames and a payload that does not match its checksum are rejected without an answer; the next
    /// good result is processed as usual.
    @Test(.timeLimit(.minutes(1)))
    func malformedResultsAreRejectedAndTheNextOneIsProcessed() async throws {
        try await Self.with { harness in
            try await harness.send([Data("garbage".utf8)])
            var tampered = Self.result("{\"a\":1}\n", run: RunID.make(job: "j", logicalTime: Self.logicalTime + 60))
            tampered[tampered.count - 1] = Data("{\"a\":9}\n".utf8)
            try await harness.send(tampered)
            try await harness.send(Self.result("{\"a\":1}\n"))
            // The first answer is the good result's: nothing came back for the two before it.
            let ack = try await harness.settled(Acknowledgement.self, run: Self.run)
            #expect(!ack.duplicate)
        }
    }
}
