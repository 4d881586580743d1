public import Foundation
import GRDB
import Messaging
import Persistence

// The delivery lifecycle of a part (``DeliveryState``): every update takes its `WHERE state IN (…)` and its new
// state from the machine, and only persists what it decides.
extension Outbox {
    /// The next part due to be sent at `now`, oldest first: pending parts whose retry time has come, and sent
    /// parts whose lease ran out. A lease that ran out after the processor started counts as a failure, which
    /// may dead-letter the part; those parts are returned in `dead`.
    public func nextDue(now: Date = Date()) async throws -> (entry: Entry?, dead: [Entry]) {
        let found = try await nextDue(limit: 1, now: now)
        return (found.entries.first, found.dead)
    }

    /// The next `limit` parts due to be sent at `now`, oldest first (see ``nextDue(now:)``).
    public func nextDue(limit: Int, now: Date = Date()) async throws -> (entries: [Entry], dead: [Entry]) {
        let policy = policy
        let found = try await write { db in try Self.due(in: db, now: now, policy: policy, limit: limit) }
        noteLeaseRetries(found.retried)
        return (found.entries.map(withCommitTime), found.dead)
    }

    /// Marks a part sent (see ``markSent(runID:part:leaseDeadline:now:)``) and finds the next due part (see
    /// ``nextDue(now:)``), in one transaction: the sender's loop, at one commit per result.
    public func markSentAndNextDue(
        runID: String,
        stage: Int = 0,
        part: Int,
        leaseDeadline: Date,
        now: Date = Date()
    ) async throws -> (
        entry: Entry?, dead: [Entry]
    ) {
        let found = try await markSentAndNextDue([(runID, stage, part, leaseDeadline)], limit: 1, now: now)
        return (found.entries.first, found.dead)
    }

    /// Marks parts sent and finds the next `limit` due, in one transaction: the sender's loop, at one commit per
    /// batch of tasks.
    public func markSentAndNextDue(
        _ sent: [(runID: String, stage: Int, part: Int, leaseDeadline: Date)],
        limit: Int,
        now: Date = Date()
    ) async throws -> (entries: [Entry], dead: [Entry]) {
        let policy = policy
        // Bookkeeping only, unless an expired lease counted a failure (which must not be forgotten).
        let found = try await writeBookkeeping { db in
            try Self.markSent(sent, now: now, in: db)
            return try Self.due(in: db, now: now, policy: policy, countFailures: false, limit: limit)
        }
        if found.expired { return try await nextDue(limit: limit, now: now) }
        return (found.entries.map(withCommitTime), found.dead)
    }

    /// The next due part. With `countFailures` false, expired leases of started parts are not counted but
    /// reported (`expired`), for the caller to count them in a durable transaction.
    private static func due(
        in db: Database,
        now: Date,
        policy: RetryPolicy,
        countFailures: Bool = true,
        limit: Int = 1
    ) throws -> (entries: [Entry], dead: [Entry], expired: Bool, retried: [Entry]) {
        let seconds = now.timeIntervalSince1970
        // Processors that died while working: one failed attempt each.
        let expired = try Row.fetchAll(
            db.cachedStatement(sql: "\(selectEntries) WHERE state IN (\(leaseHolders)) AND started = 1 AND due_at <= ?"),
            arguments: [seconds]
        )
        if !countFailures && !expired.isEmpty { return ([], [], true, []) }
        var dead: [Entry] = []
        var retried: [Entry] = []
        for row in expired {
            let failures = (row["failures"] as Int) + 1
            let reason = "lease expired: processor \(row["processor"] as String? ?? "?") stopped renewing it"
            let next = target(of: .leaseExpired(exhausted: failures >= policy.maxAttempts))
            if next == .dead {
                try db.executeCached(
                    sql: "UPDATE outbox SET state = ?, failures = ?, started = 0, last_error = ? WHERE seq = ?",
                    arguments: [next, failures, reason, row["seq"] as Int64]
                )
                var entry = Self.entry(row)
                entry.state = next
                entry.failures = failures
                entry.lastError = reason
                dead.append(entry)
            } else {
                try db.executeCached(
                    sql: "UPDATE outbox SET failures = ?, started = 0, last_error = ? WHERE seq = ?",
                    arguments: [failures, reason, row["seq"] as Int64]
                )
                var entry = Self.entry(row)
                entry.failures = failures
                entry.lastError = reason
                retried.append(entry)
            }
        }
        let rows = try Row.fetchAll(
            db.cachedStatement(
                sql: """
                    \(selectEntries) WHERE state IN (\(sendable)) AND due_at <= ?
                    ORDER BY due_at, seq LIMIT ?
                    """
            ),
            arguments: [seconds, max(limit, 1)]
        )
        return (rows.map(Self.entry), dead, false, retried)
    }

    /// When the next part becomes due (a retry or a lease deadline), if any part is waiting at all.
    /// With `after`, only deadlines later than it: what a sender with no processor asking for work waits for
    /// (a lease running out), as the parts already due wait for an ask instead.
    public func nextDeadline(after: Date? = nil) async throws -> Date? {
        try await pool.read { db in
            guard let after else {
                return try Double.fetchOne(db, sql: "SELECT MIN(due_at) FROM outbox WHERE state IN (\(Self.sendable))")
                    .map { Date(timeIntervalSince1970: $0) }
            }
            return try Double.fetchOne(
                db,
                sql: "SELECT MIN(due_at) FROM outbox WHERE state IN (\(Self.sendable)) AND due_at > ?",
                arguments: [after.timeIntervalSince1970]
            ).map { Date(timeIntervalSince1970: $0) }
        }
    }

    /// Marks a part as handed to a processor, which must start on it before `leaseDeadline`.
    public func markSent(runID: String, stage: Int = 0, part: Int, leaseDeadline: Date, now: Date = Date()) async throws {
        try await write { db in try Self.markSent(runID: runID, stage: stage, part: part, leaseDeadline: leaseDeadline, now: now, in: db) }
    }

    /// Marks parts sent in one transaction (bookkeeping: losing it only sends them again).
    public func markSent(_ parts: [(runID: String, stage: Int, part: Int, leaseDeadline: Date)], now: Date = Date()) async throws {
        try await writeBookkeeping { db in try Self.markSent(parts, now: now, in: db) }
    }

    private static func markSent(_ parts: [(runID: String, stage: Int, part: Int, leaseDeadline: Date)], now: Date, in db: Database) throws
    {
        for part in parts {
            try markSent(runID: part.runID, stage: part.stage, part: part.part, leaseDeadline: part.leaseDeadline, now: now, in: db)
        }
    }

    private static func markSent(runID: String, stage: Int, part: Int, leaseDeadline: Date, now: Date, in db: Database) throws {
        try db.executeCached(
            sql: """
                UPDATE outbox SET state = ?, deliveries = deliveries + 1, started = 0, due_at = ?, sent_at = ?
                WHERE run_id = ? AND stage = ? AND part = ? AND state IN (\(sendable))
                """,
            arguments: [target(of: .send), leaseDeadline.timeIntervalSince1970, Timestamp.format(now), runID, stage, part]
        )
    }

    /// A processor is working on a part: extend its lease. Returns false if the part is not in flight.
    @discardableResult
    public func renewLease(runID: String, stage: Int = 0, part: Int, processor: String, until deadline: Date) async throws -> Bool {
        try await write { db in try Self.renew(runID: runID, stage: stage, part: part, processor: processor, until: deadline, in: db) }
    }

    private static func renew(runID: String, stage: Int, part: Int, processor: String, until deadline: Date, in db: Database) throws -> Bool
    {
        try db.executeCached(
            sql: """
                UPDATE outbox SET started = 1, processor = ?, due_at = MAX(due_at, ?)
                WHERE run_id = ? AND stage = ? AND part = ? AND state IN (\(renewable))
                """,
            arguments: [processor, deadline.timeIntervalSince1970, runID, stage, part]
        )
        return db.changesCount > 0
    }

    /// What a processor said about a task it holds, applied in a batch by ``settle(_:now:)``.
    public enum Settlement: Sendable, Equatable {
        /// It is working on the task: extend the lease to `until`.
        case renew(runID: String, stage: Int = 0, part: Int, processor: String, until: Date)
        /// It finished the task: stored it (the last stage), or produced `outputs` (durable files at the hub)
        /// that become the next stage's input in the same transaction.
        case ack(runID: String, stage: Int = 0, part: Int, processor: String, outputs: [StoredPart] = [])
    }

    /// What one settlement did.
    public struct Settled: Sendable, Equatable {
        /// Whether it changed the task (an ack of a task already acknowledged, or a renewal of a task not in
        /// flight, changes nothing; then its outputs were not taken).
        public var changed: Bool
        /// What it moved in the run's pipeline: stages completed and created.
        public var progress: [StageProgress]
    }

    /// Applies lease renewals and acknowledgements in order, in one transaction (the ack receiver batches
    /// whatever arrived while the previous batch committed).
    public func settle(_ settlements: [Settlement], now: Date = Date()) async throws -> [Settled] {
        let settled = try await writeBookkeeping { db in
            try settlements.map { settlement -> (Settled, [Entry]) in
                switch settlement {
                case .renew(let runID, let stage, let part, let processor, let until):
                    let changed = try Self.renew(runID: runID, stage: stage, part: part, processor: processor, until: until, in: db)
                    return (Settled(changed: changed, progress: []), [])
                case .ack(let runID, let stage, let part, let processor, let outputs):
                    guard try Self.ack(runID: runID, stage: stage, part: part, processor: processor, now: now, in: db) else {
                        return (Settled(changed: false, progress: []), [])
                    }
                    let advance = try Self.settled(runID: runID, stage: stage, part: part, outputs: outputs, in: db, now: now)
                    return (Settled(changed: true, progress: advance.progress), advance.created)
                }
            }
        }
        noteCommitted(settled.flatMap(\.1), micros: Timestamp.microseconds())
        return settled.map(\.0)
    }

    /// Marks a task as done by a processor. Returns false if it was unknown or already acknowledged.
    @discardableResult
    public func markAcked(runID: String, stage: Int = 0, part: Int, processor: String? = nil, now: Date = Date()) async throws -> Bool {
        try await write { db in
            guard try Self.ack(runID: runID, stage: stage, part: part, processor: processor, now: now, in: db) else { return false }
            _ = try Self.settled(runID: runID, stage: stage, part: part, outputs: [], in: db, now: now)
            return true
        }
    }

    /// An acknowledged task was delivered at least once: one sent by the fast path can be acknowledged before it is
    /// recorded sent (and then never is), which left `deliveries` at 0 in `baton results`.
    private static func ack(runID: String, stage: Int, part: Int, processor: String?, now: Date, in db: Database) throws -> Bool {
        try db.executeCached(
            sql: """
                UPDATE outbox SET state = ?, acked_at = ?, started = 0, processor = COALESCE(?, processor), deliveries = MAX(deliveries, 1)
                WHERE run_id = ? AND stage = ? AND part = ? AND state IN (\(acknowledgeable))
                """,
            arguments: [target(of: .ack), Timestamp.format(now), processor, runID, stage, part]
        )
        return db.changesCount > 0
    }

    /// A processor failed on a task (or handed it back). A failure counts towards dead-lettering and delays
    /// the next attempt by the policy's backoff; a hand-back makes the task due again at once; a permanent
    /// failure (retrying cannot help) dead-letters the task at once. Only this task: the other parts of its
    /// stage are not touched.
    public func recordFailure(
        runID: String,
        stage: Int = 0,
        part: Int,
        reason: String,
        countsAsFailure: Bool = true,
        permanent: Bool = false,
        now: Date = Date()
    ) async throws -> FailureOutcome {
        let policy = policy
        return try await write { db in
            guard
                let row = try Row.fetchOne(
                    db,
                    sql: "SELECT failures FROM outbox WHERE run_id = ? AND stage = ? AND part = ? AND state IN (\(Self.failable))",
                    arguments: [runID, stage, part]
                )
            else { return .ignored }
            guard countsAsFailure else {
                try db.executeCached(
                    sql: "UPDATE outbox SET state = ?, started = 0, due_at = ? WHERE run_id = ? AND stage = ? AND part = ?",
                    arguments: [Self.target(of: .handBack), now.timeIntervalSince1970, runID, stage, part]
                )
                return .retry(after: .zero)
            }
            let failures = (row["failures"] as Int) + 1
            let next = Self.target(of: .fail(exhausted: failures >= policy.maxAttempts || permanent))
            if next == .dead {
                try db.executeCached(
                    sql: """
                        UPDATE outbox SET state = ?, failures = ?, started = 0, last_error = ?
                        WHERE run_id = ? AND stage = ? AND part = ?
                        """,
                    arguments: [next, failures, reason, runID, stage, part]
                )
                return .dead
            }
            let delay = policy.backoff(afterFailures: failures)
            let due = now.timeIntervalSince1970 + Double(delay.components.seconds) + Double(delay.components.attoseconds) / 1e18
            try db.executeCached(
                sql: """
                    UPDATE outbox SET state = ?, failures = ?, started = 0, last_error = ?, due_at = ?
                    WHERE run_id = ? AND stage = ? AND part = ?
                    """,
                arguments: [next, failures, reason, due, runID, stage, part]
            )
            return .retry(after: delay)
        }
    }

    /// The ``Entry/cause`` of a part refused by a processor because its key is stored with another sha256.
    public static let conflictCause = "conflict"

    /// Dead-letters a task at once (its raw file is unusable, or a processor refused it as a conflict:
    /// retrying cannot help). Returns whether the task was in a state that can be dead-lettered.
    @discardableResult
    public func markDead(runID: String, stage: Int = 0, part: Int, reason: String, cause: String? = nil) async throws -> Bool {
        try await write { db in
            try db.executeCached(
                sql: """
                    UPDATE outbox SET state = ?, started = 0, last_error = ?, cause = ?
                    WHERE run_id = ? AND stage = ? AND part = ? AND state IN (\(Self.killable))
                    """,
                arguments: [Self.target(of: .kill), reason, cause, runID, stage, part]
            )
            return db.changesCount > 0
        }
    }

    /// Puts tasks back in the queue as new (attempts and failures forgotten), e.g. dead letters after a fix.
    /// - Returns: How many tasks were requeued.
    @discardableResult
    public func requeue(runID: String, stage: Int = 0, part: Int? = nil, now: Date = Date()) async throws -> Int {
        try await write { db in
            try db.executeCached(
                sql: """
                    UPDATE outbox SET state = ?, failures = 0, started = 0, last_error = NULL, cause = NULL, due_at = ?
                    WHERE run_id = ? AND stage = ? AND (? IS NULL OR part = ?)
                    """,
                arguments: [Self.target(of: .requeue), now.timeIntervalSince1970, runID, stage, part, part]
            )
            return db.changesCount
        }
    }
}
