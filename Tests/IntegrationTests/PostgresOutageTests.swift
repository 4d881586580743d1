import Foundation
import Messaging
import ProcessorService
import TestSupport
import Testing

/// Real processes storing into a real PostgreSQL server that is killed (`kill -9` of its postmaster) mid-run and
/// started again 5 s later: nothing is lost, nothing is stored twice, nothing is dead-lettered, and the processors
/// say `store.down` and `store.up`.
struct PostgresOutageTests {
    /// A slot every 200 ms (in milliseconds); every slot is run (`misfire: all`, `overlap: allow`), so the oracle
    /// is the grid.
    static let every = 200

    /// What the algorithm writes for a run: one JSON line naming it (the same bytes for every attempt).
    static func payload(_ runID: String) -> Data { Data("{\"run\":\"\(runID)\"}\n".utf8) }

    @Test(.timeLimit(.minutes(4)))
    func killingThePostgresServerMidRunLosesNothing() async throws {
        let server = try await PostgresServer.start()
        defer { server.remove() }
        let url = try await server.createDatabase()
        let yaml = """
            store:
              url: \(url)
            processor:
              retries: 2
              backoff: 100ms
              backoff_max: 200ms
              lease: 3s
            jobs:
              - name: pg
                every: 200ms
                anchor: 1970-01-01T00:00:00.000Z
                misfire: all
                overlap: allow
                command: [sh, -c, 'printf "{\\"run\\":\\"%s\\"}\\n" "$BATON_RUN_ID" > "$BATON_OUTPUT"']
            """
        try await TestStack.with("pgdown", yaml: yaml) { stack in
            let store = ResultStore(url: url)
            try stack.startServices(processors: 2)
            let running = try await stack.waitUntil(timeout: .seconds(60)) { (try? await store.resultCount()) ?? 0 >= 10 }
            #expect(running, "processor: \(stack.stderr("processor-1").suffix(800))")
            // The slots checked: from shortly before the kill (the scheduler fires by then: results are stored) to
            // shortly before the scheduler's stop, on the grid.
            let windowStart = Self.slot(after: Date().addingTimeInterval(-1.5))
            try server.kill9()
            let outageStart = ContinuousClock.now
            // `baton runs --json` while the history's database is away: the JSON document still comes, with
            // `error` saying why, and the exit status is 1.
            let unreadable = try await stack.baton(["runs", "--job", "pg", "--json", "--timeout", "4s"])
            #expect(unreadable.status == 1, "\(unreadable.output)")
            let document = unreadable.output.firstIndex(of: "{").flatMap { start in
                unreadable.output.range(of: "\n}", options: .backwards).map { unreadable.output[start..<$0.upperBound] }
            }
            let failed = document.flatMap { try? Timestamp.decoder().decode(RunsReport.self, from: Data($0.utf8)) }
            #expect(failed?.error?.contains("cannot read the run history") == true, "\(unreadable.output)")
            try await Deliberately.wait(
                .seconds(5) - (ContinuousClock.now - outageStart),
                because: "the outage lasts 5 s, while runs keep being made"
            )
            try await server.start()
            try await Deliberately.wait(.seconds(4), because: "runs made after the outage are stored too")

            // `baton audit` reads the same PostgreSQL store (store.url): every part of a finished run stored once.
            let audit = try await stack.baton(["audit", "--json"])
            #expect(audit.status == 0, "\(audit.output)")
            // The JSON report, after any line the command logged on standard error (which comes with it here).
            let json = audit.output.firstIndex(of: "{").map { String(audit.output[$0...]) } ?? audit.output
            let report = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
            let counts = report?["counts"] as? [String: Any]
            #expect((counts?["stored"] as? Int ?? 0) >= 10, "the audit found the parts in PostgreSQL: \(audit.output)")
            #expect(!audit.output.contains("NOTICE"), "\(audit.output)")

            let scheduler = try #require(stack.process("scheduler"))
            let windowEnd = Self.slot(after: Date().addingTimeInterval(-2))
            kill(scheduler.processIdentifier, SIGTERM)
            #expect(try await TestStack.exited(scheduler))
            let slots = stride(from: windowStart, through: windowEnd, by: Self.every).map {
                RunID.make(job: "pg", logicalTime: Date(timeIntervalSince1970: Double($0) / 1000))
            }
            #expect(slots.count >= 40, "the window holds the outage and more")

            let all = try await stack.waitUntil(timeout: .seconds(120)) {
                let stored = Set(((try? await store.storedParts()) ?? []).map(\.runID))
                return slots.allSatisfy(stored.contains)
            }
            let parts = try await store.storedParts()
            let missing = slots.filter { slot in !parts.contains { $0.runID == slot } }
            #expect(all, "\(missing.count) slot(s) not stored, e.g. \(missing.prefix(3)); outbox: \(stack.outboxCounts())")
            for slot in slots {
                let rows = parts.filter { $0.runID == slot }
                #expect(rows.count <= 1, "\(slot) stored \(rows.count) times")
                guard let row = rows.first else { continue }
                #expect(row.sha256 == SHA256.hex(of: Self.payload(slot)), "\(slot)")
                #expect(row.size == Self.payload(slot).count, "\(slot)")
                #expect(try await store.records(runID: slot) == [String(decoding: Self.payload(slot).dropLast(), as: UTF8.self)])
            }
            #expect(try await store.conflicts().isEmpty)
            // `baton replay` processes into the same PostgreSQL store: every part of the window is already there.
            let from = Timestamp.format(Date(timeIntervalSince1970: Double(windowStart) / 1000))
            let to = Timestamp.format(Date(timeIntervalSince1970: Double(windowEnd) / 1000))
            let replay = try await stack.baton(["replay", "--job", "pg", "--from", from, "--to", to])
            #expect(replay.status == 0, "\(replay.output)")
            #expect(replay.output.contains("0 stored, \(slots.count) already stored"), "\(replay.output)")
            #expect(stack.outboxCounts()["dead"] == nil, "outbox: \(stack.outboxCounts())")

            let events = stack.loggedEvents()
            let downs = events.filter { $0.type == EventType.storeDown }
            let ups = events.filter { $0.type == EventType.storeUp }
            #expect(!downs.isEmpty, "no store.down; processor: \(stack.stderr("processor-1").suffix(800))")
            for instance in Set(downs.map(\.instance)) {
                #expect(downs.filter { $0.instance == instance }.count == 1, "\(instance) said store.down more than once")
                #expect(ups.contains { $0.instance == instance }, "\(instance) never said store.up")
            }
            #expect(downs.allSatisfy { $0.attributes?["error"]?.isEmpty == false })
            #expect(!events.contains { $0.type == EventType.resultFailed }, "a result failed during the outage")

            // The logger's run history lives in the same database: it held what came during the outage and wrote it
            // after, so every slot of the window is there, finished, with the scheduler's fire time.
            var history: [String: RunsReport.Run] = [:]
            let recorded = try await stack.waitUntil(timeout: .seconds(60)) {
                let outcome = try await stack.baton(["runs", "--job", "pg", "--limit", "10000", "--json"])
                guard outcome.status == 0, let report = try? Timestamp.decoder().decode(RunsReport.self, from: Data(outcome.output.utf8))
                else { return false }
                history = Dictionary(report.runs.map { ($0.run, $0) }, uniquingKeysWith: { $1 })
                return slots.allSatisfy { history[$0]?.state == "succeeded" && history[$0]?.scheduledAt != nil }
            }
            let incomplete = slots.filter { history[$0]?.state != "succeeded" || history[$0]?.scheduledAt == nil }
            let examples = incomplete.prefix(3).map { history[$0].map { "\($0)" } ?? $0 }
            #expect(recorded, "\(incomplete.count) slot(s) missing or incomplete in the history, e.g. \(examples)")
        }
    }

    /// The first grid slot at or after `date`, in milliseconds since 1970.
    static func slot(after date: Date) -> Int {
        let milliseconds = Int((date.timeIntervalSince1970 * 1000).rounded(.up))
        return (milliseconds + every - 1) / every * every
    }
}
