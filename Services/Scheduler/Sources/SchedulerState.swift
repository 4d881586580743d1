// About 300 lines: the scheduler's store, its schema and migrations with the writes that keep the accounting
// invariant; the read-only queries are in SchedulerState+Queries.swift.
public import Foundation
import GRDB
public import Messaging
import Persistence

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

    let pool: DatabasePool

    /// Opens (creating if needed) the state database.
    public init(path: String) async throws {
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
        pool = try await SQLiteFile.open(path: path, migrator: migrator)
    }

    /// Whether an error means the disk (or the database's size limit) is full.
    public static func isDiskFull(_ error: any Error) -> Bool {
        SQLiteFile.isDiskFull(error)
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
                        request.trigger.rawValue, record.state, record.detail, now.timeIntervalSince1970, Timestamp.format(now),
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
        guard let current = try FireState.fetchOne(db, sql: "SELECT state FROM fires WHERE run_id = ?", arguments: [runID]) else {
            return nil
        }
        if case .reported = event {
            try db.execute(sql: "UPDATE fires SET last_heard = ? WHERE run_id = ?", arguments: [seconds, runID])
        }
        guard let next = current.applying(event) else { return nil }
        let sent: Double? = event == .released ? seconds : nil
        try db.execute(
            sql: """
                UPDATE fires SET state = ?, detail = COALESCE(?, detail), updated_at = ?,
                    accepted_at = CASE WHEN ? THEN COALESCE(accepted_at, ?) ELSE accepted_at END,
                    ended_at = CASE WHEN ? THEN ? ELSE NULL END,
                    last_sent = COALESCE(?, last_sent)
                WHERE run_id = ?
                """,
            arguments: [
                next, detail, Timestamp.format(now), next == .accepted || next == .running, seconds, next.isTerminal, seconds, sent, runID,
            ]
        )
        return next
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
                            WHERE run_id = ? AND state IN (\(Self.inFlight))
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

    /// Pauses or resumes a job (kept across restarts).
    public func setPaused(job: String, _ paused: Bool) async throws {
        try await pool.write { db in
            try db.execute(
                sql: "INSERT INTO jobs (name, paused) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET paused = excluded.paused",
                arguments: [job, paused]
            )
        }
    }
}
