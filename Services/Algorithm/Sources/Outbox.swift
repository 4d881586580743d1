public import Foundation
import GRDB
import Persistence
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
    static let sendable = DeliveryState.sqlStates(accepting: .send)
    static let renewable = DeliveryState.sqlStates(accepting: .renew)
    static let leaseHolders = DeliveryState.sqlStates(accepting: .leaseExpired(exhausted: false))
    static let acknowledgeable = DeliveryState.sqlStates(accepting: .ack)
    static let failable = DeliveryState.sqlStates(accepting: .fail(exhausted: false))
    static let killable = DeliveryState.sqlStates(accepting: .kill)

    /// The state `event` leads to: the outbox's updates are set-based (`WHERE state IN (states it applies
    /// to)`), so the machine must send every such state to the same one, which is what is persisted.
    static func target(of event: DeliveryState.Event) -> DeliveryState {
        let targets = Set(DeliveryState.allCases.compactMap { $0.applying(event) })
        guard targets.count == 1, let target = targets.first else {
            preconditionFailure("\(event) leads to \(targets), not one state: the outbox cannot persist it in one update")
        }
        return target
    }

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
    public init(path: String, policy: RetryPolicy = RetryPolicy()) async throws {
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
        Self.migratePipelines(&migrator)
        migrator.registerMigration("v5 open tasks of a stage") { db in
            // Whether a stage has a task left is asked at every acknowledgement: a lookup with this index, where
            // the table's key alone walked every task of the stage (n²/2 row visits for a stage of n parts).
            try db.execute(sql: "CREATE INDEX outbox_run_stage_state ON outbox (run_id, stage, state)")
        }
        migrator.registerMigration("v6 counts by state") { db in
            // Every `baton results` answer carries the count of each state: `COUNT(*) … GROUP BY state` read the
            // whole state index (0.6 s at 10⁶ tasks kept). The counts are kept by triggers in the transaction that
            // moves a task, so reading them costs the same at any size.
            try db.execute(
                sql: """
                    CREATE TABLE outbox_counts (state TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
                    INSERT INTO outbox_counts (state, n) VALUES ('pending', 0), ('sent', 0), ('acked', 0), ('dead', 0);
                    UPDATE outbox_counts SET n = (SELECT COUNT(*) FROM outbox WHERE outbox.state = outbox_counts.state);
                    CREATE TRIGGER outbox_counts_insert AFTER INSERT ON outbox BEGIN
                        UPDATE outbox_counts SET n = n + 1 WHERE state = NEW.state;
                    END;
                    CREATE TRIGGER outbox_counts_delete AFTER DELETE ON outbox BEGIN
                        UPDATE outbox_counts SET n = n - 1 WHERE state = OLD.state;
                    END;
                    CREATE TRIGGER outbox_counts_update AFTER UPDATE OF state ON outbox WHEN OLD.state != NEW.state BEGIN
                        UPDATE outbox_counts SET n = n - 1 WHERE state = OLD.state;
                        UPDATE outbox_counts SET n = n + 1 WHERE state = NEW.state;
                    END;
                    """
            )
        }
        migrator.registerMigration("v7 raw removed") { db in
            // Retention looked at every acknowledged task's file at every sweep (a stat each, 10⁶ of them every ten
            // minutes at 10⁶ kept): a task whose raw file retention removed, or found gone, is marked, and a sweep
            // reads only the others, in acknowledgement order from this index.
            try db.execute(
                sql: """
                    ALTER TABLE outbox ADD COLUMN raw_removed INTEGER NOT NULL DEFAULT 0;
                    CREATE INDEX outbox_acked_kept ON outbox (acked_at, seq) WHERE state = 'acked' AND raw_removed = 0;
                    """
            )
        }
        pool = try await SQLiteFile.open(path: path, migrator: migrator)
        self.policy = policy
    }

    /// When parts handed off by this process became durable: the moment their transaction's commit returned,
    /// which `durable_at` (written inside the transaction) cannot know. Taken once, by the first send.
    private let commitTimes = Mutex<[String: Int64]>([:])

    /// Notes that these parts' transaction committed at `micros` (µs since 1970), and offers them to the sender's
    /// fast path with the bytes of those still in memory (by path).
    func noteCommitted(_ entries: [Entry], micros: Int64, payloads: [String: Data] = [:]) {
        commitTimes.withLock { times in
            if times.count > 100_000 { times.removeAll() }  // parts never sent here (e.g. a stopping sender)
            for entry in entries { times[Self.key(entry.header)] = micros }
        }
        guard !entries.isEmpty else { return }
        fresh.withLock { fresh in
            for entry in entries {
                // Sent already: the sender's query found it between the commit and this call.
                if fresh.claimed.contains(Self.key(entry.header)) { continue }
                guard fresh.tasks.count < Self.freshLimit else {
                    fresh.overflowed = true
                    break
                }
                var stamped = entry
                stamped.header.durableAtUs = micros
                fresh.tasks.append(FreshTask(entry: stamped, payload: entry.header.stage?.mode == .merge ? nil : payloads[entry.path]))
                fresh.listed.insert(Self.key(entry.header))
            }
        }
    }

    /// A task just committed, as the sender's fast path takes it: no query, and no file read when its bytes are
    /// still in memory.
    public struct FreshTask: Sendable {
        /// The task, as the outbox recorded it (with its commit time).
        public var entry: Entry
        /// Its bytes, checked against its header when they were sealed; nil: read them from its file.
        public var payload: Data?
    }

    /// The most tasks kept for the fast path; beyond, the sender finds them by querying.
    static let freshLimit = 1024
    private struct Fresh {
        var tasks: [FreshTask] = []
        /// The keys of `tasks` still to send: one claimed by the query's path leaves this set and is skipped when
        /// the list is taken (a claim costs a hash lookup, not a pass over the list).
        var listed: Set<String> = []
        var overflowed = false
        /// Tasks the sender sent by its query that were not on the list: one committed but not noted yet, which
        /// must not be put on it when it is (it would be sent twice). Bounded: a note comes microseconds after
        /// its commit, so only the last few matter.
        var claimed: Set<String> = []
        /// The claimed keys in a ring, to forget the oldest beyond the bound.
        var claimedOrder: [String] = []
        var claimedNext = 0
    }

    /// How many claimed keys are remembered.
    static let claimedLimit = 4096

    private let fresh = Mutex(Fresh())

    /// The tasks committed since the last call, oldest first, for a sender that found nothing else due; nil when
    /// some were not kept (too many), so that the sender must query. Either way the list is emptied.
    public func takeFresh() -> [FreshTask]? {
        let taken = fresh.withLock { fresh in
            defer {
                fresh.tasks = []
                fresh.listed = []
                fresh.overflowed = false
            }
            guard !fresh.overflowed else { return nil as [FreshTask]? }
            return fresh.tasks.count == fresh.listed.count
                ? fresh.tasks : fresh.tasks.filter { fresh.listed.contains(Self.key($0.entry.header)) }
        }
        // Their commit times travel in their headers already.
        if let taken, !taken.isEmpty {
            commitTimes.withLock { times in for task in taken { times[Self.key(task.entry.header)] = nil } }
        }
        return taken
    }

    /// Takes a task out of the fast path's list as the sender sends it by the query's path, so that it is never
    /// sent twice.
    public func claimFresh(_ header: ResultHeader) {
        let key = Self.key(header)
        fresh.withLock { fresh in
            if fresh.listed.remove(key) != nil { return }
            guard fresh.claimed.insert(key).inserted else { return }
            if fresh.claimedOrder.count < Self.claimedLimit {
                fresh.claimedOrder.append(key)
            } else {
                fresh.claimed.remove(fresh.claimedOrder[fresh.claimedNext])
                fresh.claimedOrder[fresh.claimedNext] = key
                fresh.claimedNext = (fresh.claimedNext + 1) % Self.claimedLimit
            }
        }
    }

    private static func key(_ header: ResultHeader) -> String { "\(header.runID)#\(header.stageNumber)#\(header.part)" }

    func withCommitTime(_ entry: Entry) -> Entry {
        var entry = entry
        if let micros = commitTimes.withLock({ $0.removeValue(forKey: Self.key(entry.header)) }) {
            entry.header.durableAtUs = micros
        }
        return entry
    }

    /// Tasks whose lease ran out after their processor had started (it died on them) and that will be sent
    /// again: the failure is counted in the transaction that finds them; the sender announces them.
    private let leaseRetries = Mutex<[Entry]>([])

    func noteLeaseRetries(_ entries: [Entry]) {
        guard !entries.isEmpty else { return }
        leaseRetries.withLock { $0 += entries }
    }

    /// The tasks found since the last call whose lease ran out while a processor worked on them, and that will
    /// be sent again (a failed attempt each, counted already).
    public func takeLeaseRetries() -> [Entry] {
        leaseRetries.withLock { entries in
            defer { entries.removeAll() }
            return entries
        }
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
            try db.executeCached(sql: "PRAGMA synchronous = NORMAL")
            defer { try? db.executeCached(sql: "PRAGMA synchronous = FULL") }
            var result: T?
            try db.inTransaction(.immediate) {
                result = try body(db)
                return .commit
            }
            guard let result else { throw StorageError("the outbox's bookkeeping transaction committed without a result") }
            return result
        }
    }

    /// Records a result part for delivery (committed when this returns). Adding the same part again does nothing.
    public func add(_ entry: Entry, now: Date = Date()) async throws {
        try await write { db in try Self.insert(entry, in: db, now: now) }
    }

    /// Inserts a task inside a caller's transaction (see ``RunLedger/finish(_:parts:now:)``).
    static func insert(_ entry: Entry, in db: Database, now: Date) throws {
        try db.executeCached(
            sql: """
                INSERT OR IGNORE INTO outbox
                    (run_id, stage, part, parts, pipeline, job, logical_time, path, size, sha256, state, due_at, created_at, durable_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                entry.header.runID, entry.header.stageNumber, entry.header.part, entry.header.parts, entry.header.pipeline ?? "",
                entry.header.job, Timestamp.format(entry.header.logicalTime), entry.path, entry.header.size, entry.header.sha256,
                DeliveryState.pending, now.timeIntervalSince1970, Timestamp.format(now), now.timeIntervalSince1970,
            ]
        )
    }

    /// Outbox rows with their pipeline's definition, as ``entry(_:)`` reads them.
    static let selectEntries = """
        SELECT outbox.*, pipelines.definition AS definition FROM outbox
        LEFT JOIN pipelines ON pipelines.version = outbox.pipeline
        """

    static func entry(_ row: Row) -> Entry {
        let time: String = row["logical_time"]
        var entry = Entry(
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
            state: DeliveryState.fromDatabaseValue(row["state"] as DatabaseValue) ?? .pending,
            failures: row["failures"],
            lastError: row["last_error"],
            cause: row["cause"]
        )
        let version: String = row["pipeline"] ?? ""
        if !version.isEmpty {
            let stage: Int = row["stage"]
            let pipeline = Self.pipeline(version: version, definition: row["definition"])
            entry.header.stageIndex = stage
            entry.header.pipeline = version
            entry.header.stages = pipeline?.stages.count
            entry.header.stage = pipeline.flatMap { stage < $0.stages.count ? $0.stages[stage] : nil }
        }
        return entry
    }
}
