public import Foundation
import GRDB
public import Messaging

/// The algorithm's record of every run request it accepted, so that a request delivered twice runs once,
/// and a run interrupted by a crash or a stop is run again when the service comes back.
///
/// It lives in the same SQLite file as the ``Outbox``: a run's result and its `finished` state are
/// committed in one transaction.
public final class RunLedger: Sendable {
    /// A run's state: `accepted` (recorded, not started), `running`, `finished` or `failed`.
    public struct Run: Sendable, Equatable {
        /// The request as received.
        public var request: RunRequest
        /// The state.
        public var state: String
        /// Execution attempts so far.
        public var attempts: Int
        /// The last failure's reason.
        public var error: String?
    }

    private let pool: DatabasePool
    private let outbox: Outbox

    /// The ledger in the outbox's database file.
    public init(outbox: Outbox) {
        self.outbox = outbox
        pool = outbox.pool
    }

    static func migrate(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("runs-v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE runs (
                        run_id TEXT PRIMARY KEY,
                        job TEXT NOT NULL,
                        logical_time TEXT NOT NULL,
                        fired_at TEXT NOT NULL,
                        trigger TEXT NOT NULL,
                        state TEXT NOT NULL CHECK (state IN ('accepted', 'running', 'finished', 'failed')),
                        attempts INTEGER NOT NULL DEFAULT 0,
                        error TEXT,
                        updated_at TEXT NOT NULL
                    );
                    CREATE INDEX runs_state ON runs (state);
                    """
            )
        }
    }

    /// Records a request. Returns nil if it is new (now `accepted`), else the run as already recorded.
    public func accept(_ request: RunRequest, now: Date = Date()) async throws -> Run? {
        try await outbox.write { db in
            if let row = try Row.fetchOne(db, sql: "SELECT * FROM runs WHERE run_id = ?", arguments: [request.runID]) {
                return Self.run(row)
            }
            try db.execute(
                sql: """
                    INSERT INTO runs (run_id, job, logical_time, fired_at, trigger, state, updated_at)
                    VALUES (?, ?, ?, ?, ?, 'accepted', ?)
                    """,
                arguments: [
                    request.runID, request.job, Timestamp.format(request.logicalTime), Timestamp.format(request.firedAt),
                    request.trigger.rawValue, Timestamp.format(now),
                ]
            )
            return nil
        }
    }

    /// Marks a run as started (one more attempt).
    public func markRunning(_ runID: String, now: Date = Date()) async throws {
        try await outbox.write { db in
            try db.execute(
                sql: "UPDATE runs SET state = 'running', attempts = attempts + 1, updated_at = ? WHERE run_id = ?",
                arguments: [Timestamp.format(now), runID]
            )
        }
    }

    /// Marks a run finished and hands off its result parts, in one transaction.
    public func finish(_ runID: String, outbox entries: [Outbox.Entry], now: Date? = nil) async throws {
        try await outbox.write { db in
            // Stamped inside the transaction, just before it commits: the parts' `durable_at`.
            let now = now ?? Date()
            for entry in entries {
                try Outbox.insert(entry, in: db, now: now)
            }
            try db.execute(
                sql: "UPDATE runs SET state = 'finished', error = NULL, updated_at = ? WHERE run_id = ?",
                arguments: [Timestamp.format(now), runID]
            )
        }
        outbox.noteCommitted(entries, micros: Timestamp.microseconds())
    }

    /// Marks a run failed.
    public func fail(_ runID: String, reason: String, now: Date = Date()) async throws {
        try await outbox.write { db in
            try db.execute(
                sql: "UPDATE runs SET state = 'failed', error = ?, updated_at = ? WHERE run_id = ?",
                arguments: [reason, Timestamp.format(now), runID]
            )
        }
    }

    /// Runs left `accepted` or `running` (by a crash or a stop), oldest first: to run again.
    public func unfinished() async throws -> [Run] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM runs WHERE state IN ('accepted', 'running') ORDER BY logical_time").map(Self.run)
        }
    }

    /// One run.
    public func run(_ runID: String) async throws -> Run? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM runs WHERE run_id = ?", arguments: [runID]).map(Self.run)
        }
    }

    private static func run(_ row: Row) -> Run {
        Run(request: RunRequest(row: row), state: row["state"], attempts: row["attempts"], error: row["error"])
    }
}

extension RunRequest {
    /// The request stored in a row with `run_id`, `job`, `logical_time`, `fired_at` and `trigger` columns.
    init(row: Row) {
        let logical: String = row["logical_time"]
        let fired: String = row["fired_at"]
        let trigger: String = row["trigger"]
        self.init(
            runID: row["run_id"],
            job: row["job"],
            logicalTime: Timestamp.parse(logical) ?? Date(timeIntervalSince1970: 0),
            firedAt: Timestamp.parse(fired) ?? Date(timeIntervalSince1970: 0),
            trigger: RunRequest.Trigger(rawValue: trigger) ?? .schedule
        )
    }
}
