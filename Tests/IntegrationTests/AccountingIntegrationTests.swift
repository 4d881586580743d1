import Foundation
import GRDB
import Glibc
import Messaging
import Testing

/// The accounting invariant with real processes: runs whose reports were lost end anyway, backfills do not
/// starve live slots and can be cancelled, and `baton audit` checks it all from the services' state.
@Suite(.serialized)
struct AccountingIntegrationTests {
    /// States of the scheduler's fires, by run id.
    static func fires(
        _ stack: TestStack,
        where condition: String = "1"
    ) throws -> [(run: String, trigger: String, state: String, detail: String?)] {
        // Not there yet while the scheduler creates its state.
        guard FileManager.default.fileExists(atPath: stack.schedulerPath) else { return [] }
        guard try stack.read(stack.schedulerPath, { try $0.tableExists("fires") }) else { return [] }
        return try stack.read(stack.schedulerPath) { db in
            try Row.fetchAll(db, sql: "SELECT run_id, trigger, state, detail FROM fires WHERE \(condition) ORDER BY logical_time").map {
                (run: $0["run_id"], trigger: $0["trigger"], state: $0["state"], detail: $0["detail"])
            }
        }
    }

    /// A run's state in the algorithm's ledger, or nil while the ledger does not exist yet.
    static func runState(_ stack: TestStack, _ run: String) throws -> String? {
        guard FileManager.default.fileExists(atPath: stack.outboxPath) else { return nil }
        return try stack.read(stack.outboxPath) { db in
            // The outbox's file comes before the run ledger's table (the algorithm migrates it just after): a poll
            // in between finds no run yet (seen in CI as "no such table: runs").
            guard try db.tableExists("runs") else { return nil }
            return try String.fetchOne(db, sql: "SELECT state FROM runs WHERE run_id = ?", arguments: [run])
        }
    }

    /// The scheduler killed just as `finished` reports arrive loses them; it then asks the algorithm, which
    /// answers from its run ledger, and every such run ends. (Simulated exactly: the scheduler is stopped and
    /// its ended fires are put back to `accepted`, as if their reports never arrived.)
    @Test(.timeLimit(.minutes(2)))
    func runsWhoseReportsWereLostAreSettledByAskingTheAlgorithm() async throws {
        let yaml = """
            jobs:
              - name: tick
                every: 1s
                overlap: allow
                builtin: demo
                duration: 1ms
                result_size: 64
            """
        try await TestStack.with("reconcile", yaml: yaml) { stack in
            try stack.start("scheduler", "baton-scheduler")
            try stack.start("algorithm", "baton-algorithm")
            let ended = try await stack.waitUntil(timeout: .seconds(30)) {
                try Self.fires(stack, where: "state = 'finished'").count >= 3
            }
            #expect(ended, "\(stack.stderr("scheduler"))")
            let scheduler = try #require(stack.process("scheduler"))
            kill(scheduler.processIdentifier, SIGTERM)
            #expect(try await TestStack.exited(scheduler, within: .seconds(60)))
            let lost = try await DatabaseQueue(path: stack.schedulerPath).write { db in
                try db.execute(sql: "UPDATE fires SET state = 'accepted', ended_at = NULL WHERE state IN ('finished', 'running')")
                return db.changesCount
            }
            #expect(lost >= 3)
            try stack.start("scheduler-2", "baton-scheduler")
            let settled = try await stack.waitUntil(timeout: .seconds(30)) {
                // Every run that had ended before the stop has its outcome again; only the newest may be in flight.
                try Self.fires(stack, where: "state IN ('accepted', 'running', 'fired')").count <= 2
                    && Self.fires(stack, where: "state = 'finished'").count >= lost
            }
            let open = try Self.fires(stack).filter { $0.state != "finished" }
            #expect(settled, "\(open)")
        }
    }

    /// A backfill of 300 slots takes its own lane: live slots keep firing (`overlap: forbid` skips none of them
    /// because of a queued backfill), and `baton cancel --job J --queued` ends the backfill runs still waiting,
    /// each recorded `cancelled`. `baton audit` then finds nothing wrong.
    @Test(.timeLimit(.minutes(2)))
    func backfillRunsInItsOwnLaneAndQueuedRunsCanBeCancelled() async throws {
        let yaml = """
            algorithm:
              concurrency: 1
              backfill_concurrency: 1
            jobs:
              - name: live
                every: 1s
                overlap: forbid
                builtin: demo
                duration: 250ms
                result_size: 64
            """
        try await TestStack.with("backfill", yaml: yaml) { stack in
            try stack.startServices(processors: 1)
            let started = try await stack.waitUntil(timeout: .seconds(30)) {
                try Self.fires(stack, where: "state = 'finished'").count >= 2
            }
            #expect(started)
            let now = Date()
            // 300 runs of at least 250 ms each, one at a time: over a minute of work, so many are still waiting
            // in their lane when the cancel comes, however slow the machine is between the two commands.
            let slots = 300
            let first = Timestamp.milliseconds(now) / 1000 - Int64(slots) - 100
            let from = Timestamp.format(Timestamp.date(milliseconds: first * 1000))
            let to = Timestamp.format(Timestamp.date(milliseconds: (first + Int64(slots) - 1) * 1000))
            let backfill = try await stack.baton(["backfill", "live", "--from", from, "--to", to])
            #expect(backfill.status == 0, "\(backfill.output)")
            // Several live slots pass while the backfill's runs wait in their lane.
            let liveSince = "trigger = 'schedule' AND logical_time > '\(Timestamp.format(now.addingTimeInterval(1)))'"
            let passed = try await stack.waitUntil(timeout: .seconds(60)) {
                try Self.fires(stack, where: liveSince + " AND state != 'fired'").count >= 3
            }
            let live = try Self.fires(stack, where: liveSince)
            #expect(passed, "\(live)")
            // A live slot may be skipped for a live run still running (a slow machine), never for a backfill.
            let backfillRuns = try Self.fires(stack, where: "trigger = 'backfill'").map(\.run)
            let starved = live.filter { fire in fire.state == "skipped" && backfillRuns.contains { fire.detail?.contains($0) == true } }
            #expect(starved.isEmpty, "live slots skipped behind the backfill: \(starved)")
            #expect(live.contains { $0.state != "skipped" }, "\(live)")

            let jobs = try await stack.baton(["jobs"])
            #expect(jobs.status == 0, "\(jobs.output)")
            let cancel = try await stack.baton(["cancel", "--job", "live", "--queued"])
            #expect(cancel.status == 0, "\(cancel.output)\n\(stack.stderr("scheduler").suffix(3000))")
            let ended = try await stack.waitUntil(timeout: .seconds(30)) {
                try Self.fires(stack, where: "trigger = 'backfill' AND state NOT IN ('finished', 'failed', 'cancelled')").isEmpty
            }
            let backfills = try Self.fires(stack, where: "trigger = 'backfill'")
            #expect(ended, "\(backfills.filter { !["finished", "failed", "cancelled"].contains($0.state) })")
            #expect(backfills.count == slots)
            #expect(backfills.contains { $0.state == "cancelled" }, "\(backfills.map(\.state))")
            // The algorithm agrees: each cancelled run is cancelled in its ledger too.
            let ledger = try stack.read(stack.outboxPath) { db in
                try Dictionary(
                    uniqueKeysWithValues: Row.fetchAll(db, sql: "SELECT run_id, state FROM runs").map {
                        ($0["run_id"] as String, $0["state"] as String)
                    }
                )
            }
            for fire in backfills where fire.state == "cancelled" { #expect(ledger[fire.run] == "cancelled", "\(fire.run)") }

            let audit = try await stack.baton(["audit"])
            #expect(audit.status == 0, "\(audit.output)")
        }
    }
    /// SIGTERM lets a running run finish (`algorithm.drain`) and takes no new one; a second SIGTERM stops at
    /// once, and the run stopped stays `running`, to run again at the next start.
    @Test(.timeLimit(.minutes(2)))
    func sigtermDrainsRunningRunsAndASecondSignalStopsAtOnce() async throws {
        let yaml = """
            algorithm:
              drain: 20s
            jobs:
              - name: slow
                every: 1h
                builtin: demo
                duration: 3s
                result_size: 64
            """
        try await TestStack.with("drain", yaml: yaml) { stack in
            try stack.start("scheduler", "baton-scheduler")
            var algorithm = try stack.start("algorithm", "baton-algorithm")
            func ledgerState(_ run: String) throws -> String? { try Self.runState(stack, run) }
            for round in 1...2 {
                let trigger = try await stack.baton(["trigger", "slow"])
                #expect(trigger.status == 0, "\(trigger.output)")
                let run = try #require(trigger.output.split(separator: "\n").last.map(String.init))
                // The algorithm may still be creating its ledger: not there yet is not running yet.
                let running = try await stack.waitUntil(timeout: .seconds(20)) { (try? ledgerState(run)) == "running" }
                #expect(running)
                kill(algorithm.processIdentifier, SIGTERM)
                if round == 2 {
                    try await Deliberately.wait(.milliseconds(300), because: "the second SIGTERM must come while the first drain runs")
                    kill(algorithm.processIdentifier, SIGTERM)
                }
                #expect(try await TestStack.exited(algorithm, within: .seconds(60)))
                // Drained: the run finished before the service stopped. Stopped at once: it runs again later.
                #expect(
                    try ledgerState(run) == (round == 1 ? "finished" : "running"),
                    "round \(round): \(stack.stderr("algorithm").suffix(2000))"
                )
                algorithm = try stack.start("algorithm-\(round + 1)", "baton-algorithm")
            }
        }
    }
    /// `baton audit` passes a clean deployment and names each violation: a slot with no record, a run whose
    /// outcomes disagree, a stored part whose checksum differs from the one handed off.
    @Test(.timeLimit(.minutes(2)))
    func auditFindsHolesDisagreementsAndCorruption() async throws {
        let yaml = """
            jobs:
              - name: tick
                every: 300ms
                overlap: allow
                builtin: demo
                duration: 1ms
                result_size: 64
            """
        try await TestStack.with("audit", yaml: yaml) { stack in
            try stack.startServices(processors: 1)
            let stored = try await stack.waitUntil(timeout: .seconds(30)) { stack.storedCount() >= 8 }
            #expect(stored)
            // Audited at work: `baton audit` asks the running scheduler and algorithm.
            let clean = try await stack.baton(["audit"])
            #expect(clean.status == 0, "\(clean.output)")
            await stack.stop()

            let tampered = try Self.fires(stack, where: "state = 'finished'")
            try #require(tampered.count >= 6)
            let hole = tampered[2].run
            let disagreement = tampered[3].run
            let corrupt = tampered[4].run
            try await DatabaseQueue(path: stack.schedulerPath).write { db in
                try db.execute(sql: "DELETE FROM fires WHERE run_id = ?", arguments: [hole])
                try db.execute(sql: "UPDATE fires SET state = 'failed' WHERE run_id = ?", arguments: [disagreement])
            }
            try await DatabaseQueue(path: stack.storePath).write { db in
                try db.execute(
                    sql: "UPDATE results SET sha256 = ? WHERE run_id = ?",
                    arguments: [String(repeating: "0", count: 64), corrupt]
                )
            }
            // Tampered with while stopped; the scheduler and the algorithm answer for it once back.
            try stack.start("scheduler", "baton-scheduler")
            try stack.start("algorithm", "baton-algorithm")
            let audit = try await stack.baton(["audit"])
            #expect(audit.status == 1, "\(audit.output)")
            #expect(audit.output.contains("\(hole): slot neither fired nor skipped"), "\(audit.output)")
            #expect(audit.output.contains("\(disagreement): the scheduler says failed, the algorithm finished"), "\(audit.output)")
            #expect(audit.output.contains("\(corrupt)#0: stored with size"), "\(audit.output)")
            let json = try await stack.baton(["audit", "--json"])
            let report = try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any]
            #expect((report?["violations"] as? [String])?.count == 3, "\(json.output)")
        }
    }
    /// `baton cancel RUN` stops a running run; it ends `cancelled` at the scheduler and at the algorithm, and a
    /// second cancel is refused because the run has ended.
    @Test(.timeLimit(.minutes(2)))
    func cancellingARunningRunStopsItAndRecordsIt() async throws {
        let yaml = """
            jobs:
              - name: slow
                every: 1h
                builtin: demo
                duration: 30s
                result_size: 64
            """
        try await TestStack.with("cancelrun", yaml: yaml) { stack in
            try stack.start("scheduler", "baton-scheduler")
            try stack.start("algorithm", "baton-algorithm")
            let trigger = try await stack.baton(["trigger", "slow"])
            let run = try #require(trigger.output.split(separator: "\n").last.map(String.init))
            func ledgerState() throws -> String? { try Self.runState(stack, run) }
            let running = try await stack.waitUntil(timeout: .seconds(20)) { try ledgerState() == "running" }
            #expect(running)
            let cancel = try await stack.baton(["cancel", run])
            #expect(cancel.status == 0, "\(cancel.output)")
            let ended = try await stack.waitUntil(timeout: .seconds(20)) {
                try ledgerState() == "cancelled" && Self.fires(stack, where: "run_id = '\(run)'").first?.state == "cancelled"
            }
            let states = "\(try ledgerState() ?? "?") \(try Self.fires(stack, where: "run_id = '\(run)'"))"
            #expect(ended, "\(states)")
            let again = try await stack.baton(["cancel", run])
            #expect(again.status != 0 && again.output.contains("already ended"), "\(again.output)")
        }
    }
}
