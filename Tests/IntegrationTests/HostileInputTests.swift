import Foundation
import Glibc
import Messaging
import ServiceKit
import Testing
import ZMQ

/// What an outside fuzzer sends: random bytes, wrong frames, malformed events, huge frames and
/// subscriptions, and a logger whose event log cannot be written. Every receiver rejects the same way, the
/// bus passes on only well-formed events, memory stays bounded, and work goes on.
struct HostileInputTests {
    /// The events the logger wrote to its event log (its own included), decoded.
    static func loggedEvents(_ stack: TestStack) -> [StatusEvent] {
        let path = stack.dataDirectory + "/logs/events.jsonl"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { try? Timestamp.decoder().decode(StatusEvent.self, from: Data($0.utf8)) }
    }

    /// Waits until the event log holds a `message.rejected` for `socket` with `reason`, sending `garbage`
    /// again every half second (a connecting peer may miss the first).
    static func expectRejection(
        _ stack: TestStack,
        socket: String,
        reason: String,
        timeout: Duration = .seconds(20),
        garbage: () async throws -> Void
    ) async throws -> StatusEvent? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            try await garbage()
            for _ in 0..<5 {
                if let event = loggedEvents(stack).first(where: {
                    $0.type == EventType.messageRejected && $0.attributes?["socket"] == socket && $0.attributes?["reason"] == reason
                }) {
                    return event
                }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        return nil
    }

    /// Peak and current resident memory of a process, in bytes (`VmHWM`, `VmRSS`).
    static func memory(_ pid: Int32) -> (peak: Int, current: Int) {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return (0, 0) }
        func value(_ key: String) -> Int {
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(key + ":") }) else { return 0 }
            return (Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0) * 1024
        }
        return (value("VmHWM"), value("VmRSS"))
    }

    /// Garbage on every socket the services bind gets a `message.rejected` event naming the socket and a
    /// reason from the fixed vocabulary, REQ clients still get an (error) reply, and runs keep being stored.
    @Test(.timeLimit(.minutes(2)))
    func garbageOnEveryBoundSocketIsRejectedWithSocketAndReason() async throws {
        let yaml = """
            jobs:
              - name: tick
                every: 1s
                builtin: demo
                duration: 1ms
                result_size: 64
            """
        try await TestStack.with("garbage", yaml: yaml) { stack in
            try stack.startServices(processors: 1)
            let context = Context()
            let stored = try await stack.waitUntil(timeout: .seconds(30)) { stack.storedCount() >= 1 }
            #expect(stored, "\(stack.stderr("processor-1"))")
            let before = stack.storedCount()

            // control and query are REQ/REP: the garbage still gets a reply.
            var controlReply: ControlReply?
            let control = try await Self.expectRejection(stack, socket: "control", reason: "frames") {
                let socket = try await AsyncSocket(
                    context: context,
                    configuration: .init(type: .request, connect: ["ipc://\(stack.directory)/control"])
                )
                try await socket.send([Data("garbage\n\u{1B}[31m".utf8)])
                if let reply = try await socket.receive(timeout: .seconds(5)) {
                    controlReply = try? Wire.decode(ControlReply.self, from: reply).message
                }
                await socket.close()
            }
            #expect(control != nil)
            #expect(controlReply?.ok == false && controlReply?.error != nil, "\(String(describing: controlReply))")
            // The excerpt is escaped: no raw newline or escape character reaches the event.
            #expect(control?.attributes?["excerpt"] == #"garbage\n\x1b[31m"#, "\(String(describing: control))")

            var queryReply: StatusReport?
            let query = try await Self.expectRejection(stack, socket: "query", reason: "version") {
                let socket = try await AsyncSocket(
                    context: context,
                    configuration: .init(type: .request, connect: ["ipc://\(stack.directory)/query"])
                )
                try await socket.send([Data("baton/9".utf8), Data("query".utf8), Data("{}".utf8)])
                if let reply = try await socket.receive(timeout: .seconds(5)) {
                    queryReply = try? Wire.decode(StatusReport.self, from: reply).message
                }
                await socket.close()
            }
            #expect(query != nil)
            #expect(queryReply?.error != nil)

            let reports = try await AsyncSocket(
                context: context,
                configuration: .init(type: .push, connect: ["ipc://\(stack.directory)/reports"])
            )
            let report = try await Self.expectRejection(stack, socket: "reports", reason: "json") {
                try await reports.send([Data("baton/1".utf8), Data("report".utf8), Data("{not json".utf8)])
            }
            #expect(report != nil)

            let acks = try await AsyncSocket(
                context: context,
                configuration: .init(type: .push, connect: ["ipc://\(stack.directory)/acks"])
            )
            let ack = try await Self.expectRejection(stack, socket: "acks", reason: "kind") {
                try await acks.send([Data("baton/1".utf8), Data("banana".utf8), Data("{}".utf8)])
            }
            #expect(ack != nil)

            let publisher = try await AsyncSocket(
                context: context,
                configuration: .init(type: .xpublish, connect: ["ipc://\(stack.directory)/status-in"])
            )
            _ = try await publisher.receive(timeout: .seconds(10))
            let statusIn = try await Self.expectRejection(stack, socket: "status_in", reason: "json") {
                try await publisher.send([Data("run.started".utf8), Data("baton/1".utf8), Data(#"{"type":"run.started"}"#.utf8)])
            }
            #expect(statusIn != nil)

            // An XSUB may send a subscriber's socket anything; status_out takes only subscriptions.
            let intruder = try await AsyncSocket(
                context: context,
                configuration: .init(type: .xsubscribe, connect: ["ipc://\(stack.directory)/status-out"])
            )
            let statusOut = try await Self.expectRejection(stack, socket: "status_out", reason: "kind") {
                try await intruder.send([Data("hello".utf8), Data("world".utf8)])
            }
            #expect(statusOut != nil)

            // Work goes on.
            let more = try await stack.waitUntil(timeout: .seconds(20)) { stack.storedCount() >= before + 2 }
            #expect(more, "stored \(stack.storedCount()), \(before) before the garbage")
            for name in ["logger", "scheduler", "algorithm", "processor-1"] {
                #expect(stack.process(name)?.isRunning == true, "\(name) died: \(stack.stderr(name))")
            }
            await reports.close()
            await acks.close()
            await publisher.close()
            await intruder.close()
        }
    }

    /// The sockets services connect (`results` at a processor, `runs` at the algorithm) reject the same way.
    @Test(.timeLimit(.minutes(2)))
    func connectedReceiversRejectTheSameWay() async throws {
        try await TestStack.with("garbage2", yaml: "") { stack in
            try stack.start("logger", "baton-logger")
            let context = Context()
            let results = try await AsyncSocket(
                context: context,
                configuration: .init(type: .push, bind: ["ipc://\(stack.directory)/results"])
            )
            try stack.start("processor-1", "baton-processor", ["--name", "processor-1"])
            let result = try await Self.expectRejection(stack, socket: "results", reason: "json") {
                try await results.send([Data("baton/1".utf8), Data("result".utf8), Data(#"{"runId":7}"#.utf8), Data("x".utf8)])
            }
            #expect(result != nil, "\(stack.stderr("processor-1"))")
            await results.close()

            let runs = try await AsyncSocket(context: context, configuration: .init(type: .push, bind: ["ipc://\(stack.directory)/runs"]))
            try stack.start("algorithm", "baton-algorithm")
            let run = try await Self.expectRejection(stack, socket: "runs", reason: "frames") {
                try await runs.send([Data("surprise".utf8)])
            }
            #expect(run != nil, "\(stack.stderr("algorithm"))")
            await runs.close()
        }
    }

    /// A subscriber never gets a malformed event from the logger, however a publisher frames it.
    @Test(.timeLimit(.minutes(1)))
    func theLoggerForwardsOnlyWellFormedEvents() async throws {
        try await TestStack.with("forward", yaml: "") { stack in
            try stack.start("logger", "baton-logger")
            let context = Context()
            let watcher = try await AsyncSocket(
                context: context,
                configuration: .init(type: .subscribe, options: [.subscribe([])], connect: ["ipc://\(stack.directory)/status-out"])
            )
            let publisher = try await AsyncSocket(
                context: context,
                configuration: .init(type: .xpublish, connect: ["ipc://\(stack.directory)/status-in"])
            )
            _ = try await publisher.receive(timeout: .seconds(10))
            // Until the watcher sees events end to end.
            var seq: UInt64 = 0
            func valid(_ run: String) -> [Data] {
                seq += 1
                return StatusEvent(type: EventType.runProgress, source: "test", instance: "f:1", seq: seq, run: run).frames
            }
            var flowing = false
            while !flowing {
                try await publisher.send(valid("j@probe"))
                flowing = try await watcher.receive(timeout: .milliseconds(200)) != nil
            }
            let time = "2026-01-01T00:00:00.000Z"
            let malformed: [[Data]] = [
                [Data("run.progress".utf8)],
                [Data("run.progress".utf8), Data("baton/1".utf8), Data("{not json".utf8)],
                [
                    Data("run.progress".utf8), Data("baton/1".utf8),
                    Data(#"{"type":"run.progress","source":"s","instance":"i","time":"\#(time)"}"#.utf8),
                ],
                [Data("run.progress".utf8), Data("baton/2".utf8), valid("j@x")[2]],
                [Data("run.other".utf8), Data("baton/1".utf8), valid("j@x")[2]],
                [
                    Data("run\nx".utf8), Data("baton/1".utf8),
                    Data(#"{"type":"run\nx","source":"s","instance":"i","seq":1,"time":"\#(time)"}"#.utf8),
                ],
                [
                    Data("log.info".utf8), Data("baton/1".utf8),
                    Data(#"{"type":"log.info","source":"","instance":"i","seq":1,"time":"\#(time)"}"#.utf8),
                ],
            ]
            for message in malformed { try await publisher.send(message) }
            try await publisher.send(valid("j@last"))
            var received: [[Data]] = []
            var last = false
            while !last, let frames = try await watcher.receive(timeout: .seconds(10)) {
                received.append(frames)
                last = (try? StatusEvent(frames: frames))?.run == "j@last"
            }
            #expect(last)
            for frames in received {
                #expect(throws: Never.self, "forwarded: \(frames.map { String(decoding: $0, as: UTF8.self) })") {
                    try StatusEvent.validated(frames: frames)
                }
            }
            // And each was rejected on status_in.
            let rejected = try await stack.waitUntil(timeout: .seconds(10)) {
                Self.loggedEvents(stack).filter { $0.type == EventType.messageRejected && $0.attributes?["socket"] == "status_in" }.count
                    >= malformed.count
            }
            #expect(rejected, "\(Self.loggedEvents(stack).filter { $0.type == EventType.messageRejected })")
            await publisher.close()
            await watcher.close()
        }
    }

    /// 100 MB frames to status_in, status_out and reports, and 300 subscriptions of 64 KiB, leave the logger's
    /// and the scheduler's peak memory within 64 MiB of where it was; both keep answering.
    @Test(.timeLimit(.minutes(2)))
    func hugeFramesAndSubscriptionsLeaveMemoryBounded() async throws {
        try await TestStack.with("huge", yaml: "") { stack in
            try stack.start("logger", "baton-logger")
            try stack.start("scheduler", "baton-scheduler")
            let context = Context()
            let logger = try #require(stack.process("logger")).processIdentifier
            let scheduler = try #require(stack.process("scheduler")).processIdentifier
            let up = try await stack.waitUntil(timeout: .seconds(20)) { try await Self.answers(stack, context: context) }
            #expect(up)
            let before = (logger: Self.memory(logger), scheduler: Self.memory(scheduler))
            let huge = Data(repeating: 0x41, count: 100_000_000)

            let publisher = try await AsyncSocket(
                context: context,
                configuration: .init(type: .xpublish, connect: ["ipc://\(stack.directory)/status-in"])
            )
            _ = try await publisher.receive(timeout: .seconds(10))
            let intruder = try await AsyncSocket(
                context: context,
                configuration: .init(type: .xsubscribe, connect: ["ipc://\(stack.directory)/status-out"])
            )
            let reports = try await AsyncSocket(
                context: context,
                configuration: .init(type: .push, connect: ["ipc://\(stack.directory)/reports"])
            )
            for _ in 0..<2 {
                try await publisher.send([Data("run.started".utf8), Data("baton/1".utf8), huge])
                try await intruder.send([huge])
                try await reports.send([Data("baton/1".utf8), Data("report".utf8), huge])
            }
            let big = (0..<300).map { index in [UInt8](repeating: 0x61, count: 65_536 - 8) + Array(String(format: "%08d", index).utf8) }
            let subscriber = try await AsyncSocket(
                context: context,
                configuration: .init(
                    type: .subscribe,
                    options: big.map { .subscribe($0) },
                    connect: ["ipc://\(stack.directory)/status-out"]
                )
            )
            // Let every frame arrive (or be refused), then check both still answer.
            try await Task.sleep(for: .seconds(2))
            await subscriber.close()
            await publisher.close()
            await intruder.close()
            await reports.close()
            #expect(try await Self.answers(stack, context: context), "\(stack.stderr("logger"))\n\(stack.stderr("scheduler"))")
            let after = (logger: Self.memory(logger), scheduler: Self.memory(scheduler))
            print(
                "memory (peak/current MiB): logger \(before.logger.peak >> 20)/\(before.logger.current >> 20) -> "
                    + "\(after.logger.peak >> 20)/\(after.logger.current >> 20); scheduler \(before.scheduler.peak >> 20)/"
                    + "\(before.scheduler.current >> 20) -> \(after.scheduler.peak >> 20)/\(after.scheduler.current >> 20)"
            )
            #expect(after.logger.peak - before.logger.peak < 64 << 20, "logger peak \(before.logger.peak) -> \(after.logger.peak)")
            #expect(
                after.scheduler.peak - before.scheduler.peak < 64 << 20,
                "scheduler peak \(before.scheduler.peak) -> \(after.scheduler.peak)"
            )
        }
    }

    /// More distinct subscriptions than `limits.subscriptions` reset status_out (a rejection with reason
    /// `subscriptions`) instead of growing; subscribers come back and events flow again.
    @Test(.timeLimit(.minutes(1)))
    func tooManySubscriptionsResetStatusOut() async throws {
        try await TestStack.with("subs", yaml: "limits:\n  subscriptions: 50\n") { stack in
            try stack.start("logger", "baton-logger")
            let context = Context()
            let prefixes = (0..<100).map { Array("zz.\($0)".utf8) }
            let hoarder = try await AsyncSocket(
                context: context,
                configuration: .init(
                    type: .subscribe,
                    options: prefixes.map { .subscribe($0) },
                    connect: ["ipc://\(stack.directory)/status-out"]
                )
            )
            let reset = try await stack.waitUntil(timeout: .seconds(20)) {
                Self.loggedEvents(stack).contains {
                    $0.type == EventType.messageRejected && $0.attributes?["socket"] == "status_out"
                        && $0.attributes?["reason"] == "subscriptions"
                }
            }
            #expect(reset, "\(stack.stderr("logger"))")
            await hoarder.close()
            // An ordinary watcher still gets events afterwards.
            let watcher = try await AsyncSocket(
                context: context,
                configuration: .init(type: .subscribe, options: [.subscribe([])], connect: ["ipc://\(stack.directory)/status-out"])
            )
            let heard = try await watcher.receive(timeout: .seconds(15))
            #expect(heard != nil)
            #expect(stack.process("logger")?.isRunning == true)
            await watcher.close()
        }
    }

    /// An event log that cannot be written (a file size limit on the logger, like a full disk): one
    /// `disk.full`, one stderr line, no flood of events about it; events go on reaching subscribers; once
    /// writing works again, one `disk.ok` counts what was dropped, and the log holds only whole lines.
    @Test(.timeLimit(.minutes(2)))
    func aFullEventLogIsReportedOnceWithoutALoop() async throws {
        try await TestStack.with("diskfull", yaml: "log:\n  heartbeat: 1h\n") { stack in
            let process = try stack.start("logger", "baton-logger")
            let context = Context()
            let watcher = try await AsyncSocket(
                context: context,
                configuration: .init(type: .subscribe, options: [.subscribe([])], connect: ["ipc://\(stack.directory)/status-out"])
            )
            let publisher = try await StatusPublisher(
                context: context,
                endpoint: "ipc://\(stack.directory)/status-in",
                source: "test",
                instance: "disk:1",
                heartbeatInterval: .seconds(3600)
            )
            let running = Task { try await publisher.run() }
            var flowing = false
            while !flowing {
                publisher.publish(EventType.runProgress, run: "j@probe")
                if let frames = try await watcher.receive(timeout: .milliseconds(200)) {
                    flowing = (try? StatusEvent(frames: frames))?.source == "test"
                }
            }
            let log = stack.dataDirectory + "/logs/events.jsonl"
            let size = (try? FileManager.default.attributesOfItem(atPath: log)[.size] as? Int) ?? 0
            #expect(Self.prlimit(process.processIdentifier, "--fsize=\(size + 4096):"))
            // 2000 events, then until the logger said disk.full and the subscriber had most of them, and 2 s more
            // (30 s at most: a loaded machine is slow): count what the logger itself says meanwhile.
            var fromLogger: [StatusEvent] = []
            var fromTest = 0
            let clock = ContinuousClock()
            let end = clock.now + .seconds(30)
            var sent = 0
            var settled: ContinuousClock.Instant?
            while clock.now < end, settled.map({ clock.now < $0 + .seconds(2) }) ?? true {
                if sent < 2000 {
                    for _ in 0..<20 {
                        publisher.publish(EventType.runProgress, run: "j@\(sent)", message: String(repeating: "x", count: 200))
                    }
                    sent += 20
                }
                while clock.now < end, let frames = try await watcher.receive(timeout: .milliseconds(20)) {
                    guard let event = try? StatusEvent(frames: frames) else { continue }
                    if event.source == "logger" {
                        if event.type != EventType.serviceHeartbeat { fromLogger.append(event) }
                    } else if event.source == "test" {
                        fromTest += 1
                    }
                }
                if settled == nil, sent >= 2000, fromTest >= 1000, fromLogger.contains(where: { $0.type == EventType.diskFull }) {
                    settled = clock.now
                }
            }
            print("disk full: the logger published \(fromLogger.count) event(s) while 2000 could not be written: \(fromLogger.map(\.type))")
            #expect(fromLogger.filter { $0.type == EventType.diskFull }.count == 1)
            #expect(fromLogger.count <= 5, "\(fromLogger.map { "\($0.type) \($0.message ?? "")" })")
            // Subscribers still got the events.
            #expect(fromTest >= 1000, "\(fromTest) of 2000 reached the subscriber")
            let stderr = stack.stderr("logger")
            #expect(stderr.components(separatedBy: "cannot write the event log").count == 2, "\(stderr.suffix(2000))")
            #expect(stderr.utf8.count < 16 << 10)

            // Room again: the next try works and says how many were dropped.
            #expect(Self.prlimit(process.processIdentifier, "--fsize=unlimited:"))
            var ok: StatusEvent?
            let deadline = clock.now + .seconds(40)
            while ok == nil, clock.now < deadline {
                publisher.publish(EventType.runProgress, run: "j@after")
                if let frames = try await watcher.receive(timeout: .milliseconds(200)), let event = try? StatusEvent(frames: frames),
                    event.type == EventType.diskOK
                {
                    ok = event
                }
            }
            let dropped = Int(ok?.attributes?["dropped"] ?? "") ?? 0
            #expect(dropped >= 1900, "\(String(describing: ok))")
            // Every line of the log is a whole event.
            let text = try String(contentsOfFile: log, encoding: .utf8)
            for line in text.split(separator: "\n") {
                #expect((try? Timestamp.decoder().decode(StatusEvent.self, from: Data(line.utf8))) != nil, "\(line.prefix(200))")
            }
            running.cancel()
            _ = try? await running.value
            await watcher.close()
        }
    }

    /// Whether the logger answers a status query and the scheduler a `jobs` request (asked over their sockets,
    /// never blocking a thread of the test).
    static func answers(_ stack: TestStack, context: Context) async throws -> Bool {
        func ask(_ endpoint: String, _ frames: [Data]) async throws -> [Data]? {
            let socket = try await AsyncSocket(context: context, configuration: .init(type: .request, connect: [endpoint]))
            try await socket.send(frames)
            let reply = try await socket.receive(timeout: .seconds(5))
            await socket.close()
            return reply
        }
        let status = try await ask("ipc://\(stack.directory)/query", Wire.encode(StatusQuery()))
        let jobs = try await ask("ipc://\(stack.directory)/control", Wire.encode(ControlRequest(command: .jobs)))
        let statusOK = status.flatMap { try? Wire.decode(StatusReport.self, from: $0).message }.map { $0.error == nil } ?? false
        let jobsOK = jobs.flatMap { try? Wire.decode(ControlReply.self, from: $0).message }?.ok ?? false
        return statusOK && jobsOK
    }

    /// Sets a resource limit of a running process with util-linux `prlimit`.
    static func prlimit(_ pid: Int32, _ argument: String) -> Bool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/prlimit")
        process.arguments = ["--pid", "\(pid)", argument]
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }
}
