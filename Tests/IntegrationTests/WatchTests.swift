import Foundation
import Glibc
import Messaging
import Testing

/// `baton watch` says when it cannot reach the logger, and when it is back.
@Suite(.serialized)
struct WatchTests {
    @Test(.timeLimit(.minutes(1)))
    func watchSaysWhenTheLoggerIsUnreachableAndWhenItIsBack() async throws {
        // Heartbeats every 200 ms: watch calls the bus unreachable after 2 × 200 ms + 1 s of silence.
        try await TestStack.with("watch", yaml: "log:\n  heartbeat: 200ms\n") { stack in
            func output() -> String { (try? String(contentsOfFile: "\(stack.directory)/watch.out", encoding: .utf8)) ?? "" }
            func count(_ text: String) -> Int { output().components(separatedBy: text).count - 1 }
            let unreachable = "cannot reach the logger"
            let back = "is back"
            // Filtered to run events: heartbeats still tell it the logger is there.
            try stack.start("watch", "baton", ["watch", "--type", "run.", "--config", stack.configPath])
            let noticed = try await stack.waitUntil(timeout: .seconds(15)) { count(unreachable) == 1 }
            #expect(noticed, "watch: \(output()) \(stack.stderr("watch"))")
            try stack.start("logger", "baton-logger")
            let reached = try await stack.waitUntil(timeout: .seconds(15)) { count(back) == 1 }
            #expect(reached, "watch: \(output())")
            // Heartbeats keep it reachable: no new notice while the logger runs, and none printed as events. The
            // logger's own heartbeats in its log show when more than the 1.4 s of silence that would trigger
            // a notice has passed.
            let backAt = Date()
            let heartbeats = try await stack.waitUntil(timeout: .seconds(20)) {
                stack.loggedEvents().contains { $0.type == EventType.serviceHeartbeat && $0.time.timeIntervalSince(backAt) > 2 }
            }
            #expect(heartbeats, "no heartbeat in the logger's log")
            #expect(count(unreachable) == 1, "\(output())")
            #expect(!output().contains("service.heartbeat"), "\(output())")
            kill(try #require(stack.process("logger")).processIdentifier, SIGKILL)
            let lost = try await stack.waitUntil(timeout: .seconds(15)) { count(unreachable) == 2 }
            #expect(lost, "watch: \(output())")
            #expect(output().contains(stack.directory + "/status-out"))
        }
    }
}
