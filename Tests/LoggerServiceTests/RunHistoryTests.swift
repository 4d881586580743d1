import Foundation
import GRDB
import LoggerService
import Messaging
import TestSupport
import Testing

/// The run history folds the bus's events into runs, stages and tasks. Expected values come from the events the
/// tests make (slot, times, errors), never from the history's own tables.
struct RunHistoryTests {
    static let base = Date(timeIntervalSince1970: 1_790_000_000)

    /// A time `seconds` after the base, to the millisecond: the bus's resolution, and the history's.
    static func at(_ seconds: Double) -> Date {
        Date(timeIntervalSince1970: Double(Int64(((base.timeIntervalSince1970 + seconds) * 1000).rounded())) / 1000)
    }

    static func runID(_ job: String, slot: Double) -> String { RunID.make(job: job, logicalTime: at(slot)) }

    static func event(
        _ type: String,
        _ run: String,
        at seconds: Double,
        part: Int? = nil,
        message: String? = nil,
        source: String = "algorithm",
        _ attributes: [String: String] = [:]
    ) -> StatusEvent {
        StatusEvent(
            type: type,
            source: source,
            instance: source,
            time: at(seconds),
            job: RunID.job(of: run),
            run: run,
            part: part,
            message: message,
            attributes: attributes
        )
    }

    /// A job without stages, one part: what the algorithm and the scheduler say from fire to store, in order.
    static func lifeOfARun(_ run: String, slot: Double) -> (scheduler: [StatusEvent], algorithm: [StatusEvent]) {
        (
            [event(EventType.runScheduled, run, at: slot + 0.002, source: "scheduler", ["lateness_ms": "2", "trigger": "schedule"])],
            [
                event(EventType.runAccepted, run, at: slot + 0.003),
                event(EventType.runStarted, run, at: slot + 0.004, ["attempt": "1", "trigger": "schedule"]),
                event(EventType.runProgress, run, at: slot + 0.5, ["percent": "50"]),
                event(EventType.runFinished, run, at: slot + 1.004, ["duration_ms": "1000", "parts": "1", "size": "64"]),
                event(EventType.stageReady, run, at: slot + 1.005, ["stage": "store", "stage_index": "0", "parts": "1"]),
                event(EventType.taskStarted, run, at: slot + 1.006, part: 0, source: "processor", ["stage": "store", "size": "64"]),
                event(EventType.taskSucceeded, run, at: slot + 1.010, part: 0, ["processor": "processor-1", "stage_index": "0"]),
                event(EventType.stageDone, run, at: slot + 1.010, ["stage": "store", "stage_index": "0"]),
                event(EventType.pipelineFinished, run, at: slot + 1.010, ["stages": "1"]),
            ]
        )
    }

    /// Where a test keeps its history: SQLite, or a new database of the test run's PostgreSQL server (what a
    /// deployment whose `store.url` names PostgreSQL gets). Every test runs on both.
    enum Backend: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case sqlite, postgres
        var testDescription: String { rawValue }
    }

    static func open(_ scratch: Scratch, _ backend: Backend) async throws -> RunHistory {
        switch backend {
        case .sqlite: try await RunHistory.open(path: scratch.path("history.sqlite"))
        case .postgres: RunHistory.open(url: try await PostgresServer.shared().createDatabase())
        }
    }

    /// A run from fire to store, whichever point of the algorithm's events the scheduler's `run.scheduled`
    /// arrives at (two publishers: the bus keeps each one's order, not their order between them).
    @Test(arguments: Backend.allCases) func aRunFromFireToStoreWhereverTheSchedulersEventLands(backend: Backend) async throws {
        let (scheduler, algorithm) = Self.lifeOfARun(Self.runID("hourly", slot: 3600), slot: 3600)
        for position in 0...algorithm.count {
            let scratch = Scratch("history")
            let history = try await Self.open(scratch, backend)
            var events = algorithm
            events.insert(contentsOf: scheduler, at: position)
            // One transaction per event at some positions, one for all at others: batches cut anywhere.
            if position % 2 == 0 {
                try await history.record(events)
            } else {
                for event in events { try await history.record([event]) }
            }
            let report = try await history.runs(.runs(run: Self.runID("hourly", slot: 3600)))
            let run = try #require(report.runs.first, "position \(position)")
            #expect(run.state == "succeeded", "position \(position)")
            #expect(run.job == "hourly")
            #expect(run.slot == Self.at(3600))
            #expect(run.trigger == "schedule")
            #expect(run.scheduledAt == Self.at(3600.002))
            #expect(run.latenessMs == 2)
            #expect(run.acceptedAt == Self.at(3600.003))
            #expect(run.startedAt == Self.at(3600.004))
            #expect(run.finishedAt == Self.at(3601.004))
            #expect(run.endedAt == Self.at(3601.010))
            #expect(run.attempts == 1 && run.durationMs == 1000 && run.parts == 1 && run.size == 64 && run.dead == 0)
            #expect(run.error == nil)
            #expect(run.stages.count == 1)
            let stage = try #require(run.stages.first)
            #expect(stage.name == "store" && stage.parts == 1 && stage.succeeded == 1 && stage.failed == 0 && stage.dead == 0)
            #expect(stage.readyAt == Self.at(3601.005) && stage.doneAt == Self.at(3601.010))
            let task = try #require(run.tasks?.first)
            #expect(task.state == "succeeded" && task.attempts == 1 && task.processor == "processor-1")
            #expect(task.startedAt == Self.at(3601.006) && task.endedAt == Self.at(3601.010))
        }
    }

    /// An algorithm that fails, is retried and fails for good; a run skipped; a run cancelled.
    @Test(arguments: Backend.allCases) func failuresSkipsAndCancellations(backend: Backend) async throws {
        let scratch = Scratch("history")
        let history = try await Self.open(scratch, backend)
        let failing = Self.runID("job", slot: 0)
        let skipped = Self.runID("job", slot: 60)
        let cancelled = Self.runID("job", slot: 120)
        try await history.record([
            Self.event(EventType.runScheduled, failing, at: 0.001, source: "scheduler", ["lateness_ms": "1"]),
            Self.event(EventType.runStarted, failing, at: 0.002, ["attempt": "1"]),
            Self.event(EventType.runFailed, failing, at: 1, message: "exit 1; stderr: first", ["retry": "true", "attempt": "1"]),
            Self.event(EventType.runStarted, failing, at: 2, ["attempt": "2"]),
            Self.event(EventType.runFailed, failing, at: 3, message: "exit 1; stderr: second", ["duration_ms": "1000"]),
            Self.event(EventType.runSkipped, skipped, at: 61, message: "missed while the scheduler was down", source: "scheduler"),
            Self.event(EventType.runScheduled, cancelled, at: 120, source: "scheduler"),
            Self.event(EventType.runStarted, cancelled, at: 120.1, ["attempt": "1"]),
            Self.event(EventType.runCancelled, cancelled, at: 125, message: "cancelled by baton cancel"),
        ])
        let runs = try await history.runs(.runs(job: "job")).runs
        #expect(runs.map(\.run) == [cancelled, skipped, failing], "newest slot first")
        let byID = Dictionary(uniqueKeysWithValues: runs.map { ($0.run, $0) })
        #expect(byID[failing]?.state == "failed")
        #expect(byID[failing]?.attempts == 2)
        #expect(byID[failing]?.error == "exit 1; stderr: second")
        #expect(byID[failing]?.startedAt == Self.at(0.002), "the first attempt's start")
        #expect(byID[failing]?.endedAt == Self.at(3))
        #expect(byID[skipped]?.state == "skipped")
        #expect(byID[skipped]?.error == "missed while the scheduler was down")
        #expect(byID[cancelled]?.state == "cancelled")
        #expect(byID[cancelled]?.endedAt == Self.at(125))
        #expect(try await history.runs(.runs(state: "failed")).runs.map(\.run) == [failing])
    }

    /// A task dead-lettered makes its run `dead`; a replay of the stage that succeeds makes it `succeeded` again,
    /// with the stage counted afresh. Tasks settled in a batch count on their stage.
    @Test(arguments: Backend.allCases) func aDeadTaskAndItsReplay(backend: Backend) async throws {
        let scratch = Scratch("history")
        let history = try await Self.open(scratch, backend)
        let run = Self.runID("split", slot: 0)
        let ready = ["stage": "work", "stage_index": "0", "parts": "5"]
        try await history.record([
            Self.event(EventType.runStarted, run, at: 0, ["attempt": "1"]),
            Self.event(EventType.runFinished, run, at: 1, ["parts": "5", "duration_ms": "1000"]),
            Self.event(EventType.stageReady, run, at: 1, ready),
            Self.event(EventType.batchAcknowledged, run, at: 2, part: 0, ["tasks": "3", "stage_index": "0", "last_part": "2"]),
            Self.event(EventType.taskSucceeded, run, at: 2, part: 3, ["stage_index": "0", "processor": "p1"]),
            Self.event(EventType.taskFailed, run, at: 3, part: 4, message: "boom", ["stage_index": "0", "dead": "false"]),
            Self.event(EventType.taskFailed, run, at: 4, part: 4, message: "boom again", ["stage_index": "0", "dead": "true"]),
        ])
        var found = try #require(try await history.runs(.runs(run: run)).runs.first)
        #expect(found.state == "dead")
        #expect(found.dead == 1)
        #expect(found.error == "boom again")
        #expect(found.stages.first?.succeeded == 4)
        #expect(found.stages.first?.failed == 1)
        #expect(found.stages.first?.dead == 1)
        #expect(found.tasks?.first { $0.part == 4 }?.state == "dead")
        #expect(found.tasks?.first { $0.part == 4 }?.error == "boom again")
        #expect(try await history.runs(.runs(state: "dead")).runs.map(\.run) == [run])

        try await history.record([
            Self.event(EventType.stageReady, run, at: 10, ready),
            Self.event(EventType.batchAcknowledged, run, at: 11, part: 0, ["tasks": "5", "stage_index": "0", "last_part": "4"]),
            Self.event(EventType.stageDone, run, at: 11, ["stage": "work", "stage_index": "0"]),
            Self.event(EventType.pipelineFinished, run, at: 11, ["stages": "1"]),
        ])
        found = try #require(try await history.runs(.runs(run: run)).runs.first)
        #expect(found.state == "succeeded")
        #expect(found.dead == 0)
        #expect(found.endedAt == Self.at(11))
        #expect(found.stages.first?.succeeded == 5 && found.stages.first?.dead == 0 && found.stages.first?.failed == 0)
        #expect(found.stages.first?.readyAt == Self.at(10))
    }

    /// A processor's `task.started` can reach the bus before the algorithm's `stage.ready` (two publishers): the
    /// task's attempt is kept, and the fire time is the slot plus the lateness the scheduler measured, not the
    /// time its event was published.
    @Test(arguments: Backend.allCases) func eventsOfTwoPublishersInEitherOrder(backend: Backend) async throws {
        let scratch = Scratch("history")
        let history = try await Self.open(scratch, backend)
        let run = Self.runID("j", slot: 0)
        try await history.record([
            Self.event(EventType.runScheduled, run, at: 0.090, source: "scheduler", ["lateness_ms": "7"]),
            Self.event(EventType.runStarted, run, at: 0.1, ["attempt": "1"]),
            Self.event(EventType.runFinished, run, at: 1, ["parts": "1"]),
            Self.event(EventType.taskStarted, run, at: 1.002, part: 0, source: "processor", ["stage": "store", "stage_index": "0"]),
            Self.event(EventType.stageReady, run, at: 1.001, ["stage": "store", "stage_index": "0", "parts": "1"]),
            Self.event(EventType.taskFailed, run, at: 1.5, part: 0, message: "refused", ["stage_index": "0", "dead": "true"]),
        ])
        let found = try #require(try await history.runs(.runs(run: run)).runs.first)
        #expect(found.scheduledAt == Self.at(0.007) && found.latenessMs == 7)
        let task = try #require(found.tasks?.first)
        #expect(task.attempts == 1 && task.startedAt == Self.at(1.002) && task.state == "dead", "\(task)")
        #expect(found.stages.first?.readyAt == Self.at(1.001) && found.stages.first?.dead == 1)
    }

    /// The hub hands a run's first tasks to the sender as its hand-off commits, so a fast processor's
    /// acknowledgement (`stage.done`, `pipeline.finished`, or a dead task) can be published before the hand-off's
    /// own `run.finished` and `stage.ready`. The late ready moves the run nowhere: seen in about one run of 500
    /// by a black-box test, where the run stayed `processing` for good.
    @Test(arguments: Backend.allCases) func aHandOffHeardAfterItsRunsAcknowledgement(backend: Backend) async throws {
        let scratch = Scratch("history")
        let history = try await Self.open(scratch, backend)
        let run = Self.runID("fast", slot: 0)
        let ready = ["stage": "store", "stage_index": "0", "parts": "1"]
        try await history.record([
            Self.event(EventType.runStarted, run, at: 0.1, ["attempt": "1"]),
            Self.event(EventType.taskStarted, run, at: 1.002, part: 0, source: "processor", ["stage": "store", "stage_index": "0"]),
            Self.event(EventType.stageDone, run, at: 1.003, ["stage": "store", "stage_index": "0"]),
            Self.event(EventType.pipelineFinished, run, at: 1.003, ["stages": "1"]),
            Self.event(EventType.runFinished, run, at: 1.004, ["parts": "1", "duration_ms": "900"]),
            Self.event(EventType.stageReady, run, at: 1.004, ready),
        ])
        let found = try #require(try await history.runs(.runs(run: run)).runs.first)
        #expect(found.state == "succeeded", "\(found)")
        #expect(found.endedAt == Self.at(1.003))
        #expect(found.finishedAt.map { $0 <= Self.at(1.003) } == true, "finished \(String(describing: found.finishedAt))")
        #expect(found.stages.first?.readyAt == Self.at(1.004) && found.stages.first?.doneAt == Self.at(1.003))

        let dead = Self.runID("fast", slot: 10)
        try await history.record([
            Self.event(EventType.runStarted, dead, at: 10.1, ["attempt": "1"]),
            Self.event(EventType.taskFailed, dead, at: 11.002, part: 0, message: "refused", ["stage_index": "0", "dead": "true"]),
            Self.event(EventType.runFinished, dead, at: 11.004, ["parts": "1"]),
            Self.event(EventType.stageReady, dead, at: 11.004, ready),
        ])
        #expect(try await history.runs(.runs(run: dead)).runs.first?.state == "dead")

        // A replay from a stage the history never had (a run older than it, say) is processing again.
        let replayed = Self.runID("fast", slot: 20)
        try await history.record([
            Self.event(EventType.pipelineFinished, replayed, at: 21, ["stages": "1"]),
            Self.event(EventType.stageReady, replayed, at: 30, ready),
        ])
        #expect(try await history.runs(.runs(run: replayed)).runs.first?.state == "processing")
    }

    /// Slots are selected by `from` (inclusive) and `to` (exclusive), newest first, cut at `limit`.
    @Test(arguments: Backend.allCases) func searchesBySlotJobAndLimit(backend: Backend) async throws {
        let scratch = Scratch("history")
        let history = try await Self.open(scratch, backend)
        var events: [StatusEvent] = []
        for minute in 0..<120 {
            for job in ["a", "b"] {
                events.append(
                    Self.event(
                        EventType.runScheduled,
                        Self.runID(job, slot: Double(minute * 60)),
                        at: Double(minute * 60),
                        source: "scheduler"
                    )
                )
            }
        }
        try await history.record(events)
        let window = try await history.runs(.runs(job: "a", from: Self.at(600), to: Self.at(1200)))
        #expect(window.runs.map(\.run) == (10..<20).reversed().map { Self.runID("a", slot: Double($0 * 60)) })
        #expect(!window.truncated)
        let cut = try await history.runs(.runs(limit: 7))
        #expect(cut.runs.count == 7 && cut.truncated)
        #expect(cut.runs.first?.slot == Self.at(119 * 60))
        #expect(try await history.runs(.runs(job: "c")).runs.isEmpty)
    }

    /// Runs not heard of for longer than the retention go, with their stages and tasks; newer ones stay.
    @Test(arguments: Backend.allCases) func pruneForgetsOldRuns(backend: Backend) async throws {
        let scratch = Scratch("history")
        let history = try await Self.open(scratch, backend)
        let (_, old) = Self.lifeOfARun(Self.runID("j", slot: 0), slot: 0)
        let (_, new) = Self.lifeOfARun(Self.runID("j", slot: 7200), slot: 7200)
        try await history.record(old + new)
        #expect(try await history.prune(before: Self.at(3600)) == 1)
        #expect(try await history.runs(.runs()).runs.map(\.run) == [Self.runID("j", slot: 7200)])
        #expect(try await history.runs(.runs(run: Self.runID("j", slot: 0))).runs.isEmpty)
        // A late event for a pruned run starts a fresh row: nothing of the old one comes back.
        try await history.record([Self.event(EventType.taskSucceeded, Self.runID("j", slot: 0), at: 9000, part: 0, ["stage_index": "0"])])
        let again = try #require(try await history.runs(.runs(run: Self.runID("j", slot: 0))).runs.first)
        #expect(again.stages.first?.succeeded == 1 && again.startedAt == nil)
    }

    /// Events of other kinds, and events naming no valid run, change nothing.
    @Test(arguments: Backend.allCases) func ignoresWhatIsNotARunsEvent(backend: Backend) async throws {
        let scratch = Scratch("history")
        let history = try await Self.open(scratch, backend)
        try await history.record([
            StatusEvent(type: EventType.serviceHeartbeat, source: "algorithm", instance: "algorithm"),
            StatusEvent(type: EventType.runStarted, source: "x", instance: "x", job: "j", run: "not a run id"),
            StatusEvent(type: "log.error", source: "x", instance: "x", run: Self.runID("j", slot: 0), message: "m"),
        ])
        #expect(try await history.runs(.runs()).runs.isEmpty)
    }

    /// What the jobs page and the timeline read: each job's latest run and its runs by outcome; the runs of a
    /// window, oldest first, with their stages' spans, of one job or all, and cut at a limit.
    @Test(arguments: Backend.allCases) func jobSummariesAndTimelineSpans(backend: Backend) async throws {
        let scratch = Scratch("history")
        let history = try await Self.open(scratch, backend)
        var events: [StatusEvent] = []
        for minute in 0..<5 {
            let (scheduler, algorithm) = Self.lifeOfARun(Self.runID("ok", slot: Double(minute * 60)), slot: Double(minute * 60))
            events += scheduler + algorithm
        }
        let failing = Self.runID("bad", slot: 120)
        events += [
            Self.event(EventType.runScheduled, failing, at: 120.001, source: "scheduler", ["lateness_ms": "1"]),
            Self.event(EventType.runStarted, failing, at: 120.002, ["attempt": "1"]),
            Self.event(EventType.runFailed, failing, at: 121, message: "exit status 3"),
        ]
        try await history.record(events)

        let summaries = try await history.jobSummaries()
        #expect(summaries.keys.sorted() == ["bad", "ok"])
        #expect(summaries["ok"]?.lastRun == Self.runID("ok", slot: 240) && summaries["ok"]?.lastState == "succeeded")
        #expect(summaries["ok"]?.counts == ["succeeded": 5])
        #expect(summaries["bad"]?.lastRun == failing && summaries["bad"]?.counts == ["failed": 1])

        let all = try await history.spans(from: Self.at(60), to: Self.at(240))
        #expect(!all.truncated)
        #expect(all.spans.map(\.run) == [Self.runID("ok", slot: 60), failing, Self.runID("ok", slot: 120), Self.runID("ok", slot: 180)])
        let ok = try #require(all.spans.first)
        #expect(ok.job == "ok" && ok.state == "succeeded" && ok.slot == 1_790_000_060_000)
        #expect(ok.scheduled == 1_790_000_060_002 && ok.started == 1_790_000_060_004 && ok.finished == 1_790_000_061_004)
        #expect(ok.ended == 1_790_000_061_010 && ok.error == nil)
        #expect(ok.stages.count == 1 && ok.stages.first?.index == 0)
        #expect(ok.stages.first?.ready == 1_790_000_061_005 && ok.stages.first?.done == 1_790_000_061_010)
        let bad = try #require(all.spans.first { $0.run == failing })
        #expect(bad.state == "failed" && bad.error == "exit status 3" && bad.stages.isEmpty)

        let one = try await history.spans(from: Self.at(0), to: Self.at(600), job: "bad")
        #expect(one.spans.map(\.run) == [failing])
        let cut = try await history.spans(from: Self.at(0), to: Self.at(600), limit: 2)
        #expect(cut.truncated && cut.spans.map(\.run) == [Self.runID("ok", slot: 0), Self.runID("ok", slot: 60)])
    }

    /// A history file written before the tables were renamed (`runs`, `stages`, `tasks`) keeps its runs.
    @Test func aHistoryOfTheFirstVersionIsKept() async throws {
        let scratch = Scratch("history")
        let path = scratch.path("history.sqlite")
        let run = Self.runID("old", slot: 0)
        do {
            // The first version's tables, as its migration made them, with one finished run.
            let queue = try DatabaseQueue(path: path)
            try await queue.write { db in
                try db.execute(
                    sql: """
                        CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY);
                        INSERT INTO grdb_migrations VALUES ('history-v1');
                        CREATE TABLE runs (run TEXT PRIMARY KEY NOT NULL, job TEXT NOT NULL, slot_ms INTEGER NOT NULL,
                            trigger TEXT, state TEXT NOT NULL, scheduled_ms INTEGER, lateness_ms REAL, accepted_ms INTEGER,
                            started_ms INTEGER, finished_ms INTEGER, ended_ms INTEGER, attempts INTEGER NOT NULL DEFAULT 0,
                            duration_ms REAL, size INTEGER, parts INTEGER, dead INTEGER NOT NULL DEFAULT 0, error TEXT,
                            updated_ms INTEGER NOT NULL);
                        CREATE TABLE stages (run TEXT NOT NULL, stage INTEGER NOT NULL, name TEXT, parts INTEGER,
                            ready_ms INTEGER, done_ms INTEGER, succeeded INTEGER NOT NULL DEFAULT 0,
                            failed INTEGER NOT NULL DEFAULT 0, dead INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (run, stage))
                            WITHOUT ROWID;
                        CREATE TABLE tasks (run TEXT NOT NULL, stage INTEGER NOT NULL, part INTEGER NOT NULL,
                            state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, processor TEXT, error TEXT,
                            started_ms INTEGER, ended_ms INTEGER, PRIMARY KEY (run, stage, part)) WITHOUT ROWID;
                        """
                )
                try db.execute(
                    sql: """
                        INSERT INTO runs (run, job, slot_ms, state, attempts, updated_ms)
                        VALUES (?, 'old', 1790000000000, 'succeeded', 1, 1790000001000)
                        """,
                    arguments: [run]
                )
                try db.execute(sql: "INSERT INTO stages (run, stage, name, succeeded) VALUES (?, 0, 'store', 1)", arguments: [run])
            }
            try queue.close()
        }
        let history = try await RunHistory.open(path: path)
        let found = try #require(try await history.runs(.runs(job: "old")).runs.first)
        #expect(found.run == run && found.state == "succeeded" && found.slot == Self.at(0) && found.attempts == 1)
        #expect(found.stages.map(\.name) == ["store"] && found.stages.first?.succeeded == 1)
        // And it goes on from there.
        let (scheduler, algorithm) = Self.lifeOfARun(Self.runID("old", slot: 60), slot: 60)
        try await history.record(scheduler + algorithm)
        #expect(try await history.runs(.runs(job: "old")).runs.map(\.state) == ["succeeded", "succeeded"])
    }

    /// A PostgreSQL history whose server is down when the logger starts: writes and reads fail with the server's
    /// error while it is away, and the history is made and used once it is back.
    @Test func aPostgreSQLHistoryWaitsForItsServer() async throws {
        let server = try await PostgresServer.start()
        defer { server.remove() }
        let url = try await server.createDatabase()
        try await server.stop()
        let history = RunHistory.open(url: url)
        let (scheduler, algorithm) = Self.lifeOfARun(Self.runID("late", slot: 0), slot: 0)
        await #expect(throws: (any Error).self) { try await history.record(scheduler + algorithm) }
        await #expect(throws: (any Error).self) { try await history.runs(.runs()) }
        try await server.start()
        try await history.record(scheduler + algorithm)
        #expect(try await history.runs(.runs()).runs.map(\.state) == ["succeeded"])
    }
}
