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
        /// `fired` (not yet accepted), `accepted`, `finished`, `failed`, `skipped` or `queued`.
        public var state: String
        /// How many times the request was sent.
        public var sends: Int
        /// Why it was skipped, or why it failed.
        public var detail: String?
        /// How long the run took, once it ended.
        public var duration: Double?
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
        pool = try ResultStore.open(path: path) { try migrator.migrate($0) }
    }

    /// The last slot fired for a job, if any.
    public func lastSlot(job: String) async throws -> Date? {
        try await pool.read { db in
            try Double.fetchOne(db, sql: "SELECT last_slot FROM jobs WHERE name = ?", arguments: [job]).map {
                Date(timeIntervalSince1970: $0)
            }
        }
    }

    /// Records a fire before it is sent (state `fired`), or a slot not run (`skipped`, with the reason), or
    /// one waiting for the previous run (`queued`); scheduled slots also advance the job's last slot.
    /// - Returns: false if this run was already recorded (the slot was handled before).
    @discardableResult
    public func recordFire(_ request: RunRequest, state: String = "fired", detail: String? = nil, now: Date = Date()) async throws -> Bool {
        try await pool.write { db in
            try db.execute(
                sql: """
                    INSERT OR IGNORE INTO fires (run_id, job, logical_time, fired_at, trigger, state, detail, last_sent, updated_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    request.runID, request.job, Timestamp.format(request.logicalTime), Timestamp.format(request.firedAt),
                    request.trigger.rawValue, state, detail, now.timeIntervalSince1970, Timestamp.format(now),
                ]
            )
            let isNew = db.changesCount > 0
            if request.trigger == .schedule {
                try db.execute(
                    sql: """
                        INSERT INTO jobs (name, last_slot) VALUES (?, ?)
                        ON CONFLICT (name) DO UPDATE SET last_slot = MAX(COALESCE(last_slot, excluded.last_slot), excluded.last_slot)
                        """,
                    arguments: [request.job, request.logicalTime.timeIntervalSince1970]
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

    /// Notes that a request was sent again.
    public func markResent(_ runID: String, now: Date = Date()) async throws {
        try await pool.write { db in
            try db.execute(
                sql: "UPDATE fires SET sends = sends + 1, last_sent = ? WHERE run_id = ?",
                arguments: [now.timeIntervalSince1970, runID]
            )
        }
    }

    /// Applies a report from the algorithm. States only move forward (`fired → accepted → finished|failed`).
    /// - Returns: false if the run is unknown or the report is not news.
    @discardableResult
    public func apply(_ report: RunReport, now: Date = Date()) async throws -> Bool {
        let allowed: [String] =
            switch report.state {
            case .accepted: ["fired"]
            case .finished, .failed: ["fired", "accepted", "failed"]
            }
        let seconds = now.timeIntervalSince1970
        return try await pool.write { db in
            try db.execute(
                sql: """
                    UPDATE fires SET state = ?, detail = ?, updated_at = ?,
                        accepted_at = COALESCE(accepted_at, ?),
                        ended_at = CASE WHEN ? = 'accepted' THEN NULL ELSE ? END
                    WHERE run_id = ? AND state IN (\(allowed.map { "'\($0)'" }.joined(separator: ",")))
                    """,
                arguments: [
                    report.state.rawValue, report.detail, Timestamp.format(now), seconds, report.state.rawValue, seconds, report.runID,
                ]
            )
            return db.changesCount > 0
        }
    }

    /// Runs of a job that were fired and have not ended (sent, or accepted and running).
    public func inFlight(job: String) async throws -> [Fire] {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: "SELECT * FROM fires WHERE job = ? AND state IN ('fired', 'accepted') ORDER BY logical_time",
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
    public func release(_ runID: String, now: Date = Date()) async throws {
        try await pool.write { db in
            try db.execute(
                sql: "UPDATE fires SET state = 'fired', last_sent = ?, updated_at = ? WHERE run_id = ? AND state = 'queued'",
                arguments: [now.timeIntervalSince1970, Timestamp.format(now), runID]
            )
        }
    }

    /// Marks a run as stopped by the scheduler (overlap policy `replace`).
    public func markReplaced(_ runID: String, by newRunID: String, now: Date = Date()) async throws {
        try await pool.write { db in
            try db.execute(
                sql:
                    "UPDATE fires SET state = 'failed', detail = ?, ended_at = ?, updated_at = ? WHERE run_id = ? AND state IN ('fired', 'accepted')",
                arguments: ["replaced by \(newRunID)", now.timeIntervalSince1970, Timestamp.format(now), runID]
            )
        }
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

    /// The latest run of a job that ended (finished or failed).
    public func lastEnded(job: String) async throws -> Fire? {
        try await pool.read { db in
            try Row.fetchOne(
                db,
                sql: "SELECT * FROM fires WHERE job = ? AND state IN ('finished', 'failed') ORDER BY logical_time DESC LIMIT 1",
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
    public func state(runID: String) async throws -> String? {
        try await pool.read { db in
            try String.fetchOne(db, sql: "SELECT state FROM fires WHERE run_id = ?", arguments: [runID])
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
        Fire(
            request: RunRequest(row: row),
            state: row["state"],
            sends: row["sends"],
            detail: row["detail"],
            duration: (row["ended_at"] as Double?).flatMap { end in (row["accepted_at"] as Double?).map { end - $0 } }
        )
    }
}
