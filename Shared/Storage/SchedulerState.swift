public import Foundation
import GRDB
public import Messaging

/// The scheduler's durable state: each job's last fired slot, and every fired run with what the algorithm
/// reported of it. A slot is recorded here before its run request is sent, so a restart neither fires a
/// slot twice nor forgets one it was firing; requests the algorithm never accepted are sent again.
public final class SchedulerState: Sendable {
    /// A fired run and the latest report about it.
    public struct Fire: Sendable, Equatable {
        /// The request as fired.
        public var request: RunRequest
        /// Where it is in its lifecycle.
        public var state: FireState
        /// How many times the request was sent.
        public var sends: Int
        /// Why it was skipped, or why it failed.
        public var detail: String?
        /// How long the run took, once it ended.
        public var duration: Double?
        /// Whether a user asked to cancel it (the cancel is sent until the algorithm reports an end).
        public var cancelRequested: Bool
        /// Whether the cancel is only for a run that has not started (`baton cancel --queued`).
        public var cancelQueuedOnly: Bool
        /// When the algorithm last reported on it (any report, news or not).
        public var lastHeard: Date?
        /// The latest question (request) the algorithm answered about it: that request's `firedAt`.
        public var lastAnswer: Date?
    }

    /// One slot or run to record.
    public struct Record: Sendable {
        /// The request.
        public var request: RunRequest
        /// `fired`, `queued` or `skipped`.
        public var state: FireState
        /// Why it was skipped or queued.
        public var detail: String?

        /// Creates a record.
        public init(_ request: RunRequest, state: FireState = .fired, detail: String? = nil) {
            self.request = request
            self.state = state
            self.detail = detail
        }
    }

    private let pool: DatabasePool

    /// Opens (creating if needed) the state database.
    public init(path: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE jobs (
                        name TEXT PRIMARY KEY,
                        last_slot REAL,
                        paused INTEGER NOT NULL DEFAULT 0
                    );
                    CREATE TABLE fires (
                        run_id TEXT PRIMARY KEY,
                        job TEXT NOT NULL,
                        logical_time TEXT NOT NULL,
                        fired_at TEXT NOT NULL,
                        trigger TEXT NOT NULL,
                        state TEXT NOT NULL CHECK (state IN ('fired', 'accepted', 'finished', 'failed', 'skipped', 'queued')),
                        sends INTEGER NOT NULL DEFAULT 1,
                        last_sent REAL NOT NULL,
                        detail TEXT,
                        accepted_at REAL,
                        ended_at REAL,
                        updated_at TEXT NOT NULL
                    );
                    CREATE INDEX fires_state ON fires (state, last_sent);
                    CREATE INDEX fires_job_time ON fires (job, logical_time);
                    """
            )
        }
        migrator.registerMigration("v2") { db in
            // Explicit lifecycle (`running`, `cancelled`), cancel requests, when the algorithm last spoke of a
            // run (reconciliation), and slots as integer milliseconds.
            try db.execute(
                sql: """
                    CREATE TABLE fires_v2 (
                        run_id TEXT PRIMARY KEY,
                        job TEXT NOT NULL,
                        logical_time TEXT NOT NULL,
                        fired_at TEXT NOT NULL,
                        trigger TEXT NOT NULL,
                        state TEXT NOT NULL CHECK (state IN (\(FireState.allCases.map { "'\($0.rawValue)'" }.joined(separator: ", ")))),
                        sends INTEGER NOT NULL DEFAULT 1,
                        last_sent REAL NOT NULL,
                        detail TEXT,
                        accepted_at REAL,
                        ended_at REAL,
                        updated_at TEXT NOT NULL,
                        cancel_requested INTEGER NOT NULL DEFAULT 0,
                        last_heard REAL
                    );
                    INSERT INTO fires_v2 (run_id, job, logical_time, fired_at, trigger, state, sends, last_sent, detail,
                        accepted_at, ended_at, updated_at)
                    SELECT run_id, job, logical_time, fired_at, trigger, state, sends, last_sent, detail, accepted_at, ended_at,
                        updated_at FROM fires;
                    DROP TABLE fires;
                    ALTER TABLE fires_v2 RENAME TO fires;
                    CREATE INDEX fires_state ON fires (state, last_sent);
                    CREATE INDEX fires_job_time ON fires (job, logical_time);
                    ALTER TABLE jobs ADD COLUMN last_slot_ms INTEGER;
                    UPDATE jobs SET last_slot_ms = CAST(ROUND(last_slot * 1000) AS INTEGER) WHERE last_slot IS NOT NULL;
                    """
            )
        }
        migrator.registerMigration("v3") { db in
            // The latest question the algorithm answered about a run (its `askedAt`): overlap decisions wait
            // for an answer to a question asked after they began.
            try db.execute(sql: "ALTER TABLE fires ADD COLUMN last_answer REAL")
        }
        pool = try ResultStore.open(path: path) { try migrator.migrate($0) }
    }

    /// Whether an error means the disk (or the database's size limit) is full.
    public static func isDiskFull(_ error: any Error) -> Bool {
        guard let error = error as? DatabaseError else { return false }
        return error.resultCode == .SQLITE_FULL || error.extendedResultCode == .SQLITE_IOERR_WRITE
    }

    /// Caps the database at `pages` pages (SQLite's `max_page_count`), so tests can fill it like a full disk;
    /// nil lifts the cap.
    public func limitSize(pages: Int?) async throws {
        try await pool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA max_page_count = \(pages ?? 1_073_741_823)")
        }
    }

    /// The last slot handled for a job (fired or skipped), if any: where its timer resumes.
    public func lastSlot(job: String) async throws -> Date? {
        try await pool.read { db in
            try Int64.fetchOne(db, sql: "SELECT last_slot_ms FROM jobs WHERE name = ?", arguments: [job]).map {
                Timestamp.date(milliseconds: $0)
            }
        }
    }

    /// Records a fire before it is sent (state `fired`), or a slot not run (`skipped`, with the reason), or
    /// one waiting for the previous run (`queued`); scheduled slots also advance the job's last slot.
    /// - Returns: false if this run was already recorded (the slot was handled before).
    @discardableResult
    public func recordFire(_ request: RunRequest, state: FireState = .fired, detail: String? = nil, now: Date = Date()) async throws -> Bool
    {
        try await record([Record(request, state: state, detail: detail)], now: now)[0]
    }

    /// Records several slots in one transaction (a catch-up after downtime): all or none.
    /// - Returns: for each record, whether it was new.
    public func record(_ records: [Record], now: Date = Date()) async throws -> [Bool] {
        guard !records.isEmpty else { return [] }
        return try await pool.write { db in
            var isNew: [Bool] = []
            var lastSlots: [String: Int64] = [:]
            for record in records {
                let request = record.request
                try db.execute(
                    sql: """
                        INSERT OR IGNORE INTO fires (run_id, job, logical_time, fired_at, trigger, state, detail, last_sent, updated_at,
                            ended_at)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        request.runID, request.job, Timestamp.format(request.logicalTime), Timestamp.format(request.firedAt),
                        request.trigger.rawValue, record.state.rawValue, record.detail, now.timeIntervalSince1970, Timestamp.format(now),
                        record.state.isTerminal ? now.timeIntervalSince1970 : nil,
                    ]
                )
                isNew.append(db.changesCount > 0)
                if request.trigger == .schedule {
                    let slot = Timestamp.milliseconds(request.logicalTime)
                    lastSlots[request.job] = max(lastSlots[request.job] ?? slot, slot)
                }
            }
            for (job, slot) in lastSlots {
                try db.execute(
                    sql: """
                        INSERT INTO jobs (name, last_slot_ms) VALUES (?, ?)
                        ON CONFLICT (name) DO UPDATE SET last_slot_ms = MAX(COALESCE(last_slot_ms, excluded.last_slot_ms), excluded.last_slot_ms)
                        """,
                    arguments: [job, slot]
                )
            }
            return isNew
        }
    }

    /// Requests not yet accepted whose last send is older than `before`: to send again.
    public func unaccepted(sentBefore before: Date) async throws -> [RunRequest] {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: "SELECT * FROM fires WHERE state = 'fired' AND last_sent <= ? ORDER BY logical_time",
                arguments: [before.timeIntervalSince1970]
            ).map { Self.fire($0).request }
        }
    }

    /// When the oldest unaccepted request was last sent, if any is waiting.
    public func oldestUnacceptedSend() async throws -> Date? {
        try await pool.read { db in
            try Double.fetchOne(db, sql: "SELECT MIN(last_sent) FROM fires WHERE state = 'fired'").map { Date(timeIntervalSince1970: $0) }
        }
    }

    /// Runs the algorithm has (accepted or running) that it has not spoken of, nor been asked about, since
    /// `before`: to ask again. A report lost on the way (the scheduler killed as it arrived) is found this way.
    public func unsettled(quietSince before: Date) async throws -> [Fire] {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT * FROM fires WHERE state IN ('accepted', 'running')
                    AND last_sent <= ? AND COALESCE(last_heard, 0) <= ? ORDER BY logical_time
                    """,
                arguments: [before.timeIntervalSince1970, before.timeIntervalSince1970]
            ).map(Self.fire)
        }
    }

    /// Runs a user asked to cancel that have not ended yet: the cancel is sent until they do.
    public func cancelsPending() async throws -> [Fire] {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: "SELECT * FROM fires WHERE cancel_requested = 1 AND state IN ('fired', 'accepted', 'running') ORDER BY logical_time"
            ).map(Self.fire)
        }
    }

    /// Notes that a request (or a question about it) was sent again.
    public func markResent(_ runID: String, now: Date = Date()) async throws {
        try await pool.write { db in
            try db.execute(
                sql: "UPDATE fires SET sends = sends + 1, last_sent = ? WHERE run_id = ?",
                arguments: [now.timeIntervalSince1970, runID]
            )
        }
    }

    /// Applies a report from the algorithm through ``FireState/applying(_:)``; terminal states never change.
    /// - Returns: the new state, or nil if the run is unknown or the report is not news.
    @discardableResult
    public func apply(_ report: RunReport, now: Date = Date()) async throws -> FireState? {
        try await pool.write { db in
            if let asked = report.askedAt {
                try db.execute(
                    sql: "UPDATE fires SET last_answer = MAX(COALESCE(last_answer, 0), ?) WHERE run_id = ?",
                    arguments: [asked.timeIntervalSince1970, report.runID]
                )
            }
            return try Self.transition(report.runID, .reported(report.state), detail: report.detail, now: now, in: db)
        }
    }

    /// Moves a fire through its state machine and persists the result.
    /// - Returns: the new state, or nil if the run is unknown or the event changes nothing.
    @discardableResult
    public func transition(_ runID: String, _ event: FireState.Event, detail: String? = nil, now: Date = Date()) async throws -> FireState?
    {
        try await pool.write { db in try Self.transition(runID, event, detail: detail, now: now, in: db) }
    }

    private static func transition(
        _ runID: String,
        _ event: FireState.Event,
        detail: String?,
        now: Date,
        in db: Database
    ) throws -> FireState? {
        let seconds = now.timeIntervalSince1970
        guard let text = try String.fetchOne(db, sql: "SELECT state FROM fires WHERE run_id = ?", arguments: [runID]),
            let current = FireState(rawValue: text)
        else { return nil }
        if case .reported = event {
            try db.execute(sql: "UPDATE fires SET last_heard = ? WHERE run_id = ?", arguments: [seconds, runID])
        }
        guard let next = current.applying(event) else { return nil }
        let sent: Double? = event == .released ? seconds : nil
        try db.execute(
            sql: """
                UPDATE fires SET state = ?, detail = COALESCE(?, detail), updated_at = ?,
                    accepted_at = CASE WHEN ? IN ('accepted', 'running') THEN COALESCE(accepted_at, ?) ELSE accepted_at END,
                    ended_at = CASE WHEN ? THEN ? ELSE NULL END,
                    last_sent = COALESCE(?, last_sent)
                WHERE run_id = ?
                """,
            arguments: [next.rawValue, detail, Timestamp.format(now), next.rawValue, seconds, next.isTerminal, seconds, sent, runID]
        )
        return next
    }

    /// Live runs of a job that were fired and have not ended (sent, accepted or running): what the overlap
    /// policy counts. Backfilled runs have their own lane at the algorithm and are never counted.
    public func inFlight(job: String) async throws -> [Fire] {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT * FROM fires WHERE job = ? AND state IN ('fired', 'accepted', 'running') AND trigger != 'backfill'
                    ORDER BY logical_time
                    """,
                arguments: [job]
            ).map(Self.fire)
        }
    }

    /// Every run of a job that has not ended (queued, sent, accepted or running), live or backfilled.
    public func unfinished(job: String) async throws -> [Fire] {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: "SELECT * FROM fires WHERE job = ? AND state IN ('queued', 'fired', 'accepted', 'running') ORDER BY logical_time",
                arguments: [job]
            ).map(Self.fire)
        }
    }

    /// Runs of a job not started yet: queued at the scheduler, or sent and waiting at the algorithm.
    public func waiting(job: String) async throws -> [Fire] {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: "SELECT * FROM fires WHERE job = ? AND state IN ('queued', 'fired', 'accepted') ORDER BY logical_time",
                arguments: [job]
            ).map(Self.fire)
        }
    }

    /// The oldest queued fire of a job, if any.
    public func oldestQueued(job: String) async throws -> Fire? {
        try await pool.read { db in
            try Row.fetchOne(
                db,
                sql: "SELECT * FROM fires WHERE job = ? AND state = 'queued' ORDER BY logical_time LIMIT 1",
                arguments: [job]
            ).map(Self.fire)
        }
    }

    /// Moves a queued fire to `fired` (it is being sent now).
    /// - Returns: whether it was queued.
    @discardableResult
    public func release(_ runID: String, now: Date = Date()) async throws -> Bool {
        try await transition(runID, .released, now: now) != nil
    }

    /// Asks for runs to be cancelled, in one transaction: a queued fire ends `cancelled` at once; a run in
    /// flight is marked, and the cancel goes to the algorithm until it reports the run's end.
    /// - Returns: each fire after the request (unknown ones left out).
    public func requestCancel(_ runIDs: [String], reason: String, queuedOnly: Bool = false, now: Date = Date()) async throws -> [Fire] {
        try await pool.write { db in
            var fires: [Fire] = []
            for runID in runIDs {
                if try Self.transition(runID, .cancel, detail: reason, now: now, in: db) == nil {
                    try db.execute(
                        sql: """
                            UPDATE fires SET cancel_requested = ?, detail = ?, updated_at = ?
                            WHERE run_id = ? AND state IN ('fired', 'accepted', 'running')
                            """,
                        arguments: [queuedOnly ? 2 : 1, reason, Timestamp.format(now), runID]
                    )
                }
                if let row = try Row.fetchOne(db, sql: "SELECT * FROM fires WHERE run_id = ?", arguments: [runID]) {
                    fires.append(Self.fire(row))
                }
            }
            return fires
        }
    }

    /// Asks for one run to be cancelled (see the list form).
    public func requestCancel(_ runID: String, reason: String, queuedOnly: Bool = false, now: Date = Date()) async throws -> Fire? {
        try await requestCancel([runID], reason: reason, queuedOnly: queuedOnly, now: now).first
    }

    /// The durations (seconds) of a job's last `limit` finished runs, newest first.
    public func recentDurations(job: String, limit: Int = 10) async throws -> [Double] {
        try await pool.read { db in
            try Double.fetchAll(
                db,
                sql: """
                    SELECT ended_at - accepted_at FROM fires WHERE job = ? AND state = 'finished'
                    AND accepted_at IS NOT NULL AND ended_at IS NOT NULL ORDER BY logical_time DESC LIMIT ?
                    """,
                arguments: [job, limit]
            )
        }
    }

    /// The latest run of a job that ended (finished, failed or cancelled).
    public func lastEnded(job: String) async throws -> Fire? {
        try await pool.read { db in
            try Row.fetchOne(
                db,
                sql:
                    "SELECT * FROM fires WHERE job = ? AND state IN ('finished', 'failed', 'cancelled') ORDER BY logical_time DESC LIMIT 1",
                arguments: [job]
            ).map(Self.fire)
        }
    }

    /// Pauses or resumes a job (kept across restarts).
    public func setPaused(job: String, _ paused: Bool) async throws {
        try await pool.write { db in
            try db.execute(
                sql: "INSERT INTO jobs (name, paused) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET paused = excluded.paused",
                arguments: [job, paused]
            )
        }
    }

    /// Whether a job is paused.
    public func isPaused(job: String) async throws -> Bool {
        try await pool.read { db in
            try Bool.fetchOne(db, sql: "SELECT paused FROM jobs WHERE name = ?", arguments: [job]) ?? false
        }
    }

    /// Whether a run id was recorded (in any state).
    public func contains(runID: String) async throws -> Bool {
        try await pool.read { db in
            try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM fires WHERE run_id = ?)", arguments: [runID]) ?? false
        }
    }

    /// The state of a run id, if recorded.
    public func state(runID: String) async throws -> FireState? {
        try await fire(runID)?.state
    }

    /// One fire.
    public func fire(_ runID: String) async throws -> Fire? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM fires WHERE run_id = ?", arguments: [runID]).map(Self.fire)
        }
    }

    /// Every fire of a job (or all), oldest first.
    public func fires(job: String? = nil) async throws -> [Fire] {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: "SELECT * FROM fires WHERE (? IS NULL OR job = ?) ORDER BY logical_time",
                arguments: [job, job]
            ).map(Self.fire)
        }
    }

    private static func fire(_ row: Row) -> Fire {
        let state: String = row["state"]
        return Fire(
            request: RunRequest(row: row),
            state: FireState(rawValue: state) ?? .fired,
            sends: row["sends"],
            detail: row["detail"],
            duration: (row["ended_at"] as Double?).flatMap { end in (row["accepted_at"] as Double?).map { end - $0 } },
            cancelRequested: (row["cancel_requested"] as Int) != 0,
            cancelQueuedOnly: (row["cancel_requested"] as Int) == 2,
            lastHeard: (row["last_heard"] as Double?).map { Date(timeIntervalSince1970: $0) },
            lastAnswer: (row["last_answer"] as Double?).map { Date(timeIntervalSince1970: $0) }
        )
    }
}
