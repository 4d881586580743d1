import Foundation
import Glibc
import Messaging
import Persistence
import TestSupport
import Testing

/// `baton runs` against real processes: the history holds every slot of the schedule's grid with its timing, a
/// failing command's runs with their stderr, and survives a logger killed with `kill -9`.
struct RunHistoryIntegrationTests {
    static func runs(_ stack: TestStack, _ arguments: [String] = []) async throws -> RunsReport? {
        let outcome = try await stack.baton(["runs", "--json", "--limit", "10000"] + arguments)
        guard outcome.status == 0 else { return nil }
        return try? Timestamp.decoder().decode(RunsReport.self, from: Data(outcome.output.utf8))
    }

    /// The slots of `runs`, oldest first, each checked against the grid of a job every second: whole seconds,
    /// none missing between the first and the last seen.
    static func gaps(in runs: [RunsReport.Run]) -> [Date] {
        let slots = runs.map(\.slot).sorted()
        guard let first = slots.first, let last = slots.last else { return [] }
        let seen = Set(slots.map { Int64(($0.timeIntervalSince1970 * 1000).rounded()) })
        var missing: [Date] = []
        var slot = Int64((first.timeIntervalSince1970 * 1000).rounded())
        while slot <= Int64((last.timeIntervalSince1970 * 1000).rounded()) {
            if !seen.contains(slot) { missing.append(Date(timeIntervalSince1970: Double(slot) / 1000)) }
            slot += 1000
        }
        return missing
    }

    /// Waits until `baton runs` lists `count` succeeded runs of `job`.
    static func expectSucceeded(_ count: Int, of job: String, in stack: TestStack) async throws {
        var report: RunsReport?
        let enough = try await stack.waitUntil(timeout: .seconds(60)) {
            report = try await Self.runs(stack, ["--job", job, "--state", "succeeded"])
            return (report?.runs.count ?? 0) >= count
        }
        #expect(enough, "\(String(describing: report))")
    }

    @Test(.timeLimit(.minutes(3)))
    func everySlotIsThereWithItsTimingAndSurvivesAKilledLogger() async throws {
        let yaml = """
            jobs:
              - name: tick
                every: 1s
                misfire: all
                builtin: demo
                duration: 50ms
                result_size: 64
              - name: broken
                every: 2s
                misfire: all
                command: [sh, -c, "echo broken-$BATON_RUN_ID >&2; exit 4"]
                retries: 0

            """
        try await TestStack.with("history", yaml: yaml) { stack in
            try stack.startServices()
            try await Self.expectSucceeded(5, of: "tick", in: stack)

            let tick = try #require(try await Self.runs(stack, ["--job", "tick"])).runs
            #expect(Self.gaps(in: tick).isEmpty, "slots missing from the history: \(Self.gaps(in: tick))")
            for run in tick {
                #expect(run.job == "tick")
                #expect(run.run == RunID.make(job: "tick", logicalTime: run.slot), "\(run.run) is not its slot's id")
                #expect(run.slot.timeIntervalSince1970.truncatingRemainder(dividingBy: 1) == 0, "\(run.run) is off the grid")
            }
            for run in tick where run.state == "succeeded" {
                // The order of a run's life, from the slot to the store.
                let times = [run.slot, run.scheduledAt, run.startedAt, run.finishedAt, run.endedAt]
                #expect(times.allSatisfy { $0 != nil }, "\(run)")
                let known = times.compactMap { $0 }
                #expect(zip(known, known.dropFirst()).allSatisfy { $0.timeIntervalSince($1) <= 0.001 }, "out of order: \(run)")
                #expect((run.latenessMs ?? -1) >= 0)
                #expect(run.attempts == 1 && run.parts == 1 && (run.size ?? 0) >= 64 && run.dead == 0 && run.error == nil, "\(run)")
                #expect(run.stages.count == 1)
                #expect(run.stages.first?.name == "store" && run.stages.first?.parts == 1 && run.stages.first?.succeeded == 1)
            }
            #expect(tick.map(\.slot) == tick.map(\.slot).sorted(by: >), "newest slot first")

            let brokenDone = try await stack.waitUntil(timeout: .seconds(30)) {
                (try await Self.runs(stack, ["--job", "broken", "--state", "failed"]))?.runs.isEmpty == false
            }
            #expect(brokenDone)
            let broken = try #require(try await Self.runs(stack, ["--job", "broken", "--state", "failed"])).runs
            for run in broken {
                #expect(run.error?.contains("broken-\(run.run)") == true, "\(run.run): \(run.error ?? "no error")")
                #expect(run.endedAt != nil)
            }
            let first = try #require(broken.first)
            let detail = try await stack.baton(["runs", "--run", first.run])
            #expect(detail.status == 0)
            #expect(
                detail.output.contains(first.run) && detail.output.contains("failed") && detail.output.contains("broken-"),
                "\(detail.output)"
            )

            // kill -9 of the logger: what it had recorded is still there after the restart, and new runs come in.
            let before = Set(try #require(try await Self.runs(stack)).runs.filter { $0.endedAt != nil }.map(\.run))
            let logger = try #require(stack.process("logger"))
            kill(logger.processIdentifier, SIGKILL)
            #expect(try await TestStack.exited(logger))
            #expect(try await stack.baton(["runs", "--timeout", "500ms"]).status == 3)
            try stack.start("logger", "baton-logger")
            var after: [RunsReport.Run] = []
            let more = try await stack.waitUntil(timeout: .seconds(60)) {
                after = (try await Self.runs(stack))?.runs ?? []
                return after.filter { $0.endedAt != nil }.count >= before.count + 3
            }
            #expect(more, "\(after.count) runs after the restart, \(before.count) before")
            let kept = Set(after.map(\.run))
            #expect(before.isSubset(of: kept), "lost from the history: \(before.subtracting(kept).sorted())")

            // Asking for what cannot be: refused with a clear message, not a crash.
            let bad = try await stack.baton(["runs", "--state", "exploded"])
            #expect(bad.status != 0 && bad.output.contains("--state"), "\(bad.output)")
        }
    }

    /// A deployment whose results go to PostgreSQL keeps its run history there too: `baton runs` answers from the
    /// `history_runs` table, which holds every slot of the grid and every run the store holds, and no SQLite
    /// history is made.
    @Test(.timeLimit(.minutes(3)))
    func theHistoryLivesInPostgreSQLWhenTheStoreDoes() async throws {
        let url = try await PostgresServer.shared().createDatabase()
        let yaml = """
            store:
              url: \(url)
            jobs:
              - name: tick
                every: 1s
                misfire: all
                builtin: demo
                duration: 50ms
                result_size: 64

            """
        try await TestStack.with("pghistory", yaml: yaml) { stack in
            try stack.startServices()
            try await Self.expectSucceeded(5, of: "tick", in: stack)
            let tick = try #require(try await Self.runs(stack, ["--job", "tick"])).runs
            #expect(Self.gaps(in: tick).isEmpty, "slots missing from the history: \(Self.gaps(in: tick))")

            // What PostgreSQL holds, read apart from the logger: every stored result's run is in the history, and
            // every run the history says succeeded was stored.
            let connection = PostgresConnection(url: url, name: "test")
            @Sendable func column(_ sql: String) async throws -> [[String?]] { try await connection.run { try $0.query(sql) } }
            // Read in this order, so a run that succeeds meanwhile is stored before the results are read.
            let history = try await column("SELECT run, state FROM history_runs WHERE job = 'tick'")
            let storedRuns = Set(try await column("SELECT DISTINCT run_id FROM results WHERE job = 'tick'").compactMap { $0[0] })
            let succeeded = Set(history.filter { $0[1] == "succeeded" }.compactMap { $0[0] })
            #expect(!storedRuns.isEmpty)
            #expect(succeeded.subtracting(storedRuns).isEmpty, "succeeded but not stored: \(succeeded.subtracting(storedRuns))")
            // The logger records in batches, a moment behind the bus: every stored run is there soon.
            var missing = storedRuns
            let recorded = try await stack.waitUntil(timeout: .seconds(30)) {
                missing = storedRuns.subtracting(try await column("SELECT run FROM history_runs").compactMap { $0[0] })
                return missing.isEmpty
            }
            #expect(recorded, "stored but not in the history: \(missing.sorted())")
            #expect(Set(tick.filter { $0.state == "succeeded" }.map(\.run)).isSubset(of: succeeded))
            #expect(!FileManager.default.fileExists(atPath: stack.dataDirectory + "/logger/history.sqlite"))
        }
    }
}
