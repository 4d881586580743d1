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
        /// `fired` (not yet accepted), `accepted`, `finished` or `failed`.
        public var state: String
        /// How many times the request was sent.
        public var sends: Int
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
                        last_slot REAL NOT NULL
                    );
                    CREATE TABLE fires (
                        run_id TEXT PRIMARY KEY,
                        job TEXT NOT NULL,
                        logical_time TEXT NOT NULL,
                        fired_at TEXT NOT NULL,
                        trigger TEXT NOT NULL,
                        state TEXT NOT NULL CHECK (state IN ('fired', 'accepted', 'finished', 'failed')),
                        sends INTEGER NOT NULL DEFAULT 1,
                        last_sent REAL NOT NULL,
                        detail TEXT,
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

    /// Records a fire before it is sent: the run, and (for scheduled fires) the job's last slot.
    /// - Returns: false if this run was already recorded (the slot was fired before).
    @discardableResult
    public func recordFire(_ request: RunRequest, now: Date = Date()) async throws -> Bool {
        try await pool.write { db in
            try db.execute(
                sql: """
                    INSERT OR IGNORE INTO fires (run_id, job, logical_time, fired_at, trigger, state, last_sent, updated_at)
                    VALUES (?, ?, ?, ?, ?, 'fired', ?, ?)
                    """,
                arguments: [
                    request.runID, request.job, Timestamp.format(request.logicalTime), Timestamp.format(request.firedAt),
                    request.trigger.rawValue, now.timeIntervalSince1970, Timestamp.format(now),
                ]
            )
            let isNew = db.changesCount > 0
            if request.trigger == .schedule {
                try db.execute(
                    sql: """
                        INSERT INTO jobs (name, last_slot) VALUES (?, ?)
                        ON CONFLICT (name) DO UPDATE SET last_slot = MAX(last_slot, excluded.last_slot)
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
        return try await pool.write { db in
            try db.execute(
                sql: """
                    UPDATE fires SET state = ?, detail = ?, updated_at = ?
                    WHERE run_id = ? AND state IN (\(allowed.map { "'\($0)'" }.joined(separator: ",")))
                    """,
                arguments: [report.state.rawValue, report.detail, Timestamp.format(now), report.runID]
            )
            return db.changesCount > 0
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
        let logical: String = row["logical_time"]
        let fired: String = row["fired_at"]
        let trigger: String = row["trigger"]
        return Fire(
            request: RunRequest(
                runID: row["run_id"],
                job: row["job"],
                logicalTime: Timestamp.parse(logical) ?? Date(timeIntervalSince1970: 0),
                firedAt: Timestamp.parse(fired) ?? Date(timeIntervalSince1970: 0),
                trigger: RunRequest.Trigger(rawValue: trigger) ?? .schedule
            ),
            state: row["state"],
            sends: row["sends"]
        )
    }
}
