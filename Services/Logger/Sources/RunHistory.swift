public import Foundation
import GRDB
public import Messaging
import Persistence

/// Every run the status bus told of, with its stages and the outcome of each part, in SQLite
/// (`<data_dir>/logger/history.sqlite`), kept for `log.history` after it was last heard of; `baton runs` searches
/// it. Folded from the same events as the status board, in one transaction per batch of events.
///
/// A derived record: the event log (`events.jsonl`) stays the full one. So commits are synced with
/// `synchronous = NORMAL` (a power loss may lose the last of them; a killed logger loses none), and events that
/// arrive faster than the disk takes them are dropped and counted rather than held without bound.
///
/// Part outcomes come from the per-task events (`task.started`, `task.succeeded`, `task.failed`); tasks settled
/// together (`batch.acknowledged`) are counted on their stage only.
public final class RunHistory: Sendable {
    private let database: DatabasePool

    /// The history's file for a data directory.
    public static func path(dataDirectory: String) -> String {
        (dataDirectory as NSString).appendingPathComponent("logger/history.sqlite")
    }

    /// Opens (creating) the history at `path`.
    public static func open(path: String) async throws -> RunHistory {
        let pool = try await SQLiteFile.open(path: path, migrator: migrator)
        // Derived from the event log: a commit need not reach the disk before the next event is read.
        try await pool.writeWithoutTransaction { try $0.execute(sql: "PRAGMA synchronous = NORMAL") }
        return RunHistory(database: pool)
    }

    private init(database: DatabasePool) {
        self.database = database
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("history-v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE runs (
                        run TEXT PRIMARY KEY NOT NULL,
                        job TEXT NOT NULL,
                        slot_ms INTEGER NOT NULL,
                        trigger TEXT,
                        state TEXT NOT NULL,
                        scheduled_ms INTEGER,
                        lateness_ms REAL,
                        accepted_ms INTEGER,
                        started_ms INTEGER,
                        finished_ms INTEGER,
                        ended_ms INTEGER,
                        attempts INTEGER NOT NULL DEFAULT 0,
                        duration_ms REAL,
                        size INTEGER,
                        parts INTEGER,
                        dead INTEGER NOT NULL DEFAULT 0,
                        error TEXT,
                        updated_ms INTEGER NOT NULL
                    );
                    CREATE INDEX runs_job_slot ON runs (job, slot_ms);
                    CREATE INDEX runs_slot ON runs (slot_ms);
                    CREATE INDEX runs_updated ON runs (updated_ms);
                    CREATE TABLE stages (
                        run TEXT NOT NULL,
                        stage INTEGER NOT NULL,
                        name TEXT,
                        parts INTEGER,
                        ready_ms INTEGER,
                        done_ms INTEGER,
                        succeeded INTEGER NOT NULL DEFAULT 0,
                        failed INTEGER NOT NULL DEFAULT 0,
                        dead INTEGER NOT NULL DEFAULT 0,
                        PRIMARY KEY (run, stage)
                    ) WITHOUT ROWID;
                    CREATE TABLE tasks (
                        run TEXT NOT NULL,
                        stage INTEGER NOT NULL,
                        part INTEGER NOT NULL,
                        state TEXT NOT NULL,
                        attempts INTEGER NOT NULL DEFAULT 0,
                        processor TEXT,
                        error TEXT,
                        started_ms INTEGER,
                        ended_ms INTEGER,
                        PRIMARY KEY (run, stage, part)
                    ) WITHOUT ROWID;
                    """
            )
        }
        return migrator
    }

    /// Whether an event changes the history (the others are not queued for it).
    public static func records(_ type: String) -> Bool {
        type.hasPrefix("run.") && type != EventType.runProgress && type != EventType.runDuplicate && type != EventType.runReplaced
            || type.hasPrefix("stage.") || type.hasPrefix("task.") || type == EventType.batchAcknowledged
            || type == EventType.pipelineFinished
    }

    /// Folds events in, in order, in one transaction.
    public func record(_ events: [StatusEvent]) async throws {
        let relevant = events.filter { Self.records($0.type) && $0.run.flatMap(RunID.parse) != nil }
        guard !relevant.isEmpty else { return }
        try await database.write { db in
            for event in relevant { try Self.fold(event, in: db) }
        }
    }

    /// Forgets runs not heard of since `cutoff`, with their stages and tasks; returns how many runs went.
    @discardableResult
    public func prune(before cutoff: Date) async throws -> Int {
        let limit = Self.milliseconds(cutoff)
        return try await database.write { db in
            let old = "SELECT run FROM runs WHERE updated_ms < ?"
            try db.execute(sql: "DELETE FROM tasks WHERE run IN (\(old))", arguments: [limit])
            try db.execute(sql: "DELETE FROM stages WHERE run IN (\(old))", arguments: [limit])
            try db.execute(sql: "DELETE FROM runs WHERE updated_ms < ?", arguments: [limit])
            return db.changesCount
        }
    }

    /// The runs a `runs` query asks for, newest slot first, each with its stages (and its tasks when the query
    /// names one run).
    public func runs(_ query: StatusQuery, now: Date = Date()) async throws -> RunsReport {
        var conditions: [String] = []
        var arguments: StatementArguments = []
        if let run = query.run {
            conditions.append("run = ?")
            arguments += [run]
        }
        if let job = query.job {
            conditions.append("job = ?")
            arguments += [job]
        }
        if let state = query.state {
            conditions.append("state = ?")
            arguments += [state]
        }
        if let from = query.from {
            conditions.append("slot_ms >= ?")
            arguments += [Self.milliseconds(from)]
        }
        if let to = query.to {
            conditions.append("slot_ms < ?")
            arguments += [Self.milliseconds(to)]
        }
        let limit = min(max(query.limit ?? 100, 1), StatusQuery.maxLimit)
        let filter = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        let sql = "SELECT * FROM runs \(filter) ORDER BY slot_ms DESC, run DESC LIMIT \(limit + 1)"
        let withTasks = query.run != nil
        let bound = arguments
        return try await database.read { db in
            var rows = try Row.fetchAll(db, sql: sql, arguments: bound)
            let truncated = rows.count > limit
            if truncated { rows.removeLast() }
            let runs = try rows.map { row in
                var run = RunsReport.Run(
                    run: row["run"],
                    job: row["job"],
                    slot: Self.date(row["slot_ms"]) ?? .distantPast,
                    state: row["state"]
                )
                run.trigger = row["trigger"]
                run.scheduledAt = Self.date(row["scheduled_ms"])
                run.latenessMs = row["lateness_ms"]
                run.acceptedAt = Self.date(row["accepted_ms"])
                run.startedAt = Self.date(row["started_ms"])
                run.finishedAt = Self.date(row["finished_ms"])
                run.endedAt = Self.date(row["ended_ms"])
                run.attempts = row["attempts"]
                run.durationMs = row["duration_ms"]
                run.size = row["size"]
                run.parts = row["parts"]
                run.dead = row["dead"]
                run.error = row["error"]
                run.stages = try Row.fetchAll(
                    db.cachedStatement(sql: "SELECT * FROM stages WHERE run = ? ORDER BY stage"),
                    arguments: [run.run]
                ).map { row in
                    var stage = RunsReport.Stage(
                        index: row["stage"],
                        name: row["name"],
                        succeeded: row["succeeded"],
                        failed: row["failed"],
                        dead: row["dead"]
                    )
                    stage.parts = row["parts"]
                    stage.readyAt = Self.date(row["ready_ms"])
                    stage.doneAt = Self.date(row["done_ms"])
                    return stage
                }
                if withTasks {
                    run.tasks = try Row.fetchAll(
                        db,
                        sql: "SELECT * FROM tasks WHERE run = ? ORDER BY stage, part LIMIT ?",
                        arguments: [run.run, StatusQuery.maxLimit]
                    ).map { row in
                        var task = RunsReport.Task(stage: row["stage"], part: row["part"], state: row["state"])
                        task.attempts = row["attempts"]
                        task.processor = row["processor"]
                        task.error = row["error"]
                        task.startedAt = Self.date(row["started_ms"])
                        task.endedAt = Self.date(row["ended_ms"])
                        return task
                    }
                }
                return run
            }
            return RunsReport(time: now, runs: runs, truncated: truncated)
        }
    }

    /// A job's latest run and how its kept runs ended.
    public struct JobSummary: Sendable, Equatable {
        /// The run with the latest slot, and its state now.
        public var lastRun: String
        public var lastState: String
        /// Kept runs by state.
        public var counts: [String: Int]
    }

    /// Every job's ``JobSummary``, from the whole kept history (two grouped queries).
    public func jobSummaries() async throws -> [String: JobSummary] {
        try await database.read { db in
            var summaries: [String: JobSummary] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT job, run, state, MAX(slot_ms) FROM runs GROUP BY job") {
                summaries[row["job"]] = JobSummary(lastRun: row["run"], lastState: row["state"], counts: [:])
            }
            for row in try Row.fetchAll(db, sql: "SELECT job, state, COUNT(*) AS n FROM runs GROUP BY job, state") {
                summaries[row["job"]]?.counts[row["state"]] = row["n"]
            }
            return summaries
        }
    }

    /// One run as the timeline draws it: its times and its stages' spans, in milliseconds since 1970.
    public struct Span: Sendable {
        public var run: String
        public var job: String
        public var state: String
        public var slot: Int64
        public var scheduled: Int64?
        public var started: Int64?
        public var finished: Int64?
        public var ended: Int64?
        public var error: String?
        /// Each stage's index, ready and done times.
        public var stages: [(index: Int, ready: Int64?, done: Int64?)]
    }

    /// The runs whose slot lies in `[from, to)` (of one job, or all), oldest first, at most `limit`, with their
    /// stages in one more query: what a week of minutely runs needs drawn, without a query per run.
    public func spans(from: Date, to: Date, job: String? = nil, limit: Int = 200_000) async throws -> (spans: [Span], truncated: Bool) {
        let range: [(any DatabaseValueConvertible)?] = [Self.milliseconds(from), Self.milliseconds(to)]
        let jobFilter = job == nil ? "" : " AND job = ?"
        let arguments = StatementArguments(range + (job.map { [$0] } ?? []))
        return try await database.read { db in
            var spans: [Span] = []
            var index: [String: Int] = [:]
            let rows = try Row.fetchCursor(
                db,
                sql: """
                    SELECT run, job, state, slot_ms, scheduled_ms, started_ms, finished_ms, ended_ms, error FROM runs
                    WHERE slot_ms >= ? AND slot_ms < ?\(jobFilter) ORDER BY slot_ms, run LIMIT \(limit + 1)
                    """,
                arguments: arguments
            )
            while let row = try rows.next() {
                index[row["run"]] = spans.count
                spans.append(
                    Span(
                        run: row["run"],
                        job: row["job"],
                        state: row["state"],
                        slot: row["slot_ms"],
                        scheduled: row["scheduled_ms"],
                        started: row["started_ms"],
                        finished: row["finished_ms"],
                        ended: row["ended_ms"],
                        error: row["error"],
                        stages: []
                    )
                )
            }
            let truncated = spans.count > limit
            if truncated { spans.removeLast() }
            let stages = try Row.fetchCursor(
                db,
                sql: """
                    SELECT s.run, s.stage, s.ready_ms, s.done_ms FROM stages s JOIN runs r ON r.run = s.run
                    WHERE r.slot_ms >= ? AND r.slot_ms < ?\(jobFilter.replacingOccurrences(of: "job", with: "r.job"))
                    ORDER BY s.run, s.stage
                    """,
                arguments: arguments
            )
            while let row = try stages.next() {
                guard let position = index[row["run"]] else { continue }
                spans[position].stages.append((row["stage"], row["ready_ms"], row["done_ms"]))
            }
            return (spans, truncated)
        }
    }

    static func milliseconds(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded()) }
    static func date(_ milliseconds: Int64?) -> Date? { milliseconds.map { Date(timeIntervalSince1970: Double($0) / 1000) } }

    // MARK: - The fold

    private static let finalStates: Set<String> = ["succeeded", "failed", "cancelled"]

    private static func fold(_ event: StatusEvent, in db: Database) throws {
        guard let run = event.run, let parts = RunID.parse(run), let slot = Timestamp.parse(parts.timestamp) else { return }
        let attributes = event.attributes ?? [:]
        let time = milliseconds(event.time)
        // Every event makes sure the run has a row: the scheduler's and the algorithm's events reach the bus in
        // either order, and a replay's events may come for a run pruned or never scheduled.
        try db.executeCached(
            sql: """
                INSERT INTO runs (run, job, slot_ms, trigger, state, updated_ms) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT (run) DO UPDATE SET updated_ms = MAX(updated_ms, excluded.updated_ms)
                """,
            arguments: [
                run, parts.job, milliseconds(slot), parts.suffix == "manual" ? "manual" : nil,
                event.type == EventType.runSkipped ? "skipped" : "scheduled", time,
            ]
        )
        func update(_ sql: String, _ arguments: StatementArguments) throws {
            try db.executeCached(sql: "UPDATE runs SET \(sql) WHERE run = ?", arguments: arguments + [run])
        }
        let stage = attributes["stage_index"].flatMap(Int.init) ?? 0
        switch event.type {
        case EventType.runScheduled:
            // The fire time is the slot plus the lateness the scheduler measured; the event's own time is when it
            // was published, a little later.
            let lateness = attributes["lateness_ms"].flatMap(Double.init).flatMap { $0.isFinite ? $0 : nil }
            let fired = lateness.map { milliseconds(slot) + Int64($0.rounded()) } ?? time
            try update(
                "scheduled_ms = ?, lateness_ms = ?, trigger = COALESCE(?, trigger), state = CASE state WHEN 'skipped' THEN 'scheduled' ELSE state END",
                [fired, lateness, attributes["trigger"]]
            )
        case EventType.runSkipped:
            try update("error = CASE state WHEN 'skipped' THEN ? ELSE error END", [event.message])
        case EventType.runQueued:
            try update("state = CASE state WHEN 'scheduled' THEN 'queued' ELSE state END", [])
        case EventType.runAccepted:
            try update(
                "accepted_ms = COALESCE(accepted_ms, ?), state = CASE WHEN state IN ('skipped', 'scheduled', 'queued') THEN 'accepted' ELSE state END",
                [time]
            )
        case EventType.runStarted:
            try update(
                "state = 'running', started_ms = COALESCE(started_ms, ?), attempts = MAX(attempts, ?), trigger = COALESCE(trigger, ?)",
                [time, attributes["attempt"].flatMap(Int.init) ?? 1, attributes["trigger"]]
            )
        case EventType.runFinished:
            try update(
                "state = CASE WHEN state IN ('succeeded', 'dead') THEN state ELSE 'processing' END, finished_ms = ?, duration_ms = ?, size = ?, parts = ?, error = NULL",
                [
                    time, attributes["duration_ms"].flatMap(Double.init), attributes["size"].flatMap(Int64.init),
                    attributes["parts"].flatMap(Int.init),
                ]
            )
        case EventType.runFailed where attributes["retry"] == "true":
            try update("state = 'retrying', error = ?", [event.message ?? attributes["reason"]])
        case EventType.runFailed:
            try update(
                "state = 'failed', ended_ms = ?, error = ?, duration_ms = COALESCE(?, duration_ms)",
                [time, event.message ?? attributes["reason"], attributes["duration_ms"].flatMap(Double.init)]
            )
        case EventType.runCancelled:
            try update("state = 'cancelled', ended_ms = ?, error = COALESCE(?, error)", [time, event.message])
        case EventType.stageReady:
            // Ready again (a replay from this stage): it and the later ones start over, and so does the run. Ready
            // for the first time, it keeps what a processor's events (from another publisher, so possibly first)
            // already recorded of its tasks.
            let again =
                try Bool.fetchOne(
                    db.cachedStatement(sql: "SELECT ready_ms IS NOT NULL FROM stages WHERE run = ? AND stage = ?"),
                    arguments: [run, stage]
                ) ?? false
            guard again else {
                try db.executeCached(
                    sql: """
                        INSERT INTO stages (run, stage, name, parts, ready_ms) VALUES (?, ?, ?, ?, ?)
                        ON CONFLICT (run, stage) DO UPDATE SET name = excluded.name, parts = excluded.parts, ready_ms = excluded.ready_ms
                        """,
                    arguments: [run, stage, attributes["stage"], attributes["parts"].flatMap(Int.init), time]
                )
                try update("state = CASE WHEN state IN ('succeeded', 'dead') THEN 'processing' ELSE state END", [])
                break
            }
            try db.executeCached(
                sql: """
                    INSERT INTO stages (run, stage, name, parts, ready_ms) VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT (run, stage) DO UPDATE SET name = excluded.name, parts = excluded.parts,
                        ready_ms = excluded.ready_ms, done_ms = NULL, succeeded = 0, failed = 0, dead = 0
                    """,
                arguments: [run, stage, attributes["stage"], attributes["parts"].flatMap(Int.init), time]
            )
            try db.executeCached(sql: "DELETE FROM tasks WHERE run = ? AND stage >= ?", arguments: [run, stage])
            try db.executeCached(sql: "DELETE FROM stages WHERE run = ? AND stage > ?", arguments: [run, stage])
            try update(
                "state = CASE WHEN state IN ('failed', 'cancelled') THEN state ELSE 'processing' END, ended_ms = CASE WHEN state IN ('failed', 'cancelled') THEN ended_ms END, dead = (SELECT COALESCE(SUM(dead), 0) FROM stages WHERE run = ?)",
                [run]
            )
        case EventType.stageDone:
            try ensureStage(run, stage, attributes["stage"], in: db)
            try db.executeCached(
                sql: "UPDATE stages SET done_ms = ?, succeeded = MAX(succeeded, COALESCE(parts, 0)), dead = 0 WHERE run = ? AND stage = ?",
                arguments: [time, run, stage]
            )
        case EventType.pipelineFinished:
            try update("state = 'succeeded', ended_ms = ?, dead = 0", [time])
        case EventType.batchAcknowledged:
            try ensureStage(run, stage, nil, in: db)
            try db.executeCached(
                sql: "UPDATE stages SET succeeded = succeeded + ? WHERE run = ? AND stage = ?",
                arguments: [min(max(attributes["tasks"].flatMap(Int.init) ?? 1, 1), 1_000_000), run, stage]
            )
        case EventType.taskStarted, EventType.taskSucceeded, EventType.taskFailed:
            guard let part = event.part else { return }
            try ensureStage(run, stage, attributes["stage"], in: db)
            let dead = attributes["dead"] == "true"
            let state =
                event.type == EventType.taskStarted
                ? "running" : event.type == EventType.taskSucceeded ? "succeeded" : dead ? "dead" : "failed"
            let previous = try String.fetchOne(
                db.cachedStatement(sql: "SELECT state FROM tasks WHERE run = ? AND stage = ? AND part = ?"),
                arguments: [run, stage, part]
            )
            try db.executeCached(
                sql: """
                    INSERT INTO tasks (run, stage, part, state, attempts, processor, error, started_ms, ended_ms)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (run, stage, part) DO UPDATE SET state = excluded.state,
                        attempts = attempts + excluded.attempts, processor = COALESCE(excluded.processor, processor),
                        error = COALESCE(excluded.error, error), started_ms = COALESCE(excluded.started_ms, started_ms),
                        ended_ms = excluded.ended_ms
                    """,
                arguments: [
                    run, stage, part, state, event.type == EventType.taskStarted ? 1 : 0, attributes["processor"] ?? event.instance,
                    event.type == EventType.taskSucceeded ? nil : event.message,
                    event.type == EventType.taskStarted ? time : nil, event.type == EventType.taskStarted ? nil : time,
                ]
            )
            switch state {
            case "succeeded":
                try db.executeCached(
                    sql: "UPDATE stages SET succeeded = succeeded + 1, dead = MAX(dead - ?, 0) WHERE run = ? AND stage = ?",
                    arguments: [previous == "dead" ? 1 : 0, run, stage]
                )
                if previous == "dead" {
                    // A dead task replayed and done: the run is no longer held up by it.
                    try update(
                        "dead = MAX(dead - 1, 0), state = CASE WHEN state = 'dead' AND dead <= 1 THEN 'processing' ELSE state END",
                        []
                    )
                }
            case "dead":
                guard previous != "dead" else { break }
                try db.executeCached(sql: "UPDATE stages SET dead = dead + 1 WHERE run = ? AND stage = ?", arguments: [run, stage])
                try update(
                    "dead = dead + 1, error = ?, state = CASE WHEN state IN ('failed', 'cancelled') THEN state ELSE 'dead' END",
                    [event.message]
                )
            case "failed":
                try db.executeCached(sql: "UPDATE stages SET failed = failed + 1 WHERE run = ? AND stage = ?", arguments: [run, stage])
            default:
                break
            }
        default:
            break
        }
    }

    private static func ensureStage(_ run: String, _ stage: Int, _ name: String?, in db: Database) throws {
        try db.executeCached(
            sql: "INSERT INTO stages (run, stage, name) VALUES (?, ?, ?) ON CONFLICT (run, stage) DO NOTHING",
            arguments: [run, stage, name]
        )
    }
}
