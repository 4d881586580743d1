public import Foundation
import GRDB
public import Messaging
import Persistence

/// The processors' SQLite store: one row per stored result part, and for JSON-lines results one row per line.
///
/// Storing is idempotent by key `(run_id, part)`: each part is stored in one transaction, and a part already
/// there with the same sha256 is reported as a duplicate and left as it is. A part whose key is there with
/// another sha256 is a conflict, never a duplicate: it is refused, the stored part is left as it is, and the
/// refused one is kept aside in the `conflicts` table (its header, bytes, both checksums, when and by which
/// processor) for inspection. Any number of processes may share the file (WAL mode, with a busy timeout for
/// concurrent writers).
public final class ResultStore: Sendable {
    /// What storing a part did.
    public enum Outcome: Sendable, Equatable {
        /// Newly stored, with this many JSON-lines records (0 for a blob).
        case stored(records: Int)
        /// Already stored earlier, with the same sha256; nothing changed.
        case duplicate
        /// The key is stored with another sha256 (`stored`); this part was refused and kept aside.
        case conflict(stored: String)
    }

    /// The database file.
    public let path: String
    private let pool: DatabasePool

    /// Opens (creating and migrating if needed) the store.
    /// - Parameter path: The SQLite file.
    public init(path: String) async throws {
        pool = try await SQLiteFile.open(path: path, migrator: Self.migrator)
        self.path = path
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
        migrator.registerMigration("v2 conflicts") { db in
            // Parts refused because their key was stored with another checksum: kept whole for inspection.
            try db.execute(
                sql: """
                    CREATE TABLE conflicts (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        run_id TEXT NOT NULL,
                        part INTEGER NOT NULL,
                        job TEXT NOT NULL,
                        logical_time TEXT NOT NULL,
                        stored_sha256 TEXT NOT NULL,
                        received_sha256 TEXT NOT NULL,
                        size INTEGER NOT NULL,
                        header TEXT NOT NULL,
                        payload BLOB,
                        processor TEXT NOT NULL,
                        received_at TEXT NOT NULL,
                        UNIQUE (run_id, part, received_sha256)
                    );
                    """
            )
        }
        migrator.registerMigration("v3 stage") { db in
            // The pipeline stage that stored a part (its name, as the run's pipeline recorded it); NULL for a
            // job without stages, and for parts stored before pipelines.
            try db.execute(sql: "ALTER TABLE results ADD COLUMN stage TEXT")
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
            if let known = try Self.check(db, header, payload: payload, processor: processor) { return known }
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
        try await storedSHA256(runID: runID, part: part) != nil
    }

    /// The sha256 a part was stored (or processed by a command) with; nil when it is not stored.
    public func storedSHA256(runID: String, part: Int) async throws -> String? {
        try await pool.read { db in
            try String.fetchOne(db, sql: "SELECT sha256 FROM results WHERE run_id = ? AND part = ?", arguments: [runID, part])
        }
    }

    /// What a part already stored makes of this one: nil when its key is new; ``Outcome/duplicate`` when it
    /// is stored with the same sha256; ``Outcome/conflict(stored:)`` when with another (and kept aside), before
    /// an external processor command is given it.
    public func admit(_ header: ResultHeader, payload: Data, processor: String) async throws -> Outcome? {
        try await pool.write { db in try Self.check(db, header, payload: payload, processor: processor) }
    }

    /// Records that an external processor command handled a part, so that a redelivery is recognised.
    /// - Returns: ``Outcome/duplicate`` if it was already recorded with the same sha256, ``Outcome/conflict(stored:)``
    ///   if with another (another processor stored it meanwhile; the payload is then kept aside).
    public func recordProcessed(_ header: ResultHeader, payload: Data, processor: String) async throws -> Outcome {
        try await pool.write { db in
            if let known = try Self.check(db, header, payload: payload, processor: processor) { return known }
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

    /// Every stored part's key, checksum and stage (nil for a job without stages), for `baton audit`.
    public func storedParts() async throws -> [(runID: String, part: Int, size: Int, sha256: String, stage: String?)] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT run_id, part, size, sha256, stage FROM results").map {
                (runID: $0["run_id"], part: $0["part"], size: $0["size"], sha256: $0["sha256"], stage: $0["stage"])
            }
        }
    }

    /// Number of stored parts.
    public func resultCount() async throws -> Int {
        try await pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM results") ?? 0 }
    }

    /// The records of one part, in line order.
    public func records(runID: String, part: Int = 0) async throws -> [String] {
        try await pool.read { db in
            try String.fetchAll(db, sql: "SELECT data FROM records WHERE run_id = ? AND part = ? ORDER BY line", arguments: [runID, part])
        }
    }

    /// A part refused as a conflict, kept aside.
    public struct Conflict: Sendable, Equatable {
        /// The header of the refused part.
        public var header: ResultHeader
        /// The sha256 the key is stored with.
        public var storedSHA256: String
        /// The refused part's bytes.
        public var payload: Data
        /// The processor that refused it.
        public var processor: String
        /// When it was refused.
        public var receivedAt: Date
    }

    /// The parts refused as conflicts, oldest first.
    public func conflicts() async throws -> [Conflict] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM conflicts ORDER BY id").map { row in
                let header = try Timestamp.decoder().decode(ResultHeader.self, from: Data((row["header"] as String).utf8))
                let received: String = row["received_at"]
                return Conflict(
                    header: header,
                    storedSHA256: row["stored_sha256"],
                    payload: row["payload"] ?? Data(),
                    processor: row["processor"],
                    receivedAt: Timestamp.parse(received) ?? Date(timeIntervalSince1970: 0)
                )
            }
        }
    }

    /// nil when the key is new; otherwise a duplicate (same sha256) or a conflict, which is kept aside.
    private static func check(_ db: Database, _ header: ResultHeader, payload: Data, processor: String) throws -> Outcome? {
        guard
            let stored = try String.fetchOne(
                db,
                sql: "SELECT sha256 FROM results WHERE run_id = ? AND part = ?",
                arguments: [header.runID, header.part]
            )
        else { return nil }
        if stored == header.sha256 { return .duplicate }
        var kept = header
        kept.sentAtUs = nil
        let headerText = String(decoding: try Timestamp.encoder().encode(kept), as: UTF8.self)
        try db.execute(
            sql: """
                INSERT OR IGNORE INTO conflicts
                    (run_id, part, job, logical_time, stored_sha256, received_sha256, size, header, payload, processor, received_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                header.runID, header.part, header.job, Timestamp.format(header.logicalTime), stored, header.sha256, header.size,
                headerText, payload, processor, Timestamp.format(Date()),
            ]
        )
        return .conflict(stored: stored)
    }

    private static func insertResult(_ db: Database, _ header: ResultHeader, format: String, blob: Data?, processor: String) throws {
        try db.execute(
            sql: """
                INSERT INTO results (run_id, part, job, logical_time, size, sha256, format, blob, processor, stored_at, stage)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                header.runID, header.part, header.job, Timestamp.format(header.logicalTime), header.size, header.sha256,
                format, blob, processor, Timestamp.format(Date()), header.stage?.name,
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
