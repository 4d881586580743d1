public import Foundation
import GRDB
public import Messaging
import Persistence

// What the outbox is asked about: the backlog and retention here, the listings `baton results`, `baton audit`
// and `baton replay` see through the algorithm's `control` socket (``AlgorithmControlServer``).
extension Outbox {
    /// Parts in a state (or all), oldest first, optionally with a dead-letter cause (``Entry/cause``), for one
    /// job, one run and a logical-time range.
    /// - Parameter runID: Only this run's tasks: looked up by the run's key, so the answer costs the same however
    ///   many runs the outbox keeps.
    public func entries(
        state: DeliveryState? = nil,
        cause: String? = nil,
        job: String? = nil,
        runID: String? = nil,
        from: Date? = nil,
        to: Date? = nil
    ) async throws -> [Entry] {
        try await pool.read { db in
            var conditions: [String] = []
            var arguments: [any DatabaseValueConvertible] = []
            if let runID {
                conditions.append("outbox.run_id = ?")
                arguments.append(runID)
            }
            if let state {
                conditions.append("state = ?")
                arguments.append(state)
            }
            if let cause {
                conditions.append("cause = ?")
                arguments.append(cause)
            }
            if let job {
                conditions.append("outbox.job = ?")
                arguments.append(job)
            }
            if let from {
                conditions.append("logical_time >= ?")
                arguments.append(Timestamp.format(from))
            }
            if let to {
                conditions.append("logical_time <= ?")
                arguments.append(Timestamp.format(to))
            }
            let filter = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
            return try Row.fetchAll(
                db,
                sql: "\(Self.selectEntries) \(filter) ORDER BY logical_time, outbox.run_id, stage, part",
                arguments: StatementArguments(arguments)
            ).map(Self.entry)
        }
    }

    /// One task (by default of the first stage).
    public func entry(runID: String, stage: Int = 0, part: Int) async throws -> Entry? {
        try await pool.read { db in
            try Row.fetchOne(
                db,
                sql: "\(Self.selectEntries) WHERE run_id = ? AND stage = ? AND part = ?",
                arguments: [runID, stage, part]
            ).map(Self.entry)
        }
    }

    /// How many parts are in each state.
    public func counts() async throws -> [DeliveryState: Int] {
        try await pool.read { db in
            var counts: [DeliveryState: Int] = [:]
            // Kept by the outbox's triggers (migration "v6 counts by state"): four rows, whatever the outbox holds.
            for row in try Row.fetchAll(db.cachedStatement(sql: "SELECT state, n FROM outbox_counts WHERE n > 0")) {
                if let state = DeliveryState.fromDatabaseValue(row["state"] as DatabaseValue) { counts[state] = row["n"] }
            }
            return counts
        }
    }

    /// The parts not yet stored, by state: `pending` (waiting to be sent or retried), `sent` (with a processor)
    /// and `dead`. From the counts the triggers keep, so a backlog of millions costs no more than an empty one.
    public func backlog() async throws -> (pending: Int, sent: Int, dead: Int) {
        let counts = try await counts()
        return (counts[.pending] ?? 0, counts[.sent] ?? 0, counts[.dead] ?? 0)
    }

    /// Acknowledged parts whose raw files may be deleted by retention, oldest first: (run, part, path, size, acked).
    /// Only those whose file retention has not removed (or found gone) yet: see ``markRawRemoved(_:)``.
    public func acknowledgedFiles() async throws -> [(seq: Int64, path: String, size: Int, ackedAt: Date)] {
        try await pool.read { db in
            try Row.fetchAll(
                db.cachedStatement(
                    sql: "SELECT seq, path, size, acked_at FROM outbox WHERE state = 'acked' AND raw_removed = 0 ORDER BY acked_at, seq"
                )
            )
            .map { row in
                let acked: String = row["acked_at"]
                return (row["seq"], row["path"], row["size"], Timestamp.parse(acked) ?? Date(timeIntervalSince1970: 0))
            }
        }
    }

    /// Notes that these acknowledged tasks' raw files are gone (removed by retention, or found missing), so that
    /// the next sweeps do not look at them again.
    public func markRawRemoved(_ seqs: [Int64]) async throws {
        guard !seqs.isEmpty else { return }
        try await pool.write { db in
            for seq in seqs {
                try db.executeCached(sql: "UPDATE outbox SET raw_removed = 1 WHERE seq = ?", arguments: [seq])
            }
        }
    }
}
