import Foundation
import Messaging
import ServiceKit
import Testing
import ZMQ

/// `baton logs --follow` over a real logger starts like `tail -f`: the last N records, then new ones.
@Suite(.serialized)
struct LogsFollowTests {
    static func lines(_ stack: TestStack, _ name: String) -> [String] {
        ((try? String(contentsOfFile: "\(stack.directory)/\(name).out", encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    @Test(.timeLimit(.minutes(1)))
    func followStartsFromTheLastNRecords() async throws {
        try await TestStack.with("logsfollow", yaml: "") { stack in
            try stack.start("logger", "baton-logger")
            let publisher = try await StatusPublisher(
                context: Context(),
                endpoint: "ipc://\(stack.directory)/status-in",
                source: "test",
                instance: "test",
                heartbeatInterval: .seconds(60)
            )
            let running = Task { try await publisher.run() }
            defer { running.cancel() }
            func entry(_ number: Int) -> String { "entry-\(number)." }
            let total = 30
            for number in 1...total { publisher.publish("log.info", level: "info", message: entry(number)) }
            let logged = try await stack.waitUntil(timeout: .seconds(20)) {
                try await stack.baton(["logs", "--service", "test"]).output.contains(entry(total))
            }
            try #require(logged, "logger: \(stack.stderr("logger").suffix(800))")
            // Without --follow, the whole history (today's behaviour); with -n, its last records.
            #expect(try await stack.baton(["logs", "--service", "test"]).output.split(separator: "\n").count == total)
            let lastThree = try await stack.baton(["logs", "--service", "test", "-n", "3"]).output.split(separator: "\n")
            #expect(lastThree.count == 3 && lastThree.enumerated().allSatisfy { $1.contains(entry(total - 2 + $0)) }, "\(lastThree)")

            try stack.start("follow", "baton", ["logs", "--follow", "-n", "5", "--service", "test", "--config", stack.configPath])
            try stack.start("follow-default", "baton", ["logs", "--follow", "--service", "test", "--config", stack.configPath])
            let started = try await stack.waitUntil(timeout: .seconds(20)) {
                Self.lines(stack, "follow").count >= 5 && Self.lines(stack, "follow-default").count >= 10
            }
            #expect(started, "\(Self.lines(stack, "follow"))")
            publisher.publish("log.info", level: "info", message: entry(total + 1))
            let followed = try await stack.waitUntil(timeout: .seconds(20)) {
                Self.lines(stack, "follow").count >= 6 && Self.lines(stack, "follow-default").count >= 11
            }
            #expect(followed)
            // The first lines are exactly the last five records, then the new one.
            let shown = Self.lines(stack, "follow")
            #expect(shown.count == 6, "\(shown)")
            for (index, line) in shown.enumerated() { #expect(line.contains(entry(total - 4 + index)), "\(shown)") }
            let byDefault = Self.lines(stack, "follow-default")
            #expect(byDefault.count == 11, "\(byDefault)")
            for (index, line) in byDefault.enumerated() { #expect(line.contains(entry(total - 9 + index)), "\(byDefault)") }

            // -n 0: only records written after it started.
            try stack.start("follow-new", "baton", ["logs", "--follow", "-n", "0", "--service", "test", "--config", stack.configPath])
            var late = 0
            let newOnly = try await stack.waitUntil(timeout: .seconds(20)) {
                late += 1
                publisher.publish("log.info", level: "info", message: "late-\(late).")
                return !Self.lines(stack, "follow-new").isEmpty
            }
            #expect(newOnly)
            #expect(Self.lines(stack, "follow-new").first?.contains("late-") == true, "\(Self.lines(stack, "follow-new"))")
        }
    }
}
