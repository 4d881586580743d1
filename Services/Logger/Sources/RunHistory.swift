public import Config
public import Foundation
import GRDB
public import Messaging
import Persistence
import Synchronization

/// Every run the status bus told of, with its stages and the outcome of each part, kept for `log.history` after
/// it was last heard of; `baton runs` and the web view search it. Folded from the same events as the status board,
/// in one transaction per batch of events. It lives in SQLite (`<data_dir>/logger/history.sqlite`), or in the
/// deployment's PostgreSQL database when `store.url` names one (tables `history_runs`, `history_stages`,
/// `history_tasks`), so that a deployment whose results live there has its history beside them. One SQL text
/// serves both (``HistorySQL``).
///
/// A derived record: the event log (`events.jsonl`) stays the full one. So SQLite's commits are synced with
/// `synchronous = NORMAL` (a power loss may lose the last of them; a killed logger loses none), and events that
/// arrive faster than the database takes them, or while PostgreSQL is away, are dropped and counted rather than
/// held without bound.
///
/// Part outcomes come from the per-task events (`task.started`, `task.succeeded`, `task.failed`); tasks settled
/// together (`batch.acknowledged`) are counted on their stage only.
public final class RunHistory: Sendable {
    private enum Backend {
        case sqlite(DatabasePool)
        /// The connection, and whether its tables are known to be there (made at the first statement that reaches
        /// the server, so that a server down when the logger starts only delays the history).
        case postgres(PostgresConnection, migrated: Migrated)
    }
    private let backend: Backend

    /// Whether a PostgreSQL history's tables are known to be there.
    private final class Migrated: Sendable {
        let done = Mutex(false)
    }

    /// The history's file for a data directory.
    public static func path(dataDirectory: String) -> String {
        (dataDirectory as NSString).appendingPathComponent("logger/history.sqlite")
    }

    /// Opens (creating) the history at `path`.
    public static func open(path: String) async throws -> RunHistory {
        let pool = try await SQLiteFile.open(path: path, migrator: migrator)
        // Derived from the event log: a commit need not reach the disk before the next event is read.
        try await pool.writeWithoutTransaction { try $0.execute(sql: "PRAGMA synchronous = NORMAL") }
        return RunHistory(backend: .sqlite(pool))
    }

    /// The history in the PostgreSQL database at `url`. Nothing is connected yet: the first statement connects
    /// and creates the tables if they are missing; while the server cannot be reached, writes and reads fail
    /// (and are retried by the next ones).
    public static func open(url: String) -> RunHistory {
        RunHistory(backend: .postgres(PostgresConnection(url: url, name: "baton-logger history"), migrated: Migrated()))
    }

    /// The deployment's history: in PostgreSQL when `store.url` is set, else in SQLite under `data_dir`.
    public static func open(_ configuration: Config.Configuration) async throws -> RunHistory {
        configuration.store.url.isEmpty
            ? try await open(path: path(dataDirectory: configuration.dataDirectory)) : open(url: configuration.store.url)
    }

    private init(backend: Backend) {
        self.backend = backend
    }

    /// Runs `body` in one write transaction.
    private func write<T: Sendable>(_ body: @escaping @Sendable (any HistorySQL) throws -> T) async throws -> T {
        switch backend {
        case .sqlite(let pool): try await pool.write { try body(SQLiteHistorySQL(db: $0)) }
        case .postgres(let connection, let migrated):
            try await Self.migrating(connection, migrated) { session in
                try session.transaction { try body(PostgresHistorySQL(session: session)) }
            }
        }
    }

    /// Runs `body` on the connection, after creating the tables if this history has not made sure of them yet.
    private static func migrating<T: Sendable>(
        _ connection: PostgresConnection,
        _ migrated: Migrated,
        _ body: @escaping @Sendable (PostgresSession) throws -> T
    ) async throws -> T {
        let known = migrated.done.withLock { $0 }
        let value = try await connection.run { session in
            if !known { try PostgresHistorySQL.migrations.migrate(session) }
            return try body(session)
        }
        if !known { migrated.done.withLock { $0 = true } }
        return value
    }

    /// Runs `body` on one consistent view of the history.
    private func read<T: Sendable>(_ body: @escaping @Sendable (any HistorySQL) throws -> T) async throws -> T {
        switch backend {
        case .sqlite(let pool): try await pool.read { try body(SQLiteHistorySQL(db: $0)) }
        case .postgres(let connection, let migrated):
            try await Self.migrating(connection, migrated) { session in
                try session.transaction {
                    try session.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    return try body(PostgresHistorySQL(session: session))
                }
            }
        }
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
        // One name for each table on both backends: in a PostgreSQL database shared with the result store,
        // `runs` would say nothing of whose runs they are.
        migrator.registerMigration("history-v2") { db in
            try db.execute(
                sql: """
                    ALTER TABLE runs RENAME TO history_runs;
                    ALTER TABLE stages RENAME TO history_stages;
                    ALTER TABLE tasks RENAME TO history_tasks;
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
        try await write { sql in
            for event in relevant { try Self.fold(event, in: sql) }
        }
    }

    /// Forgets runs not heard of since `cutoff`, with their stages and tasks; returns how many runs went.
    @discardableResult
    public func prune(before cutoff: Date) async throws -> Int {
        let limit = Self.milliseconds(cutoff)
        return try await write { sql in
            let gone = try sql.row("SELECT COUNT(*) FROM history_runs WHERE updated_ms < ?", [limit])?.count(0) ?? 0
            guard gone > 0 else { return 0 }
            let old = "SELECT run FROM history_runs WHERE updated_ms < ?"
            try sql.execute("DELETE FROM history_tasks WHERE run IN (\(old))", [limit])
            try sql.execute("DELETE FROM history_stages WHERE run IN (\(old))", [limit])
            try sql.execute("DELETE FROM history_runs WHERE updated_ms < ?", [limit])
            return gone
        }
    }

    /// The runs a `runs` query asks for, newest slot first, each with its stages (and its tasks when the query
    /// names one run).
    public func runs(_ query: StatusQuery, now: Date = Date()) async throws -> RunsReport {
        var conditions: [String] = []
        var arguments: [any HistoryArgument] = []
        if let run = query.run {
            conditions.append("run = ?")
            arguments.append(run)
        }
        if let job = query.job {
            conditions.append("job = ?")
            arguments.append(job)
        }
        if let state = query.state {
            conditions.append("state = ?")
            arguments.append(state)
        }
        if let from = query.from {
            conditions.append("slot_ms >= ?")
            arguments.append(Self.milliseconds(from))
        }
        if let to = query.to {
            conditions.append("slot_ms < ?")
            arguments.append(Self.milliseconds(to))
        }
        let limit = min(max(query.limit ?? 100, 1), StatusQuery.maxLimit)
        let filter = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        let select = """
            SELECT run, job, slot_ms, state, trigger, scheduled_ms, lateness_ms, accepted_ms, started_ms, finished_ms,
                ended_ms, attempts, duration_ms, size, parts, dead, error
            FROM history_runs \(filter) ORDER BY slot_ms DESC, run DESC LIMIT \(limit + 1)
            """
        let withTasks = query.run != nil
        let bound = arguments
        return try await read { sql in
            var rows = try sql.rows(select, bound)
            let truncated = rows.count > limit
            if truncated { rows.removeLast() }
            let runs = try rows.map { row in
                var run = RunsReport.Run(
                    run: row.text(0) ?? "",
                    job: row.text(1) ?? "",
                    slot: Self.date(row.int(2)) ?? .distantPast,
                    state: row.text(3) ?? ""
                )
                run.trigger = row.text(4)
                run.scheduledAt = Self.date(row.int(5))
                run.latenessMs = row.double(6)
                run.acceptedAt = Self.date(row.int(7))
                run.startedAt = Self.date(row.int(8))
                run.finishedAt = Self.date(row.int(9))
                run.endedAt = Self.date(row.int(10))
                run.attempts = row.count(11)
                run.durationMs = row.double(12)
                run.size = row.int(13)
                run.parts = row.int(14).map { Int(clamping: $0) }
                run.dead = row.count(15)
                run.error = row.text(16)
                run.stages = try sql.rows(
                    "SELECT stage, name, succeeded, failed, dead, parts, ready_ms, done_ms FROM history_stages WHERE run = ? ORDER BY stage",
                    [run.run]
                ).map { row in
                    var stage = RunsReport.Stage(
                        index: row.count(0),
                        name: row.text(1),
                        succeeded: row.count(2),
                        failed: row.count(3),
                        dead: row.count(4)
                    )
                    stage.parts = row.int(5).map { Int(clamping: $0) }
                    stage.readyAt = Self.date(row.int(6))
                    stage.doneAt = Self.date(row.int(7))
                    return stage
                }
                if withTasks {
                    run.tasks = try sql.rows(
                        """
                        SELECT stage, part, state, attempts, processor, error, started_ms, ended_ms FROM history_tasks
                        WHERE run = ? ORDER BY stage, part LIMIT ?
                        """,
                        [run.run, StatusQuery.maxLimit]
                    ).map { row in
                        var task = RunsReport.Task(stage: row.count(0), part: row.count(1), state: row.text(2) ?? "")
                        task.attempts = row.count(3)
                        task.processor = row.text(4)
                        task.error = row.text(5)
                        task.startedAt = Self.date(row.int(6))
                        task.endedAt = Self.date(row.int(7))
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

    /// Every job's ``JobSummary``, from the whole kept history: its latest slot and how many runs ended how (two
    /// grouped queries over the (job, slot) index), then its latest run (one indexed lookup per job).
    public func jobSummaries() async throws -> [String: JobSummary] {
        try await read { sql in
            var summaries: [String: JobSummary] = [:]
            for latest in try sql.rows("SELECT job, MAX(slot_ms) FROM history_runs GROUP BY job", []) {
                guard let job = latest.text(0), let slot = latest.int(1),
                    let row = try sql.row(
                        "SELECT run, state FROM history_runs WHERE job = ? AND slot_ms = ? ORDER BY run DESC LIMIT 1",
                        [job, slot]
                    )
                else { continue }
                summaries[job] = JobSummary(lastRun: row.text(0) ?? "", lastState: row.text(1) ?? "", counts: [:])
            }
            for row in try sql.rows("SELECT job, state, COUNT(*) FROM history_runs GROUP BY job, state", []) {
                guard let job = row.text(0), let state = row.text(1) else { continue }
                summaries[job]?.counts[state] = row.count(2)
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
        let arguments: [any HistoryArgument] = [Self.milliseconds(from), Self.milliseconds(to)] + (job.map { [$0] } ?? [])
        let jobFilter = job == nil ? "" : " AND job = ?"
        return try await read { sql in
            var spans: [Span] = []
            var index: [String: Int] = [:]
            let rows = try sql.rows(
                """
                SELECT run, job, state, slot_ms, scheduled_ms, started_ms, finished_ms, ended_ms, error FROM history_runs
                WHERE slot_ms >= ? AND slot_ms < ?\(jobFilter) ORDER BY slot_ms, run LIMIT \(limit + 1)
                """,
                arguments
            )
            spans.reserveCapacity(rows.count)
            for row in rows {
                let run = row.text(0) ?? ""
                index[run] = spans.count
                spans.append(
                    Span(
                        run: run,
                        job: row.text(1) ?? "",
                        state: row.text(2) ?? "",
                        slot: row.int(3) ?? 0,
                        scheduled: row.int(4),
                        started: row.int(5),
                        finished: row.int(6),
                        ended: row.int(7),
                        error: row.text(8),
                        stages: []
                    )
                )
            }
            let truncated = spans.count > limit
            if truncated { spans.removeLast() }
            let stages = try sql.rows(
                """
                SELECT s.run, s.stage, s.ready_ms, s.done_ms FROM history_stages s JOIN history_runs r ON r.run = s.run
                WHERE r.slot_ms >= ? AND r.slot_ms < ?\(jobFilter.replacingOccurrences(of: "job", with: "r.job"))
                ORDER BY s.run, s.stage
                """,
                arguments
            )
            for row in stages {
                guard let run = row.text(0), let position = index[run] else { continue }
                spans[position].stages.append((row.count(1), row.int(2), row.int(3)))
            }
            return (spans, truncated)
        }
    }

    static func milliseconds(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded()) }
    static func date(_ milliseconds: Int64?) -> Date? { milliseconds.map { Date(timeIntervalSince1970: Double($0) / 1000) } }

    // MARK: - The fold

    private static let finalStates: Set<String> = ["succeeded", "failed", "cancelled"]

    private static func fold(_ event: StatusEvent, in sql: any HistorySQL) throws {
        guard let run = event.run, let parts = RunID.parse(run), let slot = Timestamp.parse(parts.timestamp) else { return }
        let attributes = event.attributes ?? [:]
        let time = milliseconds(event.time)
        // Every event makes sure the run has a row: the scheduler's and the algorithm's events reach the bus in
        // either order, and a replay's events may come for a run pruned or never scheduled.
        let greatest = sql.greatest
        try sql.execute(
            """
            INSERT INTO history_runs (run, job, slot_ms, trigger, state, updated_ms) VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT (run) DO UPDATE SET updated_ms = \(greatest)(history_runs.updated_ms, excluded.updated_ms)
            """,
            [
                run, parts.job, milliseconds(slot), parts.suffix == "manual" ? "manual" : nil,
                event.type == EventType.runSkipped ? "skipped" : "scheduled", time,
            ]
        )
        func update(_ assignments: String, _ arguments: [any HistoryArgument]) throws {
            try sql.execute("UPDATE history_runs SET \(assignments) WHERE run = ?", arguments + [run])
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
                "state = 'running', started_ms = COALESCE(started_ms, ?), attempts = \(greatest)(attempts, ?), trigger = COALESCE(trigger, ?)",
                [time, attributes["attempt"].flatMap(Int.init) ?? 1, attributes["trigger"]]
            )
        case EventType.runFinished:
            try update(
                // Never after the run's end: the hub's acknowledgements may be heard before its hand-off's events.
                "state = CASE WHEN state IN ('succeeded', 'dead') THEN state ELSE 'processing' END, finished_ms = CASE WHEN ended_ms < ? THEN ended_ms ELSE ? END, duration_ms = ?, size = ?, parts = ?, error = NULL",
                [
                    time, time, attributes["duration_ms"].flatMap(Double.init), attributes["size"].flatMap(Int64.init),
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
            let seen = try sql.row("SELECT ready_ms FROM history_stages WHERE run = ? AND stage = ?", [run, stage])
            let again = seen?.int(0) != nil
            guard again else {
                // Its tasks' events (or its stage.done) came first, from another publisher or from the hub's own
                // acknowledgements racing its hand-off: a late ready, which moves its run nowhere (a succeeded
                // run stays so, as does a dead one). A stage never heard of, ready after the run succeeded, is a
                // replay from a stage the history did not have: the run is processing again.
                let late = seen != nil
                try sql.execute(
                    """
                    INSERT INTO history_stages (run, stage, name, parts, ready_ms) VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT (run, stage) DO UPDATE SET name = excluded.name, parts = excluded.parts, ready_ms = excluded.ready_ms
                    """,
                    [run, stage, attributes["stage"], attributes["parts"].flatMap(Int.init), time]
                )
                if !late { try update("state = CASE WHEN state IN ('succeeded', 'dead') THEN 'processing' ELSE state END", []) }
                break
            }
            try sql.execute(
                """
                INSERT INTO history_stages (run, stage, name, parts, ready_ms) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (run, stage) DO UPDATE SET name = excluded.name, parts = excluded.parts,
                    ready_ms = excluded.ready_ms, done_ms = NULL, succeeded = 0, failed = 0, dead = 0
                """,
                [run, stage, attributes["stage"], attributes["parts"].flatMap(Int.init), time]
            )
            try sql.execute("DELETE FROM history_tasks WHERE run = ? AND stage >= ?", [run, stage])
            try sql.execute("DELETE FROM history_stages WHERE run = ? AND stage > ?", [run, stage])
            try update(
                "state = CASE WHEN state IN ('failed', 'cancelled') THEN state ELSE 'processing' END, ended_ms = CASE WHEN state IN ('failed', 'cancelled') THEN ended_ms END, dead = (SELECT COALESCE(SUM(dead), 0) FROM history_stages WHERE run = ?)",
                [run]
            )
        case EventType.stageDone:
            try ensureStage(run, stage, attributes["stage"], in: sql)
            try sql.execute(
                "UPDATE history_stages SET done_ms = ?, succeeded = \(greatest)(succeeded, COALESCE(parts, 0)), dead = 0 WHERE run = ? AND stage = ?",
                [time, run, stage]
            )
        case EventType.pipelineFinished:
            try update("state = 'succeeded', ended_ms = ?, dead = 0", [time])
        case EventType.batchAcknowledged:
            try ensureStage(run, stage, nil, in: sql)
            try sql.execute(
                "UPDATE history_stages SET succeeded = succeeded + ? WHERE run = ? AND stage = ?",
                [min(max(attributes["tasks"].flatMap(Int.init) ?? 1, 1), 1_000_000), run, stage]
            )
        case EventType.taskStarted, EventType.taskSucceeded, EventType.taskFailed:
            guard let part = event.part else { return }
            try ensureStage(run, stage, attributes["stage"], in: sql)
            let dead = attributes["dead"] == "true"
            let state =
                event.type == EventType.taskStarted
                ? "running" : event.type == EventType.taskSucceeded ? "succeeded" : dead ? "dead" : "failed"
            let previous = try sql.row("SELECT state FROM history_tasks WHERE run = ? AND stage = ? AND part = ?", [run, stage, part])?
                .text(0)
            try sql.execute(
                """
                INSERT INTO history_tasks (run, stage, part, state, attempts, processor, error, started_ms, ended_ms)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (run, stage, part) DO UPDATE SET state = excluded.state,
                    attempts = history_tasks.attempts + excluded.attempts,
                    processor = COALESCE(excluded.processor, history_tasks.processor),
                    error = COALESCE(excluded.error, history_tasks.error),
                    started_ms = COALESCE(excluded.started_ms, history_tasks.started_ms),
                    ended_ms = excluded.ended_ms
                """,
                [
                    run, stage, part, state, event.type == EventType.taskStarted ? 1 : 0, attributes["processor"] ?? event.instance,
                    event.type == EventType.taskSucceeded ? nil : event.message,
                    event.type == EventType.taskStarted ? time : nil, event.type == EventType.taskStarted ? nil : time,
                ]
            )
            switch state {
            case "succeeded":
                try sql.execute(
                    "UPDATE history_stages SET succeeded = succeeded + 1, dead = \(greatest)(dead - ?, 0) WHERE run = ? AND stage = ?",
                    [previous == "dead" ? 1 : 0, run, stage]
                )
                if previous == "dead" {
                    // A dead task replayed and done: the run is no longer held up by it.
                    try update(
                        "dead = \(greatest)(dead - 1, 0), state = CASE WHEN state = 'dead' AND dead <= 1 THEN 'processing' ELSE state END",
                        []
                    )
                }
            case "dead":
                guard previous != "dead" else { break }
                try sql.execute("UPDATE history_stages SET dead = dead + 1 WHERE run = ? AND stage = ?", [run, stage])
                try update(
                    "dead = dead + 1, error = ?, state = CASE WHEN state IN ('failed', 'cancelled') THEN state ELSE 'dead' END",
                    [event.message]
                )
            case "failed":
                try sql.execute("UPDATE history_stages SET failed = failed + 1 WHERE run = ? AND stage = ?", [run, stage])
            default:
                break
            }
        default:
            break
        }
    }

    private static func ensureStage(_ run: String, _ stage: Int, _ name: String?, in sql: any HistorySQL) throws {
        try sql.execute(
            "INSERT INTO history_stages (run, stage, name) VALUES (?, ?, ?) ON CONFLICT (run, stage) DO NOTHING",
            [run, stage, name]
        )
    }
}
