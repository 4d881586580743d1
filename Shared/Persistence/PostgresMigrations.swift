/// A PostgreSQL schema in versions, as each component that keeps tables there (the result store, the run history)
/// declares it: `table` lists the versions applied; a version the code has and the database has not is applied
/// once, in the transaction that records it.
public struct PostgresMigrations: Sendable {
    /// One version: its number, a name for the table of applied versions, and its statements.
    public typealias Version = (version: Int, name: String, sql: String)

    /// The table that lists the versions applied.
    public let table: String
    /// The advisory lock that lets one starter migrate at a time: any constant every starter agrees on.
    public let lockKey: Int
    /// Every version, oldest first. Append; never edit one that was released.
    public let versions: [Version]

    public init(table: String, lockKey: Int, versions: [Version]) {
        self.table = table
        self.lockKey = lockKey
        self.versions = versions
    }

    /// Brings the schema up to `target` (the newest version by default), in one transaction. Starters that come
    /// together (processors, a logger) queue on a transaction-scoped advisory lock, so each sees the versions the
    /// one before it applied, and none applies a version twice.
    public func migrate(_ session: PostgresSession, upTo target: Int? = nil) throws {
        try session.transaction {
            try session.query("SELECT pg_advisory_xact_lock($1::bigint)", [.int(lockKey)])
            // `CREATE TABLE IF NOT EXISTS` on an existing table says so in a notice: not news at every start.
            try session.query("SET LOCAL client_min_messages TO warning")
            try session.query(
                """
                CREATE TABLE IF NOT EXISTS \(table) (
                    version INTEGER PRIMARY KEY,
                    name TEXT NOT NULL,
                    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
                )
                """
            )
            let applied = Set(try session.query("SELECT version FROM \(table)").compactMap { $0[0].flatMap { Int($0) } })
            for step in versions where !applied.contains(step.version) && step.version <= (target ?? Int.max) {
                try session.script(step.sql)
                try session.query("INSERT INTO \(table) (version, name) VALUES ($1, $2)", [.int(step.version), .text(step.name)])
            }
        }
    }
}
