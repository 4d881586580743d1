public import Foundation
import GRDB
import Synchronization
public import Messaging

/// The algorithm's durable hand-off queue: a result part is recorded here (after its raw file is on disk)
/// before anything is sent, and stays until a processor acknowledges that it stored it.
///
/// A part moves `pending → sent → acked`, or to `dead` after too many failed attempts:
/// - `pending`: due to be sent at `due_at` (now, or after a retry backoff).
/// - `sent`: handed to a processor; `due_at` is the lease deadline. A processor that starts on the part
///   renews the lease; if the deadline passes, the part is sent again. A lease that expires after the
///   processor had started counts as a failed attempt (the processor died on it).
/// - `acked`: stored by a processor. `dead`: failed `maxAttempts` times; kept, visible, replayable.
///
/// The file is SQLite in WAL mode; every change is one committed transaction.
public final class Outbox: Sendable {
    // The states each kind of update applies to, from the delivery state machine (``DeliveryState``).
    private static let sendable = DeliveryState.sqlStates(accepting: .send)
    private static let renewable = DeliveryState.sqlStates(accepting: .renew)
    private static let leaseHolders = DeliveryState.sqlStates(accepting: .leaseExpired(exhausted: false))
    private static let acknowledgeable = DeliveryState.sqlStates(accepting: .ack)
    private static let failable = DeliveryState.sqlStates(accepting: .fail(exhausted: false))
    private static let killable = DeliveryState.sqlStates(accepting: .kill)

    /// One result part and its delivery state.
    public struct Entry: Sendable, Equatable {
        /// The part's header as it will be sent (its `attempt` is the next delivery's number).
        public var header: ResultHeader
        /// The raw result file.
        public var path: String
        /// Where its delivery is (``DeliveryState``).
        public var state: DeliveryState
        /// Failed processing attempts so far.
        public var failures: Int
        /// The last failure's reason (for a failed processor command, with the last lines of its standard error).
        public var lastError: String?
        /// Why a dead part is dead when it was dead-lettered at once rather than after its retries:
        /// ``Outbox/conflictCause`` for a part refused as a conflict. nil otherwise.
        public var cause: String?

        /// Creates an entry for a new part.
        public init(
            header: ResultHeader,
            path: String,
            state: DeliveryState = .pending,
            failures: Int = 0,
            lastError: String? = nil,
            cause: String? = nil
        ) {
            self.header = header
            self.path = path
            self.state = state
            self.failures = failures
            self.lastError = lastError
            self.cause = cause
        }
    }

    /// How failed parts are retried.
    public struct RetryPolicy: Sendable, Equatable {
        /// Attempts before a part is dead-lettered.
        public var maxAttempts: Int
        /// Delay before the first retry; doubled each time.
        public var initialBackoff: Duration
        /// Longest delay between attempts.
        public var maxBackoff: Duration

        /// Creates a policy.
        public init(maxAttempts: Int = 5, initialBackoff: Duration = .seconds(2), maxBackoff: Duration = .seconds(300)) {
            self.maxAttempts = maxAttempts
            self.initialBackoff = initialBackoff
            self.maxBackoff = maxBackoff
        }

        /// The delay before retry number `failures` (1 = first retry), with jitter between 50% and 100%.
        public func backoff(afterFailures failures: Int, jitter: Double = Double.random(in: 0.5...1)) -> Duration {
            let exponent = min(max(failures - 1, 0), 30)
            let base = initialBackoff * (1 << exponent)
            return min(base, maxBackoff) * jitter
        }
    }

    /// What became of a part after a reported failure.
    public enum FailureOutcome: Sendable, Equatable {
        /// It will be sent again after this delay.
        case retry(after: Duration)
        /// It failed too often and is dead-lettered.
        case dead
        /// The part was not in flight (already acked, dead, or unknown); nothing changed.
        case ignored
    }

    let pool: DatabasePool
    private let changes = Atomic<Int>(0)
    /// The retry policy applied to failures.
    public let policy: RetryPolicy

    /// Opens (creating if needed) the outbox.
    /// - Parameters:
    ///   - path: The SQLite file.
    ///   - policy: How failed parts are retried.
    public init(path: String, policy: RetryPolicy = RetryPolicy()) throws {
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
                        state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'acked', 'dead')),
                        due_at REAL NOT NULL,
                        deliveries INTEGER NOT NULL DEFAULT 0,
                        failures INTEGER NOT NULL DEFAULT 0,
                        started INTEGER NOT NULL DEFAULT 0,
                        processor TEXT,
                        last_error TEXT,
                        created_at TEXT NOT NULL,
                        sent_at TEXT,
                        acked_at TEXT,
                        UNIQUE (run_id, part)
                    );
                    CREATE INDEX outbox_due ON outbox (state, due_at, seq);
                    CREATE INDEX outbox_job_time ON outbox (job, logical_time);
                    """
            )
        }
        RunLedger.migrate(&migrator)
        migrator.registerMigration("v2 durable_at") { db in
            // When each part became durable (seconds since 1970, sub-millisecond), for hand-off latency.
            try db.execute(sql: "ALTER TABLE outbox ADD COLUMN durable_at REAL")
        }
        migrator.registerMigration("v3 cause") { db in
            // Why a part was dead-lettered at once ('conflict'); NULL when dead after its retries.
            try db.execute(sql: "ALTER TABLE outbox ADD COLUMN cause TEXT")
        }
        pool = try ResultStore.open(path: path) { try migrator.migrate($0) }
        self.policy = policy
    }

    /// When parts handed off by this process became durable: the moment their transaction's commit returned,
    /// which `durable_at` (written inside the transaction) cannot know. Taken once, by the first send.
    private let commitTimes = Mutex<[String: Int64]>([:])

    /// Notes that these parts' transaction committed at `micros` (µs since 1970).
    func noteCommitted(_ entries: [Entry], micros: Int64) {
        commitTimes.withLock { times in
            if times.count > 100_000 { times.removeAll() }  // parts never sent here (e.g. a stopping sender)
            for entry in entries { times["\(entry.header.runID)#\(entry.header.part)"] = micros }
        }
    }

    private func withCommitTime(_ entry: Entry) -> Entry {
        var entry = entry
        if let micros = commitTimes.withLock({ $0.removeValue(forKey: "\(entry.header.runID)#\(entry.header.part)") }) {
            entry.header.durableAtUs = micros
        }
        return entry
    }

    /// How many write transactions ran so far; a reader that saw the same number saw the same outbox.
    public var changeCount: Int { changes.load(ordering: .acquiring) }

    /// One write transaction on the outbox's database (also the run ledger's), counted in ``changeCount``.
    func write<T: Sendable>(_ body: @Sendable @escaping (Database) throws -> T) async throws -> T {
        defer { changes.add(1, ordering: .releasing) }
        return try await pool.write(body)
    }

    /// A write transaction whose loss in a power failure is harmless: delivery bookkeeping (sent, lease
    /// renewed, acknowledged). If it rolls back, the part is simply sent again and the processor, which stores
    /// idempotently, acknowledges it again. It commits without syncing the WAL (synchronous=NORMAL; the next
    /// durable commit syncs it too), which saves an fsync per result. Hand-offs, failures and dead letters
    /// stay durable (`write`).
    func writeBookkeeping<T: Sendable>(_ body: @Sendable @escaping (Database) throws -> T) async throws -> T {
        defer { changes.add(1, ordering: .releasing) }
        return try await pool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            defer { try? db.execute(sql: "PRAGMA synchronous = FULL") }
            var result: T?
            try db.inTransaction(.immediate) {
                result = try body(db)
                return .commit
            }
            return result!
        }
    }

    /// Records a result part for delivery (committed when this returns). Adding the same part again does nothing.
    public func add(_ entry: Entry, now: Date = Date()) async throws {
        try await write { db in try Self.insert(entry, in: db, now: now) }
    }

    /// Inserts a part inside a caller's transaction (see ``RunLedger/finish(_:outbox:now:)``).
    static func insert(_ entry: Entry, in db: Database, now: Date) throws {
        try db.execute(
            sql: """
                INSERT OR IGNORE INTO outbox
                    (run_id, part, parts, job, logical_time, path, size, sha256, state, due_at, created_at, durable_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)
                """,
            arguments: [
                entry.header.runID, entry.header.part, entry.header.parts, entry.header.job,
                Timestamp.format(entry.header.logicalTime), entry.path, entry.header.size, entry.header.sha256,
                now.timeIntervalSince1970, Timestamp.format(now), now.timeIntervalSince1970,
            ]
        )
    }

    /// The next part due to be sent at `now`, oldest first: pending parts whose retry time has come, and sent
    /// parts whose lease ran out. A lease that ran out after the processor started counts as a failure, which
    /// may dead-letter the part; those parts are returned in `dead`.
    public func nextDue(now: Date = Date()) async throws -> (entry: Entry?, dead: [Entry]) {
        let policy = policy
        let found = try await write { db in try Self.due(in: db, now: now, policy: policy) }
        return (found.entry.map(withCommitTime), found.dead)
    }

    /// Marks a part sent (see ``markSent(runID:part:leaseDeadline:now:)``) and finds the next due part (see
    /// ``nextDue(now:)``), in one transaction: the sender's loop, at one commit per result.
    public func markSentAndNextDue(
        runID: String,
        part: Int,
        leaseDeadline: Date,
        now: Date = Date()
    ) async throws -> (
        entry: Entry?, dead: [Entry]
    ) {
        let policy = policy
        // Bookkeeping only, unless an expired lease counted a failure (which must not be forgotten).
        let found = try await writeBookkeeping { db in
            try Self.markSent(runID: runID, part: part, leaseDeadline: leaseDeadline, now: now, in: db)
            return try Self.due(in: db, now: now, policy: policy, countFailures: false)
        }
        if found.expired { return try await nextDue(now: now) }
        return (found.entry.map(withCommitTime), found.dead)
    }

    /// The next due part. With `countFailures` false, expired leases of started parts are not counted but
    /// reported (`expired`), for the caller to count them in a durable transaction.
    private static func due(
        in db: Database,
        now: Date,
        policy: RetryPolicy,
        countFailures: Bool = true
    ) throws -> (entry: Entry?, dead: [Entry], expired: Bool) {
        let seconds = now.timeIntervalSince1970
        // Processors that died while working: one failed attempt each.
        let expired = try Row.fetchAll(
            db,
            sql: "SELECT * FROM outbox WHERE state IN (\(leaseHolders)) AND started = 1 AND due_at <= ?",
            arguments: [seconds]
        )
        if !countFailures && !expired.isEmpty { return (nil, [], true) }
        var dead: [Entry] = []
        for row in expired {
            let failures = (row["failures"] as Int) + 1
            let reason = "lease expired: processor \(row["processor"] as String? ?? "?") stopped renewing it"
            if failures >= policy.maxAttempts {
                try db.execute(
                    sql: "UPDATE outbox SET state = 'dead', failures = ?, started = 0, last_error = ? WHERE seq = ?",
                    arguments: [failures, reason, row["seq"] as Int64]
                )
                var entry = Self.entry(row)
                entry.state = .dead
                entry.failures = failures
                entry.lastError = reason
                dead.append(entry)
            } else {
                try db.execute(
                    sql: "UPDATE outbox SET failures = ?, started = 0, last_error = ? WHERE seq = ?",
                    arguments: [failures, reason, row["seq"] as Int64]
                )
            }
        }
        let row = try Row.fetchOne(
            db,
            sql: """
                SELECT * FROM outbox WHERE state IN (\(sendable)) AND due_at <= ?
                ORDER BY due_at, seq LIMIT 1
                """,
            arguments: [seconds]
        )
        return (row.map(Self.entry), dead, false)
    }

    /// When the next part becomes due (a retry or a lease deadline), if any part is waiting at all.
    public func nextDeadline() async throws -> Date? {
        try await pool.read { db in
            try Double.fetchOne(db, sql: "SELECT MIN(due_at) FROM outbox WHERE state IN (\(Self.sendable))")
                .map { Date(timeIntervalSince1970: $0) }
        }
    }

    /// Marks a part as handed to a processor, which must start on it before `leaseDeadline`.
    public func markSent(runID: String, part: Int, leaseDeadline: Date, now: Date = Date()) async throws {
        try await write { db in try Self.markSent(runID: runID, part: part, leaseDeadline: leaseDeadline, now: now, in: db) }
    }

    private static func markSent(runID: String, part: Int, leaseDeadline: Date, now: Date, in db: Database) throws {
        try db.execute(
            sql: """
                UPDATE outbox SET state = 'sent', deliveries = deliveries + 1, started = 0, due_at = ?, sent_at = ?
                WHERE run_id = ? AND part = ? AND state IN (\(sendable))
                """,
            arguments: [leaseDeadline.timeIntervalSince1970, Timestamp.format(now), runID, part]
        )
    }

    /// A processor is working on a part: extend its lease. Returns false if the part is not in flight.
    @discardableResult
    public func renewLease(runID: String, part: Int, processor: String, until deadline: Date) async throws -> Bool {
        try await write { db in try Self.renew(runID: runID, part: part, processor: processor, until: deadline, in: db) }
    }

    private static func renew(runID: String, part: Int, processor: String, until deadline: Date, in db: Database) throws -> Bool {
        try db.execute(
            sql: """
                UPDATE outbox SET started = 1, processor = ?, due_at = MAX(due_at, ?)
                WHERE run_id = ? AND part = ? AND state IN (\(renewable))
                """,
            arguments: [processor, deadline.timeIntervalSince1970, runID, part]
        )
        return db.changesCount > 0
    }

    /// What a processor said about a part it holds, applied in a batch by ``settle(_:now:)``.
    public enum Settlement: Sendable, Equatable {
        /// It is working on the part: extend the lease to `until`.
        case renew(runID: String, part: Int, processor: String, until: Date)
        /// It stored the part.
        case ack(runID: String, part: Int, processor: String)
    }

    /// Applies lease renewals and acknowledgements in order, in one transaction (the ack receiver batches
    /// whatever arrived while the previous batch committed). Returns, for each, whether it changed the part
    /// (an ack of a part already acknowledged, or a renewal of a part not in flight, changes nothing).
    public func settle(_ settlements: [Settlement], now: Date = Date()) async throws -> [Bool] {
        try await writeBookkeeping { db in
            try settlements.map { settlement in
                switch settlement {
                case .renew(let runID, let part, let processor, let until):
                    try Self.renew(runID: runID, part: part, processor: processor, until: until, in: db)
                case .ack(let runID, let part, let processor):
                    try Self.ack(runID: runID, part: part, processor: processor, now: now, in: db)
                }
            }
        }
    }

    /// Marks a part as stored by a processor. Returns false if it was unknown or already acknowledged.
    @discardableResult
    public func markAcked(runID: String, part: Int, processor: String? = nil, now: Date = Date()) async throws -> Bool {
        try await write { db in try Self.ack(runID: runID, part: part, processor: processor, now: now, in: db) }
    }

    private static func ack(runID: String, part: Int, processor: String?, now: Date, in db: Database) throws -> Bool {
        try db.execute(
            sql: """
                UPDATE outbox SET state = 'acked', acked_at = ?, started = 0, processor = COALESCE(?, processor)
                WHERE run_id = ? AND part = ? AND state IN (\(acknowledgeable))
                """,
            arguments: [Timestamp.format(now), processor, runID, part]
        )
        return db.changesCount > 0
    }

    /// A processor failed on a part (or handed it back). A failure counts towards dead-lettering and delays
    /// the next attempt by the policy's backoff; a hand-back makes the part due again at once; a permanent
    /// failure (retrying cannot help) dead-letters the part at once.
    public func recordFailure(
        runID: String,
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
                    sql: "SELECT failures FROM outbox WHERE run_id = ? AND part = ? AND state IN (\(Self.failable))",
                    arguments: [runID, part]
                )
            else { return .ignored }
            guard countsAsFailure else {
                try db.execute(
                    sql: "UPDATE outbox SET state = 'pending', started = 0, due_at = ? WHERE run_id = ? AND part = ?",
                    arguments: [now.timeIntervalSince1970, runID, part]
                )
                return .retry(after: .zero)
            }
            let failures = (row["failures"] as Int) + 1
            if failures >= policy.maxAttempts || permanent {
                try db.execute(
                    sql: "UPDATE outbox SET state = 'dead', failures = ?, started = 0, last_error = ? WHERE run_id = ? AND part = ?",
                    arguments: [failures, reason, runID, part]
                )
                return .dead
            }
            let delay = policy.backoff(afterFailures: failures)
            let due = now.timeIntervalSince1970 + Double(delay.components.seconds) + Double(delay.components.attoseconds) / 1e18
            try db.execute(
                sql: """
                    UPDATE outbox SET state = 'pending', failures = ?, started = 0, last_error = ?, due_at = ?
                    WHERE run_id = ? AND part = ?
                    """,
                arguments: [failures, reason, due, runID, part]
            )
            return .retry(after: delay)
        }
    }

    /// The ``Entry/cause`` of a part refused by a processor because its key is stored with another sha256.
    public static let conflictCause = "conflict"

    /// Dead-letters a part at once (its raw file is unusable, or a processor refused it as a conflict:
    /// retrying cannot help). Returns whether the part was in a state that can be dead-lettered.
    @discardableResult
    public func markDead(runID: String, part: Int, reason: String, cause: String? = nil) async throws -> Bool {
        try await write { db in
            try db.execute(
                sql: """
                    UPDATE outbox SET state = 'dead', started = 0, last_error = ?, cause = ?
                    WHERE run_id = ? AND part = ? AND state IN (\(Self.killable))
                    """,
                arguments: [reason, cause, runID, part]
            )
            return db.changesCount > 0
        }
    }

    /// Puts parts back in the queue as new (attempts and failures forgotten), e.g. dead letters after a fix.
    /// - Returns: How many parts were requeued.
    @discardableResult
    public func requeue(runID: String, part: Int? = nil, now: Date = Date()) async throws -> Int {
        try await write { db in
            try db.execute(
                sql: """
                    UPDATE outbox SET state = 'pending', failures = 0, started = 0, last_error = NULL, cause = NULL, due_at = ?
                    WHERE run_id = ? AND (? IS NULL OR part = ?)
                    """,
                arguments: [now.timeIntervalSince1970, runID, part, part]
            )
            return db.changesCount
        }
    }

    /// Parts in a state (or all), oldest first, optionally with a dead-letter cause (``Entry/cause``), for one
    /// job and a logical-time range.
    public func entries(
        state: DeliveryState? = nil,
        cause: String? = nil,
        job: String? = nil,
        from: Date? = nil,
        to: Date? = nil
    ) async throws -> [Entry] {
        try await pool.read { db in
            var conditions: [String] = []
            var arguments: [any DatabaseValueConvertible] = []
            if let state {
                conditions.append("state = ?")
                arguments.append(state.rawValue)
            }
            if let cause {
                conditions.append("cause = ?")
                arguments.append(cause)
            }
            if let job {
                conditions.append("job = ?")
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
                sql: "SELECT * FROM outbox \(filter) ORDER BY logical_time, part",
                arguments: StatementArguments(arguments)
            ).map(Self.entry)
        }
    }

    /// One part.
    public func entry(runID: String, part: Int) async throws -> Entry? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM outbox WHERE run_id = ? AND part = ?", arguments: [runID, part]).map(Self.entry)
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

    /// The parts not yet stored, by state: `pending` (waiting to be sent or retried), `sent` (with a processor)
    /// and `dead`. Counted on the state index, so it costs nothing for the acknowledged parts.
    public func backlog() async throws -> (pending: Int, sent: Int, dead: Int) {
        try await pool.read { db in
            func count(_ state: String) throws -> Int {
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM outbox WHERE state = ?", arguments: [state]) ?? 0
            }
            return (try count("pending"), try count("sent"), try count("dead"))
        }
    }

    /// Acknowledged parts whose raw files may be deleted by retention, oldest first: (run, part, path, size, acked).
    public func acknowledgedFiles() async throws -> [(runID: String, part: Int, path: String, size: Int, ackedAt: Date)] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT run_id, part, path, size, acked_at FROM outbox WHERE state = 'acked' ORDER BY acked_at, seq")
                .map { row in
                    let acked: String = row["acked_at"]
                    return (row["run_id"], row["part"], row["path"], row["size"], Timestamp.parse(acked) ?? Date(timeIntervalSince1970: 0))
                }
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
                attempt: (row["deliveries"] as Int) + 1,
                durableAtUs: (row["durable_at"] as Double?).map(Timestamp.microseconds(since1970:))
            ),
            path: row["path"],
            state: DeliveryState(rawValue: row["state"]) ?? .pending,
            failures: row["failures"],
            lastError: row["last_error"],
            cause: row["cause"]
        )
    }
}
