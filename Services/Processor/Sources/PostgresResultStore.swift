import Foundation
import Messaging
import Persistence
import Synchronization

/// The result store's PostgreSQL backend (`store.url`): the SQLite backend's tables, keys and rules, on one
/// libpq connection whose calls run on a thread of its own (``PostgresConnection``).
///
/// Two processors racing on one key: each inserts with `ON CONFLICT (run_id, part) DO NOTHING`; the loser's
/// insert waits for the winner's transaction and then inserts nothing, and it reads the stored sha256 back
/// (a new statement sees the winner's commit under READ COMMITTED) to report a duplicate or a conflict. So one
/// row and one duplicate, without serializable transactions and their retries.
///
/// A server that cannot be reached is an outage, not a failure of the part: with `waitThroughOutages` every
/// call is retried whole (each transaction was rolled back, or never began) with a backoff of 0.5 s doubling
/// to 30 s, and ``ResultStore/Health`` tells the owner once when the server goes and once when it is back.
/// When the connection drops during COMMIT the transaction may have happened: the retry reads the key, and
/// finds it stored by this processor with the same sha256 if it did.
final class PostgresResultStore: ResultStoreBackend {
    private let connection: PostgresConnection
    private let waitThroughOutages: Bool
    private let health: @Sendable (ResultStore.Health) -> Void
    /// Whether the server is known to be unreachable (said once), and whether the schema is up to date.
    private let state = Mutex((down: false, migrated: false))
    static let backoff = (first: Duration.milliseconds(500), most: Duration.seconds(30))

    init(url: String, name: String, waitThroughOutages: Bool, health: @escaping @Sendable (ResultStore.Health) -> Void) {
        connection = PostgresConnection(url: url, name: name)
        self.waitThroughOutages = waitThroughOutages
        self.health = health
    }

    /// Runs `body` (a transaction, or a read) on the connection, migrating the schema first when this store has
    /// not yet; retries it whole after a lost connection (see the type), or at once after a serialization failure.
    /// `body` is told whether the previous attempt's COMMIT failed without saying whether it happened.
    private func perform<T: Sendable>(_ body: @escaping @Sendable (PostgresSession, _ commitUnknown: Bool) throws -> T) async throws -> T {
        var delay = Self.backoff.first
        var commitUnknown = false
        while true {
            let migrated = state.withLock { $0.migrated }
            let unknown = commitUnknown
            do {
                let value = try await connection.run { session in
                    if !migrated { try PostgresSchema.migrate(session) }
                    return try body(session, unknown)
                }
                let wasDown = state.withLock { state in
                    defer { state = (down: false, migrated: true) }
                    return state.down
                }
                if wasDown { health(.up) }
                return value
            } catch let error as PostgresError where error.isTransient {
                commitUnknown = commitUnknown || error.duringCommit
                try Task.checkCancellation()
            } catch let error as PostgresError where error.isConnectionLoss {
                commitUnknown = commitUnknown || error.duringCommit
                health(.failed(error.description))
                let first = state.withLock { state in
                    defer { state.down = true }
                    return !state.down
                }
                if first { health(.down(error.description)) }
                guard waitThroughOutages else { throw error }
                try await Task.sleep(for: delay)
                delay = min(delay * 2, Self.backoff.most)
            }
        }
    }

    func store(_ header: ResultHeader, payload: Data, processor: String) async throws -> ResultStore.Outcome {
        try await storeBatch([(header, payload)], processor: processor)[0]
    }

    /// Every part in one transaction, retried whole (after a commit whose outcome is unknown, each part's check
    /// finds what this processor stored).
    func storeBatch(_ parts: [(header: ResultHeader, payload: Data)], processor: String) async throws -> [ResultStore.Outcome] {
        try await perform { session, commitUnknown in
            // On the connection's thread, off the cooperative pool: checking the lines costs about 1 ms per MiB.
            let lines = parts.map { ResultStore.jsonLines($0.payload) }
            return try session.transaction {
                try zip(parts, lines).map { part, lines in
                    try Self.store(
                        session,
                        part.header,
                        payload: part.payload,
                        lines: lines,
                        processor: processor,
                        commitUnknown: commitUnknown
                    )
                }
            }
        }
    }

    /// One part, inside the caller's transaction.
    private static func store(
        _ session: PostgresSession,
        _ header: ResultHeader,
        payload: Data,
        lines: [Range<Int>]?,
        processor: String,
        commitUnknown: Bool
    ) throws -> ResultStore.Outcome {
        if let known = try check(session, header, payload: payload, processor: processor, commitUnknown: commitUnknown) {
            return known == .stored(records: 0) ? .stored(records: lines?.count ?? 0) : known
        }
        let inserted = try insertResult(
            session,
            header,
            format: lines == nil ? "blob" : "jsonl",
            blob: lines == nil ? payload : nil,
            processor: processor
        )
        guard inserted else {
            return try check(session, header, payload: payload, processor: processor, commitUnknown: false) ?? .duplicate
        }
        if let lines {
            // One statement for every line, sent as the payload itself (its lines joined by their newlines,
            // the last one's dropped) and split by the server: no string per line on either side.
            let text = payload.withUnsafeBytes { buffer in
                String(decoding: UnsafeRawBufferPointer(rebasing: buffer[..<(lines.last?.upperBound ?? 0)]), as: UTF8.self)
            }
            try session.query(
                """
                INSERT INTO records (run_id, part, line, data)
                SELECT $1, $2, t.n - 1, t.d FROM unnest(string_to_array($3::text, E'\\n')) WITH ORDINALITY AS t(d, n)
                """,
                [.text(header.runID), .int(header.part), .text(text)]
            )
        }
        return .stored(records: lines?.count ?? 0)
    }

    func storedSHA256(runID: String, part: Int) async throws -> String? {
        try await perform { session, _ in
            try session.query("SELECT sha256 FROM results WHERE run_id = $1 AND part = $2", [.text(runID), .int(part)]).first?[0]
        }
    }

    func admit(_ header: ResultHeader, payload: Data, processor: String) async throws -> ResultStore.Outcome? {
        try await perform { session, _ in
            try session.transaction { try Self.check(session, header, payload: payload, processor: processor, commitUnknown: false) }
        }
    }

    func recordProcessed(_ header: ResultHeader, payload: Data, processor: String) async throws -> ResultStore.Outcome {
        try await perform { session, commitUnknown in
            try session.transaction {
                if let known = try Self.check(session, header, payload: payload, processor: processor, commitUnknown: commitUnknown) {
                    return known
                }
                guard try Self.insertResult(session, header, format: "command", blob: nil, processor: processor) else {
                    return try Self.check(session, header, payload: payload, processor: processor, commitUnknown: false) ?? .duplicate
                }
                return .stored(records: 0)
            }
        }
    }

    func delete(runID: String, part: Int) async throws {
        try await perform { session, _ in
            try session.transaction {
                try session.query("DELETE FROM records WHERE run_id = $1 AND part = $2", [.text(runID), .int(part)])
                try session.query("DELETE FROM results WHERE run_id = $1 AND part = $2", [.text(runID), .int(part)])
            }
        }
    }

    func storedParts() async throws -> [ResultStore.StoredPart] {
        let rows = try await perform { session, _ in try session.query("SELECT run_id, part, size, sha256, stage FROM results") }
        return rows.map { row in
            (runID: row[0] ?? "", part: Int(row[1] ?? "") ?? 0, size: Int(row[2] ?? "") ?? 0, sha256: row[3] ?? "", stage: row[4])
        }
    }

    func resultCount() async throws -> Int {
        try await perform { session, _ in Int(try session.query("SELECT COUNT(*) FROM results").first?[0] ?? "") ?? 0 }
    }

    func records(runID: String, part: Int) async throws -> [String] {
        try await perform { session, _ in
            try session.query("SELECT data FROM records WHERE run_id = $1 AND part = $2 ORDER BY line", [.text(runID), .int(part)])
                .map { $0[0] ?? "" }
        }
    }

    func conflicts() async throws -> [ResultStore.Conflict] {
        let rows = try await perform { session, _ in
            try session.query("SELECT header, stored_sha256, payload, processor, received_at FROM conflicts ORDER BY id")
        }
        return try rows.map { row in
            try ResultStore.Conflict(
                headerText: row[0] ?? "",
                storedSHA256: row[1] ?? "",
                payload: PostgresSession.bytes(row[2]) ?? Data(),
                processor: row[3] ?? "",
                receivedAt: row[4] ?? ""
            )
        }
    }

    /// nil when the key is new; otherwise a duplicate (same sha256) or a conflict, which is kept aside. After a
    /// COMMIT whose fate is unknown, the key stored by this processor with this sha256 is that commit:
    /// ``ResultStore/Outcome/stored(records:)`` (with 0 records; the caller knows how many).
    private static func check(
        _ session: PostgresSession,
        _ header: ResultHeader,
        payload: Data,
        processor: String,
        commitUnknown: Bool
    ) throws -> ResultStore.Outcome? {
        let row = try session.query(
            "SELECT sha256, processor FROM results WHERE run_id = $1 AND part = $2",
            [.text(header.runID), .int(header.part)]
        ).first
        guard let row, let stored = row[0] else { return nil }
        if stored == header.sha256 { return commitUnknown && row[1] == processor ? .stored(records: 0) : .duplicate }
        try session.query(
            """
            INSERT INTO conflicts
                (run_id, part, job, logical_time, stored_sha256, received_sha256, size, header, payload, processor, received_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
            ON CONFLICT (run_id, part, received_sha256) DO NOTHING
            """,
            [
                .text(header.runID), .int(header.part), .text(header.job), .text(Timestamp.format(header.logicalTime)), .text(stored),
                .text(header.sha256), .int(header.size), .text(try ResultStore.keptHeader(header)), .bytes(payload), .text(processor),
                .text(Timestamp.format(Date())),
            ]
        )
        return .conflict(stored: stored)
    }

    /// Inserts the part's row; false when another transaction stored the key first.
    private static func insertResult(
        _ session: PostgresSession,
        _ header: ResultHeader,
        format: String,
        blob: Data?,
        processor: String
    ) throws -> Bool {
        let rows = try session.query(
            """
            INSERT INTO results (run_id, part, job, logical_time, size, sha256, format, blob, processor, stored_at, stage)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
            ON CONFLICT (run_id, part) DO NOTHING RETURNING 1
            """,
            [
                .text(header.runID), .int(header.part), .text(header.job), .text(Timestamp.format(header.logicalTime)), .int(header.size),
                .text(header.sha256), .text(format), blob.map { .bytes($0) } ?? .null, .text(processor), .text(Timestamp.format(Date())),
                header.stage.map { .text($0.name) } ?? .null,
            ]
        )
        return !rows.isEmpty
    }
}
