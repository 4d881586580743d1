import Foundation
import GRDB
import Glibc
import Messaging
import Testing

/// `kill -9` of every kind of service at random moments under `baton up`: every result is still stored
/// exactly once, byte for byte as its raw file.
@Suite(.serialized)
struct ChaosTests {
    static let victims = ["baton-algorithm", "--name processor-1", "--name processor-2", "baton-scheduler", "baton-logger"]

    static func yaml(every: String) -> String {
        """
        processor:
          count: 2
          lease: 2s
          retries: 100
          backoff: 100ms
          backoff_max: 1s
        jobs:
          - name: chaos
            every: \(every)
            misfire: all
            overlap: allow
            builtin: demo
            duration: 1ms
            result_size: 64
        """
    }

    @Test(.timeLimit(.minutes(6)))
    func killingEveryServiceLosesAndDuplicatesNothing() async throws {
        let target = Int(ProcessInfo.processInfo.environment["BATON_CHAOS_RESULTS"] ?? "") ?? 1000
        try await TestStack.with("chaos", yaml: Self.yaml(every: "50ms")) { stack in
            let up = try stack.start("up", "baton", ["up", "--config", stack.configPath])
            let started = try await stack.waitUntil(timeout: .seconds(30)) { stack.storedCount() >= 5 }
            #expect(started, "\(stack.stderr("up"))")

            // Each kind of service is killed three times, in random order, 0.5–2.5 s apart.
            var generator = SystemRandomNumberGenerator()
            var kills = (Self.victims + Self.victims + Self.victims).shuffled(using: &generator)
            var killed: [String: Int] = [:]
            while !kills.isEmpty || Self.fired(stack) < target {
                try await Task.sleep(for: .milliseconds(Int.random(in: 500...2500, using: &generator)))
                guard let victim = kills.popLast() else { continue }
                let pids = TestStack.descendants(of: up.processIdentifier).filter {
                    TestStack.commandLine(of: $0)?.contains(victim) == true
                }
                if let pid = pids.first, kill(pid, SIGKILL) == 0 {
                    killed[victim, default: 0] += 1
                } else {
                    // Still being restarted: try it again later.
                    kills.insert(victim, at: 0)
                }
            }
            #expect(killed.values.allSatisfy { $0 == 3 } && killed.count == Self.victims.count, "\(killed)")

            // Stop firing: stop the stack, then bring it back with a schedule that fires no more, so that
            // what was fired is finished, re-sent and stored.
            kill(up.processIdentifier, SIGTERM)
            let stopped = try await stack.waitUntil(timeout: .seconds(40)) { !up.isRunning }
            #expect(stopped)
            try stack.rewrite(yaml: Self.yaml(every: "1d"))
            let again = try stack.start("up-2", "baton", ["up", "--config", stack.configPath])
            let fired = try Self.firedRuns(stack)
            let settled = try await stack.waitUntil(timeout: .seconds(120)) {
                let counts = stack.outboxCounts()
                let stored = Set((try? stack.read { db in try String.fetchAll(db, sql: "SELECT run_id FROM results") }) ?? [])
                return (counts["pending"] ?? 0) + (counts["sent"] ?? 0) == 0 && stored.isSuperset(of: fired)
            }
            kill(again.processIdentifier, SIGTERM)
            _ = try await stack.waitUntil(timeout: .seconds(40)) { !again.isRunning }
            let states = try stack.read(stack.schedulerPath) { db in
                try Row.fetchAll(db, sql: "SELECT state, COUNT(*) AS n FROM fires GROUP BY state").map {
                    "\($0["state"] as String)=\($0["n"] as Int)"
                }
            }
            #expect(settled, "fired \(fired.count) (\(states)), stored \(stack.storedCount()), outbox \(stack.outboxCounts())")
            #expect(fired.count >= target)

            // Every fired run stored exactly once, identical to its raw file.
            let stored = try stack.read { db in
                try Row.fetchAll(db, sql: "SELECT run_id, part, sha256, size FROM results ORDER BY run_id")
            }
            let storedIDs = stored.map { $0["run_id"] as String }
            #expect(Set(storedIDs).count == storedIDs.count, "a result was stored twice")
            let missing = Set(fired).subtracting(storedIDs)
            let unexpected = Set(storedIDs).subtracting(fired)
            #expect(missing.isEmpty, "\(missing.count) fired runs not stored, e.g. \(missing.sorted().prefix(5))")
            #expect(unexpected.isEmpty, "\(unexpected.count) stored runs never fired, e.g. \(unexpected.sorted().prefix(5))")
            var mismatches: [String] = []
            for row in stored {
                let runID: String = row["run_id"]
                let raw = try Data(contentsOf: URL(fileURLWithPath: "\(stack.dataDirectory)/raw/chaos/\(runID).result"))
                let records = try stack.read { db in
                    try String.fetchAll(db, sql: "SELECT data FROM records WHERE run_id = ? ORDER BY line", arguments: [runID])
                }
                let rebuilt = Data((records.joined(separator: "\n") + "\n").utf8)
                if rebuilt != raw || SHA256.hex(of: raw) != row["sha256"] || raw.count != row["size"] { mismatches.append(runID) }
            }
            #expect(mismatches.isEmpty, "\(mismatches.count) results differ from their raw files, e.g. \(mismatches.prefix(3))")
        }
    }

    static func fired(_ stack: TestStack) -> Int {
        (try? stack.read(stack.schedulerPath) { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM fires WHERE state != 'skipped'") ?? 0
        }) ?? 0
    }

    static func firedRuns(_ stack: TestStack) throws -> [String] {
        // Slots the scheduler recorded as skipped (none here: misfire all, overlap allow) never ran.
        try stack.read(stack.schedulerPath) { db in try String.fetchAll(db, sql: "SELECT run_id FROM fires WHERE state != 'skipped'") }
    }
}
