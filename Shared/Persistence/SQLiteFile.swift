import Foundation
public import GRDB

/// The one way a service opens its SQLite file: WAL, a busy timeout for concurrent writers, every commit
/// synced, and its migrations applied. Each store (the scheduler's state, the algorithm's outbox and run
/// ledger, the processor's result store) keeps its own schema; only this opening is shared.
public enum SQLiteFile {
    /// Opens (creating its directory and the file if needed) a WAL database and migrates it.
    ///
    /// Retries, waiting without blocking a thread, while another process holds the lock that switching to
    /// WAL needs (SQLite does not apply the busy timeout to that step, so processors starting together can
    /// collide), or created the schema between our check and our migration.
    /// - Parameters:
    ///   - path: The SQLite file.
    ///   - migrator: The store's migrations.
    ///   - attempts: How many times a collision is retried.
    public static func open(path: String, migrator: DatabaseMigrator, attempts: Int = 50) async throws -> DatabasePool {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        var configuration = GRDB.Configuration()
        configuration.busyMode = .timeout(30)
        var attempt = 0
        while true {
            do {
                // Opening and migrating wait on the file (and on other processes opening it, up to the busy
                // timeout): on a thread of their own, never on the cooperative pool's few threads.
                let settings = configuration
                return try await Self.offPool {
                    let pool = try DatabasePool(path: path, configuration: settings)
                    // GRDB sets WAL databases to synchronous=NORMAL, which survives a killed process but not a power
                    // loss or kernel crash: the last commits can roll back. Baton acknowledges and reports what it
                    // committed, so every commit must be on disk: FULL syncs the WAL at each commit.
                    try pool.writeWithoutTransaction { try $0.execute(sql: "PRAGMA synchronous = FULL") }
                    try migrator.migrate(pool)
                    return pool
                }
            } catch let error as DatabaseError where isCollision(error) && attempt < attempts {
                attempt += 1
                try await Task.sleep(for: .milliseconds(20 + attempt * 10))
            }
        }
    }

    /// Runs `body` on a new thread and returns its result.
    private static func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try body() }) }.start()
        }
    }

    /// Another process is switching the file to WAL, or applied the migration we were about to apply (the
    /// migrator reads which are applied before it opens the transaction of each, so two processes starting
    /// together may both try one: the second finds its table made, its column added or its table renamed, and
    /// tries again; a real error comes back at each try, and is thrown after the last).
    static func isCollision(_ error: DatabaseError) -> Bool {
        guard error.resultCode != .SQLITE_BUSY else { return true }
        let text = "\(error)"
        let collisions = ["already exists", "duplicate column name", "already another table or index", "no such table"]
        return error.resultCode == .SQLITE_ERROR && collisions.contains { text.contains($0) }
    }

    /// Whether an error means the disk (or the database's size limit) is full.
    public static func isDiskFull(_ error: any Error) -> Bool {
        guard let error = error as? DatabaseError else { return false }
        return error.resultCode == .SQLITE_FULL || error.extendedResultCode == .SQLITE_IOERR_WRITE
    }
}

extension Database {
    /// Runs one statement from this connection's statement cache: its text is parsed once per connection, where
    /// `execute(sql:arguments:)` parses it at every call. For the statements run per task or per run, whose text
    /// never changes: parsing was a fifth of the algorithm's CPU while it handed out a thousand tasks a second.
    /// `changesCount` tells what it changed, as after `execute`.
    public func executeCached(sql: String, arguments: StatementArguments = StatementArguments()) throws {
        try cachedStatement(sql: sql).execute(arguments: arguments)
    }
}

/// A storage failure with the system's reason.
public struct StorageError: Error, Sendable, CustomStringConvertible {
    /// What failed.
    public var message: String
    /// The C errno, if a system call failed.
    public var code: Int32?

    /// Creates an error.
    public init(_ message: String, errno code: Int32? = nil) {
        self.message = message
        self.code = code
    }

    public var description: String {
        guard let code else { return message }
        return "\(message): \(String(cString: strerror(code)))"
    }
}
