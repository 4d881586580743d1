import Foundation
import Glibc
import Messaging
import Config
import ServiceKit
import Testing
import ZMQ

/// What an outside fuzzer sends: random bytes, wrong frames, malformed events, huge frames and
/// subscriptions, and a logger whose event log cannot be written. Every receiver rejects the same way, the
/// bus passes on only well-formed events, memory stays bounded, and work goes on.
///
/// This suite: huge frames, many subscriptions and a full event log leave memory bounded and work going on.
struct HostileResourceTests {
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
            let up = try await stack.waitUntil(timeout: .seconds(20)) { try await Hostile.answers(stack, context: context) }
            #expect(up)
            let before = (logger: Hostile.memory(logger), scheduler: Hostile.memory(scheduler))
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
            // Nothing answers a frame of 100 MB: give every frame the time to arrive (or be refused), then check
            // that both still answer.
            try await Deliberately.wait(.seconds(2), because: "huge frames send no reply to wait for")
            await subscriber.close()
            await publisher.close()
            await intruder.close()
            await reports.close()
            #expect(try await Hostile.answers(stack, context: context), "\(stack.stderr("logger"))\n\(stack.stderr("scheduler"))")
            let after = (logger: Hostile.memory(logger), scheduler: Hostile.memory(scheduler))
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
                stack.loggedEvents().contains {
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
    @Test(.timeLimit(.minutes(4)))
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
            #expect(await Hostile.prlimit(process.processIdentifier, "--fsize=\(size + 4096):"))
            // 2000 events, then until the logger said disk.full and the subscriber had most of them, and 2 s more
            // (90 s at most: a loaded machine is slow): count what the logger itself says meanwhile.
            var fromLogger: [StatusEvent] = []
            var fromTest = 0
            let clock = ContinuousClock()
            let end = clock.now + .seconds(90)
            var sent = 0
            var settled: ContinuousClock.Instant?
            while clock.now < end, settled.map({ clock.now < $0 + .seconds(2) }) ?? true {
                // Paced by what the subscriber saw: a logger slowed by a loaded machine would otherwise let the
                // publisher's queue overflow, and events dropped before the logger are not what is tested here.
                if sent < 2000, sent - fromTest < 200 {
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
            #expect(await Hostile.prlimit(process.processIdentifier, "--fsize=unlimited:"))
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
}
