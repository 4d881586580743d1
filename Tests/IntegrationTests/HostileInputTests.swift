import Foundation
import Glibc
import Messaging
import ServiceKit
import Testing
import TestSupport
import ZMQ

/// What an outside fuzzer sends: random bytes, wrong frames, malformed events, huge frames and
/// subscriptions, and a logger whose event log cannot be written. Every receiver rejects the same way, the
/// bus passes on only well-formed events, memory stays bounded, and work goes on.
///
/// This suite: every receiver rejects bad input the same way, and the bus passes on only well-formed events.
struct HostileInputTests {
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
            let control = try await Hostile.expectRejection(stack, socket: "control", reason: "frames") {
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
            let query = try await Hostile.expectRejection(stack, socket: "query", reason: "version") {
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
            let report = try await Hostile.expectRejection(stack, socket: "reports", reason: "json") {
                try await reports.send([Data("baton/1".utf8), Data("report".utf8), Data("{not json".utf8)])
            }
            #expect(report != nil)

            let acks = try await AsyncSocket(
                context: context,
                configuration: .init(type: .push, connect: ["ipc://\(stack.directory)/acks"])
            )
            let ack = try await Hostile.expectRejection(stack, socket: "acks", reason: "kind") {
                try await acks.send([Data("baton/1".utf8), Data("banana".utf8), Data("{}".utf8)])
            }
            #expect(ack != nil)

            let publisher = try await AsyncSocket(
                context: context,
                configuration: .init(type: .xpublish, connect: ["ipc://\(stack.directory)/status-in"])
            )
            _ = try await publisher.receive(timeout: .seconds(10))
            let statusIn = try await Hostile.expectRejection(stack, socket: "status_in", reason: "json") {
                try await publisher.send([Data("run.started".utf8), Data("baton/1".utf8), Data(#"{"type":"run.started"}"#.utf8)])
            }
            #expect(statusIn != nil)

            // An XSUB may send a subscriber's socket anything; status_out takes only subscriptions.
            let intruder = try await AsyncSocket(
                context: context,
                configuration: .init(type: .xsubscribe, connect: ["ipc://\(stack.directory)/status-out"])
            )
            let statusOut = try await Hostile.expectRejection(stack, socket: "status_out", reason: "kind") {
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
            let results = try await TaskHub(context: context, endpoint: "ipc://\(stack.directory)/results")
            try stack.start("processor-1", "baton-processor", ["--name", "processor-1"])
            let result = try await Hostile.expectRejection(stack, socket: "results", reason: "json") {
                try await results.send([Data("baton/1".utf8), Data("result".utf8), Data(#"{"runId":7}"#.utf8), Data("x".utf8)])
            }
            #expect(result != nil, "\(stack.stderr("processor-1"))")
            await results.close()

            let runs = try await AsyncSocket(context: context, configuration: .init(type: .push, bind: ["ipc://\(stack.directory)/runs"]))
            try stack.start("algorithm", "baton-algorithm")
            let run = try await Hostile.expectRejection(stack, socket: "runs", reason: "frames") {
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
                stack.loggedEvents().filter { $0.type == EventType.messageRejected && $0.attributes?["socket"] == "status_in" }.count
                    >= malformed.count
            }
            #expect(rejected, "\(stack.loggedEvents().filter { $0.type == EventType.messageRejected })")
            await publisher.close()
            await watcher.close()
        }
    }
}
