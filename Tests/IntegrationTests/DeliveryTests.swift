import Foundation
import GRDB
import Glibc
import Messaging
import Testing

@Suite(.serialized)
struct DeliveryTests {
    static func quickJob(every: String = "50ms", anchor: Date? = nil, extra: String = "") -> String {
        """
        \(extra)
        jobs:
          - name: quick
            every: \(every)
            anchor: \(Timestamp.format(anchor ?? Date(timeIntervalSince1970: 0)))
            builtin: demo
            duration: 1ms
            result_size: 64
        """
    }

    /// A run of 2,000 small parts, two processors storing them in batches, one of them `kill -9`ed mid-way and
    /// restarted: every part is stored once, with the bytes the algorithm wrote for it (the oracle is the part
    /// number), and the outbox ends with every task acknowledged.
    @Test(.timeLimit(.minutes(3)))
    func manySmallPartsAreStoredOnceEachThroughAProcessorKill() async throws {
        let parts = 2000
        let yaml = """
            processor:
              lease: 2s
            jobs:
              - name: many
                every: 1h
                anchor: \(Timestamp.format(Date().addingTimeInterval(1800)))
                command: [awk, 'BEGIN { for (i = 0; i < \(parts); i++) { f = sprintf("%s/%06d", ENVIRON["BATON_OUTPUT_DIR"], i); printf "{\\"part\\":%d}\\n", i > f; close(f) } }']
            """
        try await TestStack.with("many", yaml: yaml) { stack in
            try stack.startServices(processors: 2)
            let run = try await stack.trigger("many")
            let started = try await stack.waitUntil(timeout: .seconds(60)) { stack.storedCount() >= 200 }
            #expect(started, "stored \(stack.storedCount()); algorithm: \(stack.stderr("algorithm").suffix(600))")
            let victim = try #require(stack.process("processor-2"))
            kill(victim.processIdentifier, SIGKILL)
            #expect(try await TestStack.exited(victim))
            try stack.start("processor-2", "baton-processor", ["--name", "processor-2"])
            let done = try await stack.waitUntil(timeout: .seconds(90)) { stack.outboxCounts()["acked"] == parts }
            #expect(done, "outbox: \(stack.outboxCounts()); stored: \(stack.storedCount())")
            let rows = try stack.read { db in
                try Row.fetchAll(db, sql: "SELECT part, data FROM records WHERE run_id = ? ORDER BY part", arguments: [run])
                    .map { ($0["part"] as Int, $0["data"] as String) }
            }
            #expect(rows.count == parts, "a part stored twice or missing: \(rows.count) records")
            #expect(rows.map(\.0) == Array(0..<parts))
            #expect(rows.allSatisfy { $0.1 == "{\"part\":\($0.0)}" }, "a part stored with bytes not its own")
            #expect(
                try stack.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM results WHERE run_id = ?", arguments: [run]) }
                    == parts
            )
            #expect(stack.loggedEvents().contains { $0.type == EventType.batchStored }, "no batch was stored")
        }
    }

    /// With no processor running, runs complete and pile up on disk; a processor started later stores them all, once each.
    @Test(.timeLimit(.minutes(3)))
    func resultsWaitOnDiskForAProcessor() async throws {
        try await TestStack.with("noproc", yaml: Self.quickJob()) { stack in
            try stack.start("logger", "baton-logger")
            let scheduler = try stack.start("scheduler", "baton-scheduler")
            try stack.start("algorithm", "baton-algorithm")
            let piled = try await stack.waitUntil(timeout: .seconds(60)) { (stack.outboxCounts()["pending"] ?? 0) >= 100 }
            #expect(piled, "outbox: \(stack.outboxCounts()); algorithm: \(stack.stderr("algorithm").suffix(500))")
            kill(scheduler.processIdentifier, SIGTERM)
            #expect(try await TestStack.exited(scheduler))
            // The last requests finish (no run accepted or running in the algorithm's ledger), then count what waits.
            let settled = try await stack.waitUntil(timeout: .seconds(30)) {
                (try? stack.read(stack.outboxPath) { db in
                    try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM runs WHERE state IN ('accepted', 'running')")
                }) == 0
            }
            #expect(settled, "runs still in flight at the algorithm")
            let waiting = stack.outboxCounts()
            #expect(waiting["acked"] == nil && waiting["sent"] == nil)
            let total = waiting.values.reduce(0, +)
            #expect(total >= 100)

            try stack.start("processor-1", "baton-processor", ["--name", "late"])
            let drained = try await stack.waitUntil(timeout: .seconds(60)) { stack.outboxCounts()["acked"] == total }
            #expect(drained, "outbox: \(stack.outboxCounts()), stored: \(stack.storedCount())")
            let (rows, distinct) = try stack.read { db in
                (
                    try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM results") ?? 0,
                    try Int.fetchOne(db, sql: "SELECT COUNT(DISTINCT run_id || '/' || part) FROM results") ?? 0
                )
            }
            #expect(rows == total)
            #expect(distinct == total)
        }
    }

    /// `baton replay` of a range into a fresh database gives rows identical to the original ones; again, it changes nothing.
    @Test(.timeLimit(.minutes(2)))
    func replayOfARangeIntoAFreshDatabaseIsIdentical() async throws {
        try await TestStack.with("replay", yaml: Self.quickJob(every: "200ms")) { stack in
            try stack.startServices(processors: 1)
            let enough = try await stack.waitUntil(timeout: .seconds(60)) { stack.storedCount() >= 8 }
            #expect(enough)
            await stack.stop()
            // Only the algorithm again: `baton replay` fetches the raw results from it.
            try stack.start("algorithm", "baton-algorithm")
            let times = try stack.read { db in try String.fetchAll(db, sql: "SELECT logical_time FROM results ORDER BY logical_time") }
            let from = times[1]
            let to = times[times.count - 2]
            let fresh = stack.directory + "/fresh.sqlite"
            let replay = try await stack.baton(["replay", "--job", "quick", "--from", from, "--to", to, "--store", fresh])
            #expect(replay.status == 0, "\(replay.output)")
            let original = try Self.rows(stack, path: nil, from: from, to: to)
            let replayed = try Self.rows(stack, path: fresh, from: from, to: to)
            let replayedResults = times.count - 2
            #expect(replay.output.contains("\(replayedResults) stored, 0 already stored"), "\(replay.output)")
            #expect(original.count == replayedResults * 2, "one results row and one record per 64-byte result")
            #expect(replayed == original)
            let again = try await stack.baton(["replay", "--job", "quick", "--from", from, "--to", to, "--store", fresh])
            #expect(again.output.contains("0 stored, \(replayedResults) already stored"), "\(again.output)")
            #expect(try Self.rows(stack, path: fresh, from: from, to: to) == original)
        }
    }

    /// A result whose processing always fails is dead-lettered after its retries, listed as such, and
    /// `baton replay --dead` stores it once the processor is fixed.
    @Test(.timeLimit(.minutes(2)))
    func failingResultIsDeadLetteredAndReplayedAfterTheFix() async throws {
        let marker = "/tmp/bt-fixed-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: marker) }
        let processor = """
            processor:
              command: [sh, -c, "test -e \(marker)"]
              retries: 3
              backoff: 100ms
              backoff_max: 200ms
              lease: 5s
            """
        // One run, triggered: the job's hourly slots are half an hour away. (A slot two seconds ahead is lost
        // when a loaded machine starts the scheduler late: a new job's grid starts at its first start.)
        let yaml = Self.quickJob(every: "1h", anchor: Date().addingTimeInterval(1800), extra: processor)
        try await TestStack.with("dead", yaml: yaml) { stack in
            try stack.startServices(processors: 1)
            _ = try await stack.trigger("quick")
            let dead = try await stack.waitUntil(timeout: .seconds(60)) { stack.outboxCounts()["dead"] == 1 }
            #expect(dead, "outbox: \(stack.outboxCounts()); processor: \(stack.stderr("processor-1").suffix(800))")
            let listed = try await stack.baton(["results", "--state", "dead"])
            #expect(listed.output.contains("dead"))
            // retries: 3 is three retries after the first attempt: 4 attempts in all.
            #expect(listed.output.contains("failures=4"), "\(listed.output)")
            #expect(stack.storedCount() == 0)

            FileManager.default.createFile(atPath: marker, contents: nil)
            let replay = try await stack.baton(["replay", "--dead"])
            #expect(replay.status == 0, "\(replay.output)")
            #expect(replay.output.contains("1 stored"))
            #expect(stack.outboxCounts()["acked"] == 1)
            #expect(stack.storedCount() == 1)
        }
    }

    static func rows(_ stack: TestStack, path: String?, from: String, to: String) throws -> [String] {
        try stack.read(path) { db in
            let results = try Row.fetchAll(
                db,
                sql: """
                    SELECT run_id, part, job, logical_time, size, sha256, format, hex(blob) AS blob FROM results
                    WHERE logical_time >= ? AND logical_time <= ? ORDER BY run_id, part
                    """,
                arguments: [from, to]
            ).map { "\($0)" }
            let records = try Row.fetchAll(
                db,
                sql: """
                    SELECT r.run_id, r.part, r.line, r.data FROM records r JOIN results s USING (run_id, part)
                    WHERE s.logical_time >= ? AND s.logical_time <= ? ORDER BY r.run_id, r.part, r.line
                    """,
                arguments: [from, to]
            ).map { "\($0)" }
            return results + records
        }
    }
}
