public import Foundation
import GRDB
public import Messaging
import Persistence

/// The algorithm's record of every run request it accepted, so that a request delivered twice runs once,
/// and a run interrupted by a crash or a stop is run again when the service comes back.
///
/// It lives in the same SQLite file as the ``Outbox``: a run's result and its `finished` state are
/// committed in one transaction.
public final class RunLedger: Sendable {
    /// A run as recorded.
    public struct Run: Sendable, Equatable {
        /// The request as received.
        public var request: RunRequest
        /// Where it is in its lifecycle (``RunState``).
        public var state: RunState
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
        migrator.registerMigration("runs-v2") { db in
            // The `cancelled` state (`baton cancel`, overlap policy `replace`).
            try db.execute(
                sql: """
                    CREATE TABLE runs_v2 (
                        run_id TEXT PRIMARY KEY,
                        job TEXT NOT NULL,
                        logical_time TEXT NOT NULL,
                        fired_at TEXT NOT NULL,
                        trigger TEXT NOT NULL,
                        state TEXT NOT NULL CHECK (state IN (\(RunState.allCases.map { "'\($0.rawValue)'" }.joined(separator: ", ")))),
                        attempts INTEGER NOT NULL DEFAULT 0,
                        error TEXT,
                        updated_at TEXT NOT NULL
                    );
                    INSERT INTO runs_v2 SELECT run_id, job, logical_time, fired_at, trigger, state, attempts, error, updated_at FROM runs;
                    DROP TABLE runs;
                    ALTER TABLE runs_v2 RENAME TO runs;
                    CREATE INDEX runs_state ON runs (state);
                    """
            )
        }
    }

    /// Records a request with the pipeline its result will go through (the job's pipeline now: a configuration
    /// changed later does not change it). Returns nil if it is new (now `accepted`), else the run as already
    /// recorded.
    public func accept(_ request: RunRequest, pipeline: Pipeline = .default, now: Date = Date()) async throws -> Run? {
        try await outbox.write { db in
            if let row = try Self.row(request.runID, in: db) {
                return Self.run(row)
            }
            try Outbox.record(pipeline, in: db, now: now)
            try db.executeCached(
                sql: """
                    INSERT INTO runs (run_id, job, logical_time, fired_at, trigger, state, updated_at, pipeline)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    request.runID, request.job, Timestamp.format(request.logicalTime), Timestamp.format(request.firedAt),
                    request.trigger.rawValue, RunState.accepted, Timestamp.format(now), pipeline.version,
                ]
            )
            return nil
        }
    }

    /// Marks a run as started (one more attempt).
    /// - Returns: false if the run cannot start (it was cancelled, or has ended).
    @discardableResult
    public func markRunning(_ runID: String, now: Date = Date()) async throws -> Bool {
        try await transition(runID, .start, now: now) { db in
            try db.executeCached(sql: "UPDATE runs SET attempts = attempts + 1 WHERE run_id = ?", arguments: [runID])
        }
    }

    /// Marks a run finished and hands off its result parts, in one transaction.
    /// - Throws: ``RunLedgerError/notRunning`` if the run is no longer running (cancelled meanwhile): then
    ///   nothing is handed off.
    /// The run's parts become the input of its pipeline's first stage, whose tasks are created.
    /// - Parameter committed: Called once the transaction has committed and before any of its tasks can be sent
    ///   from memory, with what the pipeline did: the run's own events go out there, so that they reach the bus
    ///   before a fast processor's acknowledgement of its tasks.
    @discardableResult
    public func finish(
        _ runID: String,
        parts: [Outbox.StoredPart],
        now: Date? = nil,
        committed: ([Outbox.StageProgress]) -> Void = { _ in }
    ) async throws -> [Outbox.StageProgress] {
        let advance = try await outbox.write { db in
            // Stamped inside the transaction, just before it commits: the parts' `durable_at`.
            let now = now ?? Date()
            guard try Self.apply(.succeed, to: runID, in: db, now: now, error: nil) else { throw RunLedgerError.notRunning(runID) }
            guard let row = try Self.row(runID, in: db) else { throw RunLedgerError.notRunning(runID) }
            let time: String = row["logical_time"]
            return try Outbox.handOff(
                runID: runID,
                job: row["job"],
                logicalTime: Timestamp.parse(time) ?? Date(timeIntervalSince1970: 0),
                parts: parts,
                in: db,
                now: now
            )
        }
        committed(advance.progress)
        var payloads: [String: Data] = [:]
        for part in parts { if let bytes = part.bytes { payloads[part.path] = bytes } }
        outbox.noteCommitted(advance.created, micros: Timestamp.microseconds(), payloads: payloads)
        return advance.progress
    }

    /// Marks a run failed.
    public func fail(_ runID: String, reason: String, now: Date = Date()) async throws {
        try await outbox.write { db in
            _ = try Self.apply(.fail, to: runID, in: db, now: now, error: reason)
        }
    }

    /// Cancels a run: one not yet recorded is recorded `cancelled`, so its request, should it come, never
    /// runs; one that has ended keeps its outcome.
    /// - Returns: the run after the cancel.
    public func cancel(_ runID: String, reason: String, now: Date = Date()) async throws -> Run {
        try await outbox.write { db in
            if let row = try Self.row(runID, in: db) {
                guard try Self.apply(.cancel, to: runID, in: db, now: now, error: reason) else { return Self.run(row) }
            } else {
                // Never requested here: recorded as if accepted and cancelled at once, through the machine.
                let cancelled = RunState.accepted.applying(.cancel) ?? .cancelled
                try db.executeCached(
                    sql: """
                        INSERT INTO runs (run_id, job, logical_time, fired_at, trigger, state, error, updated_at)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        runID, RunID.job(of: runID), "", Timestamp.format(now), RunRequest.Trigger.schedule.rawValue, cancelled, reason,
                        Timestamp.format(now),
                    ]
                )
            }
            guard let row = try Self.row(runID, in: db) else {
                throw RunLedgerError.notRunning(runID)
            }
            return Self.run(row)
        }
    }

    /// Moves a run through ``RunState/applying(_:)`` and runs `also` in the same transaction if it moved.
    private func transition(
        _ runID: String,
        _ event: RunState.Event,
        now: Date,
        also: @escaping @Sendable (Database) throws -> Void = { _ in }
    )
        async throws -> Bool
    {
        try await outbox.write { db in
            guard try Self.apply(event, to: runID, in: db, now: now, error: nil) else { return false }
            try also(db)
            return true
        }
    }

    /// A run's row (every column), from the connection's statement cache.
    private static func row(_ runID: String, in db: Database) throws -> Row? {
        try Row.fetchOne(db.cachedStatement(sql: "SELECT * FROM runs WHERE run_id = ?"), arguments: [runID])
    }

    /// Applies an event to a run's stored state; returns whether it moved.
    private static func apply(_ event: RunState.Event, to runID: String, in db: Database, now: Date, error: String?) throws -> Bool {
        guard let current = try RunState.fetchOne(db.cachedStatement(sql: "SELECT state FROM runs WHERE run_id = ?"), arguments: [runID]),
            let next = current.applying(event)
        else { return false }
        try db.executeCached(
            sql: "UPDATE runs SET state = ?, error = ?, updated_at = ? WHERE run_id = ?",
            arguments: [next, error, Timestamp.format(now), runID]
        )
        return true
    }

    /// Runs left `accepted` or `running` (by a crash or a stop), oldest first: to run again.
    public func unfinished() async throws -> [Run] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM runs WHERE state IN (\(Self.live)) ORDER BY logical_time").map(Self.run)
        }
    }

    /// Runs that ended at or after `since` (their last report may have died with a killed service).
    public func ended(since: Date) async throws -> [Run] {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: "SELECT * FROM runs WHERE state IN (\(Self.ended)) AND updated_at >= ? ORDER BY updated_at",
                arguments: [Timestamp.format(since)]
            ).map(Self.run)
        }
    }

    /// Every run recorded, oldest first (for `baton audit`).
    public func runs() async throws -> [Run] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM runs ORDER BY logical_time").map(Self.run)
        }
    }

    /// One run.
    public func run(_ runID: String) async throws -> Run? {
        try await pool.read { db in
            try Self.row(runID, in: db).map(Self.run)
        }
    }

    /// Runs not ended, and ended, as SQL lists from the machine.
    private static let live = RunState.sqlList(RunState.allCases.filter { !$0.isTerminal })
    private static let ended = RunState.sqlList(RunState.allCases.filter(\.isTerminal))

    private static func run(_ row: Row) -> Run {
        Run(
            request: RunRequest(row: row),
            state: RunState.fromDatabaseValue(row["state"] as DatabaseValue) ?? .failed,
            attempts: row["attempts"],
            error: row["error"]
        )
    }
}

/// Why the run ledger refused a change.
public enum RunLedgerError: Error, CustomStringConvertible {
    /// The run is not running any more (it was cancelled while its result was being sealed).
    case notRunning(String)

    public var description: String {
        switch self {
        case .notRunning(let runID): "\(runID) is no longer running (cancelled?); its result is not handed off"
        }
    }
}
