import Foundation
import GRDB
import Glibc
import Testing

/// `baton trigger` against a real scheduler and algorithm: it respects pause (unless `--force`) and the job's
/// overlap policy, and says what it did.
@Suite(.serialized)
struct TriggerTests {
    /// The states of a job's fires in the scheduler's ledger, by logical time.
    static func fires(_ stack: TestStack, job: String) -> [(run: String, state: String)] {
        (try? stack.read(stack.schedulerPath) { db in
            try Row.fetchAll(db, sql: "SELECT run_id, state FROM fires WHERE job = ? ORDER BY logical_time", arguments: [job])
                .map { (run: $0["run_id"] as String, state: $0["state"] as String) }
        }) ?? []
    }

    @Test(.timeLimit(.minutes(2)))
    func triggerRespectsPauseAndTheOverlapPolicy() async throws {
        let gate = "/tmp/bt-trigger-gate-\(getpid())-\(UUID().uuidString.prefix(6))"
        defer { try? FileManager.default.removeItem(atPath: gate) }
        // Runs wait for the gate file, so a run stays in flight until the test opens it. No job fires by itself.
        func job(_ name: String, _ overlap: String) -> String {
            """
              - name: \(name)
                at: 2099-01-01T00:00:00Z
                overlap: \(overlap)
                command: [sh, -c, "while [ ! -e \(gate) ]; do sleep 0.05; done; echo '{}' > $BATON_OUTPUT"]
                timeout: 1m
            """
        }
        let yaml =
            "algorithm:\n  concurrency: 8\njobs:\n"
            + [job("solo", "forbid"), job("line", "queue"), job("held", "allow")].joined(separator: "\n")
        try await TestStack.with("trigger", yaml: yaml) { stack in
            try stack.start("scheduler", "baton-scheduler")
            try stack.start("algorithm", "baton-algorithm")
            let answering = try await stack.waitUntil(timeout: .seconds(30)) { try await stack.baton(["jobs"]).status == 0 }
            try #require(answering, "scheduler: \(stack.stderr("scheduler").suffix(800))")

            // forbid: a second trigger while the first run is in flight is refused, with the reason.
            let first = try await stack.baton(["trigger", "solo"])
            #expect(first.status == 0, "\(first.output)")
            let soloRunning = try await stack.waitUntil(timeout: .seconds(20)) { Self.fires(stack, job: "solo").first?.state == "running" }
            #expect(soloRunning, "\(Self.fires(stack, job: "solo"))")
            let refused = try await stack.baton(["trigger", "solo"])
            let soloRun = try #require(Self.fires(stack, job: "solo").first?.run)
            #expect(refused.status == 1, "\(refused.output)")
            #expect(refused.output.contains("forbid") && refused.output.contains(soloRun), "\(refused.output)")
            #expect(Self.fires(stack, job: "solo").count == 1)

            // queue: the second trigger is queued behind the first, and runs after it.
            #expect(try await stack.baton(["trigger", "line"]).status == 0)
            let lineRunning = try await stack.waitUntil(timeout: .seconds(20)) { Self.fires(stack, job: "line").first?.state == "running" }
            #expect(lineRunning, "\(Self.fires(stack, job: "line"))")
            let queued = try await stack.baton(["trigger", "line"])
            #expect(queued.status == 0, "\(queued.output)")
            #expect(queued.output.contains("queued"), "\(queued.output)")
            #expect(Self.fires(stack, job: "line").map(\.state) == ["running", "queued"])

            // A paused job is refused, unless forced.
            #expect(try await stack.baton(["pause", "held"]).status == 0)
            let paused = try await stack.baton(["trigger", "held"])
            #expect(paused.status == 1, "\(paused.output)")
            #expect(paused.output.contains("paused"), "\(paused.output)")
            #expect(Self.fires(stack, job: "held").isEmpty)
            let forced = try await stack.baton(["trigger", "held", "--force"])
            #expect(forced.status == 0, "\(forced.output)")

            FileManager.default.createFile(atPath: gate, contents: nil)
            let done = try await stack.waitUntil(timeout: .seconds(30)) {
                Self.fires(stack, job: "line").map(\.state) == ["finished", "finished"]
                    && Self.fires(stack, job: "held").map(\.state) == ["finished"]
                    && Self.fires(stack, job: "solo").map(\.state) == ["finished"]
            }
            #expect(
                done,
                "solo \(Self.fires(stack, job: "solo")) line \(Self.fires(stack, job: "line")) held \(Self.fires(stack, job: "held"))"
            )
        }
    }
}
