import Foundation
import GRDB
import Glibc
import Messaging
import Testing

@Suite(.serialized)
struct SchedulerTests {
    static func job(_ name: String, _ extra: String) -> String {
        """
          - name: \(name)
            \(extra)
            builtin: demo
            duration: 1ms
            result_size: 64
        """
    }

    /// Stop the scheduler for three intervals and restart it: each misfire policy does what the docs say,
    /// and every slot not run is recorded as skipped with its reason.
    @Test(.timeLimit(.minutes(2)))
    func misfirePoliciesAfterDowntime() async throws {
        let yaml =
            "jobs:\n"
            + [
                Self.job("all", "every: 1s\n    misfire: all\n    overlap: allow"),
                Self.job("latest", "every: 1s\n    misfire: latest\n    overlap: allow"),
                Self.job("skip", "every: 1s\n    misfire: skip\n    overlap: allow"),
            ].joined(separator: "\n")
        try await TestStack.with("misfire", yaml: yaml) { stack in
            try stack.startServices(processors: 1)
            let running = try await stack.waitUntil(timeout: .seconds(30)) { stack.storedCount() >= 6 }
            #expect(running)
            try await stack.terminate("scheduler")
            let stoppedAt = Date()
            // Down for three slots of the grid (whole seconds): the restart comes just after the third.
            let thirdSlot = floor(stoppedAt.timeIntervalSince1970) + 3
            try await Deliberately.wait(
                until: Date(timeIntervalSince1970: thirdSlot + 0.05),
                because: "the scheduler must be down while three slots pass"
            )
            let restartedAt = Date()
            try stack.start("scheduler-2", "baton-scheduler")
            // The grid's slots between the stop and the restart, from the actual times: three, or more if the
            // machine woke this test late; all decided by the new scheduler once it is up, however long that takes.
            let missed = Int(floor(restartedAt.timeIntervalSince1970)) - Int(floor(stoppedAt.timeIntervalSince1970))
            #expect(missed >= 3)

            for (job, policy) in [("all", "all"), ("latest", "latest"), ("skip", "skip")] {
                func window() throws -> [Row] {
                    try stack.read(stack.schedulerPath) { db in
                        try Row.fetchAll(
                            db,
                            sql:
                                "SELECT logical_time, state, detail FROM fires WHERE job = ? AND logical_time > ? AND logical_time <= ? ORDER BY logical_time",
                            arguments: [job, Timestamp.format(stoppedAt), Timestamp.format(restartedAt)]
                        )
                    }
                }
                let decided = try await stack.waitUntil(timeout: .seconds(30)) { try window().count >= missed }
                #expect(decided, "\(job): \((try? window()) ?? [])")
                let rows = try window()
                #expect(rows.count == missed, "\(job): \(rows)")
                let skipped = rows.filter { ($0["state"] as String) == "skipped" }
                let ran = rows.filter { ($0["state"] as String) != "skipped" }
                switch policy {
                case "all":
                    #expect(skipped.isEmpty, "\(job): \(rows)")
                case "latest":
                    // The slots missed are those before the new scheduler was up, which may be a little after
                    // `restartedAt`: all of them but the newest are skipped, and the newest runs.
                    let later = try stack.read(stack.schedulerPath) { db in
                        try Row.fetchAll(
                            db,
                            sql: "SELECT logical_time, state, detail FROM fires WHERE job = ? AND logical_time > ? ORDER BY logical_time",
                            arguments: [job, Timestamp.format(stoppedAt)]
                        )
                    }
                    let missedSkips = later.prefix { ($0["state"] as String) == "skipped" }
                    #expect(missedSkips.count >= 2, "\(job): \(later)")
                    #expect(missedSkips.allSatisfy { ($0["detail"] as String?)?.contains("latest") == true }, "\(job): \(later)")
                    let newestMissed = later.dropFirst(missedSkips.count).first
                    #expect(newestMissed.map { ($0["state"] as String) != "skipped" } == true, "\(job): \(later)")
                    #expect(later.filter { ($0["state"] as String) == "skipped" }.count == missedSkips.count, "\(job): \(later)")
                default:
                    #expect(ran.isEmpty, "\(job): \(rows)")
                    #expect(skipped.allSatisfy { ($0["detail"] as String?)?.contains("misfire policy skip") == true })
                }
            }
        }
    }

    /// `baton jobs`, `trigger`, `pause`, `resume` and `backfill` against a running scheduler; clear errors for
    /// an unknown job and a dead scheduler.
    @Test(.timeLimit(.minutes(2)))
    func controlCommands() async throws {
        let yaml = "jobs:\n" + Self.job("hourly", "cron: \"0 * * * *\"\n    timezone: Europe/Berlin")
        try await TestStack.with("control", yaml: yaml) { stack in
            try stack.startServices(processors: 1)
            var listed: (status: Int32, output: String) = (-1, "")
            _ = try await stack.waitUntil(timeout: .seconds(30)) {
                listed = try await stack.baton(["jobs"])
                return listed.status == 0
            }
            #expect(listed.status == 0, "\(listed.output)")
            #expect(listed.output.contains("hourly  cron 0 * * * * (Europe/Berlin)"), "\(listed.output)")
            #expect(listed.output.contains("next 20"))

            let triggered = try await stack.baton(["trigger", "hourly"])
            #expect(triggered.status == 0, "\(triggered.output)")
            #expect(triggered.output.contains("~manual"))
            #expect(try await stack.waitUntil(timeout: .seconds(20)) { stack.storedCount() == 1 })

            #expect(try await stack.baton(["pause", "hourly"]).status == 0)
            #expect(try await stack.baton(["jobs"]).output.contains("PAUSED"))
            // Paused survives a scheduler restart.
            try await stack.terminate("scheduler")
            try stack.start("scheduler-2", "baton-scheduler")
            var paused: (status: Int32, output: String) = (-1, "")
            _ = try await stack.waitUntil(timeout: .seconds(30)) {
                paused = try await stack.baton(["jobs"])
                return paused.status == 0
            }
            #expect(paused.output.contains("PAUSED"), "\(paused.output)")
            #expect(try await stack.baton(["resume", "hourly"]).status == 0)
            #expect(!(try await stack.baton(["jobs"]).output.contains("PAUSED")))

            let range = ["--from", "2026-01-01T00:00:00Z", "--to", "2026-01-01T02:00:00Z"]
            let backfill = try await stack.baton(["backfill", "hourly"] + range)
            #expect(backfill.output.contains("3 slot(s) fired, 0 already done"), "\(backfill.output)")
            #expect(try await stack.waitUntil(timeout: .seconds(30)) { stack.storedCount() == 4 })
            let times = try stack.read { db in
                try String.fetchAll(db, sql: "SELECT logical_time FROM results WHERE run_id NOT LIKE '%~manual' ORDER BY logical_time")
            }
            #expect(times == ["2026-01-01T00:00:00.000Z", "2026-01-01T01:00:00.000Z", "2026-01-01T02:00:00.000Z"])
            #expect(try await stack.baton(["backfill", "hourly"] + range).output.contains("0 slot(s) fired, 3 already done"))
            let rerun = try await stack.baton(["backfill", "hourly", "--rerun"] + range)
            #expect(rerun.output.contains("3 slot(s) fired"), "\(rerun.output)")
            #expect(rerun.output.contains("hourly@2026-01-01T00:00:00.000Z~2"))
            #expect(try await stack.waitUntil(timeout: .seconds(30)) { stack.storedCount() == 7 })

            let unknown = try await stack.baton(["trigger", "nope"])
            #expect(unknown.status == 1)
            #expect(unknown.output.contains("unknown job \"nope\"; configured jobs: hourly"))

            try await stack.terminate("scheduler-2")
            let dead = try await stack.baton(["jobs"])
            #expect(dead.status == 3)
            #expect(dead.output.contains("did not answer"), "\(dead.output)")
        }
    }
}
