import Foundation
import GRDB
public import Messaging

/// The algorithm's durable hand-off queue: a result is recorded here (after its raw file is on disk)
/// before anything is sent, and a sender drains it into the results socket.
///
/// Rows move `pending → sent → acked`. The file is SQLite in WAL mode under the data directory.
public final class Outbox: Sendable {
    /// One result part waiting to be delivered.
    public struct Entry: Sendable, Equatable {
        /// The part's header as it will be sent.
        public var header: ResultHeader
        /// The raw result file.
        public var path: String
        /// Delivery state.
        public var state: String

        /// Creates an entry.
        public init(header: ResultHeader, path: String, state: String = "pending") {
            self.header = header
            self.path = path
            self.state = state
        }
    }

    private let pool: DatabasePool

    /// Opens (creating if needed) the outbox.
    /// - Parameter path: The SQLite file.
    public init(path: String) throws {
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent,
            withIntermediateDirectories: true
        )
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE outbox (
                        seq INTEGER PRIMARY KEY AUTOINCREMENT,
                        run_id TEXT NOT NULL,
                        part INTEGER NOT NULL,
                        parts INTEGER NOT NULL,
                        job TEXT NOT NULL,
                        logical_time TEXT NOT NULL,
                        path TEXT NOT NULL,
                        size INTEGER NOT NULL,
                        sha256 TEXT NOT NULL,
                        state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'acked')),
                        attempts INTEGER NOT NULL DEFAULT 0,
                        created_at TEXT NOT NULL,
                        sent_at TEXT,
                        acked_at TEXT,
                        UNIQUE (run_id, part)
                    );
                    CREATE INDEX outbox_state ON outbox (state, seq);
                    """
            )
        }
        pool = try ResultStore.open(path: path) { try migrator.migrate($0) }
    }

    /// Records a result part for delivery (committed when this returns). Adding the same part again does nothing.
    public func add(_ entry: Entry) async throws {
        try await pool.write { db in
            try db.execute(
                sql: """
                    INSERT OR IGNORE INTO outbox (run_id, part, parts, job, logical_time, path, size, sha256, state, created_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)
                    """,
                arguments: [
                    entry.header.runID, entry.header.part, entry.header.parts, entry.header.job,
                    Timestamp.format(entry.header.logicalTime), entry.path, entry.header.size, entry.header.sha256,
                    Timestamp.format(Date()),
                ]
            )
        }
    }

    /// The oldest part not yet sent, if any.
    public func nextPending() async throws -> Entry? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM outbox WHERE state = 'pending' ORDER BY seq LIMIT 1").map(Self.entry)
        }
    }

    /// Marks a part as handed to the socket.
    public func markSent(runID: String, part: Int) async throws {
        try await pool.write { db in
            try db.execute(
                sql:
                    "UPDATE outbox SET state = 'sent', attempts = attempts + 1, sent_at = ? WHERE run_id = ? AND part = ? AND state = 'pending'",
                arguments: [Timestamp.format(Date()), runID, part]
            )
        }
    }

    /// Marks a part as acknowledged by a processor. Returns false if it was unknown or already acknowledged.
    @discardableResult
    public func markAcked(runID: String, part: Int) async throws -> Bool {
        try await pool.write { db in
            try db.execute(
                sql: "UPDATE outbox SET state = 'acked', acked_at = ? WHERE run_id = ? AND part = ? AND state != 'acked'",
                arguments: [Timestamp.format(Date()), runID, part]
            )
            return db.changesCount > 0
        }
    }

    /// How many parts are in each state.
    public func counts() async throws -> [String: Int] {
        try await pool.read { db in
            var counts: [String: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT state, COUNT(*) AS n FROM outbox GROUP BY state") {
                counts[row["state"]] = row["n"]
            }
            return counts
        }
    }

    private static func entry(_ row: Row) -> Entry {
        let time: String = row["logical_time"]
        return Entry(
            header: ResultHeader(
                runID: row["run_id"],
                job: row["job"],
                logicalTime: Timestamp.parse(time) ?? Date(timeIntervalSince1970: 0),
                part: row["part"],
                parts: row["parts"],
                size: row["size"],
                sha256: row["sha256"],
                attempt: (row["attempts"] as Int) + 1
            ),
            path: row["path"],
            state: row["state"]
        )
    }
}
