import Foundation
import GRDB
import GRDBSQLite
import Messaging
import Persistence

/// The result store's SQLite backend: one file any number of processes share (WAL mode, with a busy timeout
/// for concurrent writers). See ``ResultStore`` for what storing means.
final class SQLiteResultStore: ResultStoreBackend {
    private let pool: DatabasePool
    /// A lower limit than SQLite's on one stored value, for tests.
    private let valueLimit: Int

    init(path: String, valueLimit: Int = .max) async throws {
        pool = try await SQLiteFile.open(path: path, migrator: Self.migrator)
        self.valueLimit = valueLimit
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
        migrator.registerMigration("v4 record blocks") { db in
            // JSON lines are kept as a few blocks per part (a JSON array of the lines, each a JSON string), not a
            // row per line: one row per line costs SQLite 4-5 µs each and an index entry repeating the run id,
            // which holds a store to 20-60 MB/s here; a block is written at the disk's rate. `records` stays
            // what readers query, now a view over the rows stored before and the blocks split by `json_each`.
            try db.execute(
                sql: """
                    ALTER TABLE records RENAME TO records_before_v4;
                    CREATE TABLE record_blocks (
                        run_id TEXT NOT NULL,
                        part INTEGER NOT NULL,
                        first_line INTEGER NOT NULL,
                        lines TEXT NOT NULL,
                        PRIMARY KEY (run_id, part, first_line),
                        FOREIGN KEY (run_id, part) REFERENCES results (run_id, part) ON DELETE CASCADE
                    );
                    CREATE VIEW records (run_id, part, line, data) AS
                        SELECT run_id, part, line, data FROM records_before_v4
                        UNION ALL
                        SELECT b.run_id, b.part, b.first_line + j.key, j.value FROM record_blocks AS b, json_each(b.lines) AS j;
                    """
            )
        }
        return migrator
    }

    func store(_ header: ResultHeader, payload: Data, processor: String) async throws -> ResultStore.Outcome {
        try await storeBatch([(header, payload)], processor: processor)[0]
    }

    func storeBatch(_ parts: [(header: ResultHeader, payload: Data)], processor: String) async throws -> [ResultStore.Outcome] {
        let limit = valueLimit
        // On GRDB's writer queue, off the cooperative pool: checking the lines costs about 1 ms per MiB.
        return try await pool.writeWithoutTransaction { db in
            var outcomes: [ResultStore.Outcome] = []
            try db.inTransaction {
                outcomes = try parts.map { part in
                    try Self.store(db, part.header, payload: part.payload, processor: processor, limit: limit)
                }
                return .commit
            }
            return outcomes
        }
    }

    /// One part, inside the caller's transaction.
    private static func store(
        _ db: Database,
        _ header: ResultHeader,
        payload: Data,
        processor: String,
        limit: Int
    ) throws
        -> ResultStore.Outcome
    {
        if let known = try check(db, header, payload: payload, processor: processor, limit: limit) { return known }
        let lines = ResultStore.jsonLines(payload)
        let limit = min(limit, maxValueBytes(db))
        // SQLite refuses a value over its length limit, and GRDB would stop the process on it: refuse the part
        // first, as a failure no retry can mend. A line takes at most twice its bytes escaped, plus its quotes
        // and its block's brackets; only a line that long is measured exactly.
        let tooLong = payload.withUnsafeBytes { buffer in
            lines?.first { $0.count * 2 + 4 > limit && JSONLines.stringLength(buffer, line: $0) + 2 > limit }
        }
        if lines == nil ? payload.count > limit : tooLong != nil {
            throw ResultStore.TooLarge(
                "\(lines == nil ? "a blob of \(payload.count) bytes" : "a JSON line of \(tooLong?.count ?? 0) bytes") is over SQLite's "
                    + "limit of \(limit) bytes per value: split the result into parts ($BATON_OUTPUT_DIR), store it with "
                    + "processor.command, or use PostgreSQL (store.url)"
            )
        }
        try insertResult(db, header, format: lines == nil ? "blob" : "jsonl", blob: lines == nil ? payload : nil, processor: processor)
        if let lines { try insertRecordBlocks(db, header, payload: payload, lines: lines, limit: min(limit, blockBytes)) }
        return .stored(records: lines?.count ?? 0)
    }

    /// How much escaped text one block holds at most (and one line more when that line alone is longer).
    static let blockBytes = 8 << 20

    /// The lines as blocks (``JSONStringArray``), each up to `limit` bytes,
    /// with one prepared statement whose text is bound straight from the block's buffer: no `String`, no copy
    /// before SQLite's own into the page.
    private static func insertRecordBlocks(_ db: Database, _ header: ResultHeader, payload: Data, lines: [Range<Int>], limit: Int) throws {
        let sql = "INSERT INTO record_blocks (run_id, part, first_line, lines) VALUES (?, ?, ?, ?)"
        // From the connection's cache (parsed once per connection). GRDB finalizes the statement when the cache
        // lets it go: it must outlive every use of its pointer.
        let prepared = try db.cachedStatement(sql: sql)
        try withExtendedLifetime(prepared) {
            let statement = prepared.sqliteStatement
            func check(_ code: CInt, _ expected: CInt = SQLITE_OK) throws {
                guard code != expected else { return }
                let message = db.sqliteConnection.flatMap { sqlite3_errmsg($0) }.map { String(cString: $0) }
                throw DatabaseError(resultCode: ResultCode(rawValue: code), message: message, sql: sql)
            }
            let transient = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)
            try check(sqlite3_bind_text(statement, 1, header.runID, -1, transient))
            try check(sqlite3_bind_int64(statement, 2, Int64(header.part)))
            defer { sqlite3_clear_bindings(statement) }
            var block = JSONStringArray(capacity: min(limit, payload.count + payload.count / 4) + 64)
            var first = 0
            func insert() throws {
                try check(sqlite3_bind_int64(statement, 3, Int64(first)))
                try block.withBytes { bytes in
                    // The bytes stay put while the statement runs: nil is SQLITE_STATIC, SQLite copies nothing first.
                    try check(sqlite3_bind_text64(statement, 4, bytes.baseAddress, sqlite3_uint64(bytes.count), nil, UInt8(SQLITE_UTF8)))
                    let stepped = sqlite3_step(statement)
                    sqlite3_reset(statement)
                    try check(stepped, SQLITE_DONE)
                }
            }
            try payload.withUnsafeBytes { buffer in
                for (index, line) in lines.enumerated() {
                    let before = block.count
                    block.append(buffer, line: line)
                    // Over the limit with its closing bracket: the block ends before this line, which starts the next.
                    guard block.count + 1 > limit, block.elements > 1 else { continue }
                    block.dropLast(from: before)
                    try insert()
                    block.removeAll()
                    first = index
                    block.append(buffer, line: line)
                }
                try insert()
            }
        }
    }

    func storedSHA256(runID: String, part: Int) async throws -> String? {
        try await pool.read { db in
            try String.fetchOne(db, sql: "SELECT sha256 FROM results WHERE run_id = ? AND part = ?", arguments: [runID, part])
        }
    }

    func admit(_ header: ResultHeader, payload: Data, processor: String) async throws -> ResultStore.Outcome? {
        let limit = valueLimit
        return try await pool.write { db in try Self.check(db, header, payload: payload, processor: processor, limit: limit) }
    }

    func recordProcessed(_ header: ResultHeader, payload: Data, processor: String) async throws -> ResultStore.Outcome {
        let limit = valueLimit
        return try await pool.write { db in
            if let known = try Self.check(db, header, payload: payload, processor: processor, limit: limit) { return known }
            try Self.insertResult(db, header, format: "command", blob: nil, processor: processor)
            return .stored(records: 0)
        }
    }

    func delete(runID: String, part: Int) async throws {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM records_before_v4 WHERE run_id = ? AND part = ?", arguments: [runID, part])
            try db.execute(sql: "DELETE FROM record_blocks WHERE run_id = ? AND part = ?", arguments: [runID, part])
            try db.execute(sql: "DELETE FROM results WHERE run_id = ? AND part = ?", arguments: [runID, part])
        }
    }

    func storedParts() async throws -> [ResultStore.StoredPart] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT run_id, part, size, sha256, stage FROM results").map {
                (runID: $0["run_id"], part: $0["part"], size: $0["size"], sha256: $0["sha256"], stage: $0["stage"])
            }
        }
    }

    func resultCount() async throws -> Int {
        try await pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM results") ?? 0 }
    }

    func records(runID: String, part: Int) async throws -> [String] {
        try await pool.read { db in
            try String.fetchAll(db, sql: "SELECT data FROM records WHERE run_id = ? AND part = ? ORDER BY line", arguments: [runID, part])
        }
    }

    func conflicts() async throws -> [ResultStore.Conflict] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM conflicts ORDER BY id").map { row in
                try ResultStore.Conflict(
                    headerText: row["header"],
                    storedSHA256: row["stored_sha256"],
                    payload: row["payload"] ?? Data(),
                    processor: row["processor"],
                    receivedAt: row["received_at"]
                )
            }
        }
    }

    /// nil when the key is new; otherwise a duplicate (same sha256) or a conflict, which is kept aside.
    private static func check(
        _ db: Database,
        _ header: ResultHeader,
        payload: Data,
        processor: String,
        limit: Int
    ) throws
        -> ResultStore.Outcome?
    {
        guard
            let stored = try String.fetchOne(
                db.cachedStatement(sql: "SELECT sha256 FROM results WHERE run_id = ? AND part = ?"),
                arguments: [header.runID, header.part]
            )
        else { return nil }
        if stored == header.sha256 { return .duplicate }
        let headerText = try ResultStore.keptHeader(header)
        // A refused part too large for one SQLite value is kept aside without its bytes (its checksums say enough).
        let kept: Data? = payload.count > min(limit, maxValueBytes(db)) ? nil : payload
        try db.executeCached(
            sql: """
                INSERT OR IGNORE INTO conflicts
                    (run_id, part, job, logical_time, stored_sha256, received_sha256, size, header, payload, processor, received_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                header.runID, header.part, header.job, Timestamp.format(header.logicalTime), stored, header.sha256, header.size,
                headerText, kept, processor, Timestamp.format(Date()),
            ]
        )
        return .conflict(stored: stored)
    }

    /// The largest string or blob this connection takes (`SQLITE_LIMIT_LENGTH`: 10⁹ bytes in Debian's build).
    private static func maxValueBytes(_ db: Database) -> Int {
        Int(sqlite3_limit(db.sqliteConnection, SQLITE_LIMIT_LENGTH, -1))
    }

    private static func insertResult(_ db: Database, _ header: ResultHeader, format: String, blob: Data?, processor: String) throws {
        try db.executeCached(
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
}
