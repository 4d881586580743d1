public import Foundation
import GRDB
public import Messaging

/// The processors' SQLite store: one row per stored result part, and for JSON-lines results one row per line.
///
/// Storing is idempotent by key `(run_id, part)`: each part is stored in one transaction, and a part already
/// there is reported as a duplicate and left as it is. Any number of processes may share the file (WAL mode,
/// with a busy timeout for concurrent writers).
public final class ResultStore: Sendable {
    /// What storing a part did.
    public enum Outcome: Sendable, Equatable {
        /// Newly stored, with this many JSON-lines records (0 for a blob).
        case stored(records: Int)
        /// Already stored earlier; nothing changed.
        case duplicate
    }

    /// The database file.
    public let path: String
    private let pool: DatabasePool

    /// Opens (creating and migrating if needed) the store.
    /// - Parameter path: The SQLite file.
    public init(path: String) throws {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        pool = try Self.open(path: path) { try Self.migrator.migrate($0) }
        self.path = path
    }

    /// Opens a WAL database, retrying while another process holds the lock that switching to WAL needs
    /// (SQLite does not apply the busy timeout to that step, so processors starting together can collide).
    static func open(path: String, migrate: (DatabasePool) throws -> Void) throws -> DatabasePool {
        var configuration = GRDB.Configuration()
        configuration.busyMode = .timeout(30)
        var attempt = 0
        while true {
            do {
                let pool = try DatabasePool(path: path, configuration: configuration)
                // GRDB sets WAL databases to synchronous=NORMAL, which survives a killed process but not a power
                // loss or kernel crash: the last commits can roll back. Baton acknowledges and reports what it
                // committed, so every commit must be on disk: FULL syncs the WAL at each commit.
                try pool.writeWithoutTransaction { try $0.execute(sql: "PRAGMA synchronous = FULL") }
                try migrate(pool)
                return pool
            } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY && attempt < 50 {
                attempt += 1
                usleep(UInt32(20_000 + (attempt * 10_000)))
            } catch let error as DatabaseError
                where error.resultCode == .SQLITE_ERROR && "\(error)".contains("already exists") && attempt < 50
            {
                // Another process created the schema between our check and our migration (processors sharing a
                // store, starting together): open again and find it migrated.
                attempt += 1
                usleep(UInt32(20_000 + (attempt * 10_000)))
            }
        }
    }

    private static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE results (
                        run_id TEXT NOT NULL,
                        part INTEGER NOT NULL,
                        job TEXT NOT NULL,
                        logical_time TEXT NOT NULL,
                        size INTEGER NOT NULL,
                        sha256 TEXT NOT NULL,
                        format TEXT NOT NULL CHECK (format IN ('jsonl', 'blob', 'command')),
                        blob BLOB,
                        processor TEXT NOT NULL,
                        stored_at TEXT NOT NULL,
                        PRIMARY KEY (run_id, part)
                    );
                    CREATE TABLE records (
                        run_id TEXT NOT NULL,
                        part INTEGER NOT NULL,
                        line INTEGER NOT NULL,
                        data TEXT NOT NULL,
                        PRIMARY KEY (run_id, part, line),
                        FOREIGN KEY (run_id, part) REFERENCES results (run_id, part) ON DELETE CASCADE
                    );
                    CREATE INDEX results_job_time ON results (job, logical_time);
                    """
            )
        }
        return migrator
    }

    /// Stores one result part with the built-in `store` processor: JSON lines become records, anything else a blob.
    /// - Parameters:
    ///   - header: The part's header (key, job, checksum).
    ///   - payload: The raw result bytes, already checked against the header.
    ///   - processor: The storing processor's instance name.
    public func store(_ header: ResultHeader, payload: Data, processor: String) async throws -> Outcome {
        let lines = Self.jsonLines(payload)
        return try await pool.write { db in
            if try Self.exists(db, header) { return .duplicate }
            try Self.insertResult(
                db,
                header,
                format: lines == nil ? "blob" : "jsonl",
                blob: lines == nil ? payload : nil,
                processor: processor
            )
            for (index, line) in (lines ?? []).enumerated() {
                try db.execute(
                    sql: "INSERT INTO records (run_id, part, line, data) VALUES (?, ?, ?, ?)",
                    arguments: [header.runID, header.part, index, line]
                )
            }
            return .stored(records: lines?.count ?? 0)
        }
    }

    /// True when a part was already stored (or processed by a command).
    public func contains(runID: String, part: Int) async throws -> Bool {
        try await pool.read { db in
            try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM results WHERE run_id = ? AND part = ?)", arguments: [runID, part])
                ?? false
        }
    }

    /// Records that an external processor command handled a part, so that a redelivery is recognised.
    /// - Returns: ``Outcome/duplicate`` if it was already recorded.
    public func recordProcessed(_ header: ResultHeader, processor: String) async throws -> Outcome {
        try await pool.write { db in
            if try Self.exists(db, header) { return .duplicate }
            try Self.insertResult(db, header, format: "command", blob: nil, processor: processor)
            return .stored(records: 0)
        }
    }

    /// Removes a stored part and its records (for `baton replay --overwrite`).
    public func delete(runID: String, part: Int) async throws {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM records WHERE run_id = ? AND part = ?", arguments: [runID, part])
            try db.execute(sql: "DELETE FROM results WHERE run_id = ? AND part = ?", arguments: [runID, part])
        }
    }

    /// Number of stored parts.
    /// Every stored part's key and checksum, for `baton audit`.
    public func storedParts() async throws -> [(runID: String, part: Int, size: Int, sha256: String)] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT run_id, part, size, sha256 FROM results").map {
                (runID: $0["run_id"], part: $0["part"], size: $0["size"], sha256: $0["sha256"])
            }
        }
    }

    public func resultCount() async throws -> Int {
        try await pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM results") ?? 0 }
    }

    /// The records of one part, in line order.
    public func records(runID: String, part: Int = 0) async throws -> [String] {
        try await pool.read { db in
            try String.fetchAll(db, sql: "SELECT data FROM records WHERE run_id = ? AND part = ? ORDER BY line", arguments: [runID, part])
        }
    }

    private static func exists(_ db: Database, _ header: ResultHeader) throws -> Bool {
        try Bool.fetchOne(
            db,
            sql: "SELECT EXISTS (SELECT 1 FROM results WHERE run_id = ? AND part = ?)",
            arguments: [header.runID, header.part]
        ) ?? false
    }

    private static func insertResult(_ db: Database, _ header: ResultHeader, format: String, blob: Data?, processor: String) throws {
        try db.execute(
            sql: """
                INSERT INTO results (run_id, part, job, logical_time, size, sha256, format, blob, processor, stored_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                header.runID, header.part, header.job, Timestamp.format(header.logicalTime), header.size, header.sha256,
                format, blob, processor, Timestamp.format(Date()),
            ]
        )
    }

    /// The lines of a payload when every non-empty line is a JSON value; `nil` otherwise (store as a blob).
    /// A trailing newline ends the last line; it does not start an empty one.
    static func jsonLines(_ payload: Data) -> [String]? {
        guard !payload.isEmpty, let text = String(data: payload, encoding: .utf8) else { return nil }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        guard !lines.isEmpty else { return nil }
        for line in lines {
            guard !line.isEmpty, (try? JSONSerialization.jsonObject(with: Data(line.utf8), options: [.fragmentsAllowed])) != nil else {
                return nil
            }
        }
        return lines
    }
}
