public import Foundation
public import Messaging
public import Config

/// The processors' store: one row per stored result part, and for JSON-lines results one row per line. Two
/// backends keep it with the same tables, keys and rules: SQLite (a file, `store.path`, the default) and
/// PostgreSQL (`store.url`); callers see only this type.
///
/// Storing is idempotent by key `(run_id, part)`: each part is stored in one transaction, and a part already
/// there with the same sha256 is reported as a duplicate and left as it is. A part whose key is there with
/// another sha256 is a conflict, never a duplicate: it is refused, the stored part is left as it is, and the
/// refused one is kept aside in the `conflicts` table (its header, bytes, both checksums, when and by which
/// processor) for inspection. Any number of processes may share the store.
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

    /// A part the store cannot keep whatever is tried (larger than one database value may be): the processor
    /// reports it as a permanent failure, so it is dead-lettered at once.
    public struct TooLarge: Error, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }

    /// What the PostgreSQL backend says about reaching its server (SQLite never says anything).
    public enum Health: Sendable, Equatable {
        /// One attempt failed because the server cannot be reached (said for every attempt, to be counted).
        case failed(String)
        /// The server became unreachable: said once, with the first error, until ``up``.
        case down(String)
        /// The server is reachable again, after ``down(_:)``.
        case up
    }

    /// One stored part, for `baton audit`.
    public typealias StoredPart = (runID: String, part: Int, size: Int, sha256: String, stage: String?)

    /// The SQLite file, or the PostgreSQL URL with any password hidden.
    public let location: String
    private let backend: any ResultStoreBackend

    /// Opens (creating and migrating if needed) a SQLite store.
    /// - Parameter path: The SQLite file.
    public init(path: String) async throws {
        backend = try await SQLiteResultStore(path: path)
        location = path
    }

    /// A SQLite store that takes no value over `valueLimit` bytes (below SQLite's own 10⁹), for tests of what is
    /// too large without a gigabyte of test data.
    public init(path: String, valueLimit: Int) async throws {
        backend = try await SQLiteResultStore(path: path, valueLimit: valueLimit)
        location = path
    }

    /// A PostgreSQL store. Nothing is connected yet: the schema is created or migrated at the first use.
    /// - Parameters:
    ///   - url: `postgresql://USER[:PASS]@HOST[:PORT]/DB` (or `postgres://`, or libpq's `?host=/socket/dir`).
    ///   - name: Shown by the server as the connection's application name.
    ///   - waitThroughOutages: While the server cannot be reached, retry each call (0.5 s doubling to 30 s)
    ///     until it can, or the task is cancelled; otherwise throw at once (the CLI).
    ///   - health: Told when the server goes away and comes back.
    public init(
        url: String,
        name: String = "baton",
        waitThroughOutages: Bool = false,
        health: @escaping @Sendable (Health) -> Void = { _ in }
    ) {
        backend = PostgresResultStore(url: url, name: name, waitThroughOutages: waitThroughOutages, health: health)
        location = Configuration.Store.redacted(url)
    }

    /// The deployment's store: PostgreSQL when `store.url` is set, else the SQLite file `store.path`.
    public static func open(
        _ configuration: Configuration,
        name: String = "baton",
        waitThroughOutages: Bool = false,
        health: @escaping @Sendable (Health) -> Void = { _ in }
    ) async throws -> ResultStore {
        if configuration.store.url.isEmpty { return try await ResultStore(path: configuration.storePath) }
        return ResultStore(url: configuration.store.url, name: name, waitThroughOutages: waitThroughOutages, health: health)
    }

    /// Stores one result part with the built-in `store` processor: JSON lines become records, anything else a blob.
    /// - Parameters:
    ///   - header: The part's header (key, job, checksum).
    ///   - payload: The raw result bytes, already checked against the header.
    ///   - processor: The storing processor's instance name.
    public func store(_ header: ResultHeader, payload: Data, processor: String) async throws -> Outcome {
        try await backend.store(header, payload: payload, processor: processor)
    }

    /// Stores many small parts in one transaction where the backend can (SQLite: one commit, one fsync, for all),
    /// each as ``store(_:payload:processor:)`` would: its own outcome, the same keys and conflict rules. Any error
    /// stores none of them (the caller stores them one by one to find which).
    public func storeBatch(_ parts: [(header: ResultHeader, payload: Data)], processor: String) async throws -> [Outcome] {
        try await backend.storeBatch(parts, processor: processor)
    }

    /// True when a part was already stored (or processed by a command).
    public func contains(runID: String, part: Int) async throws -> Bool {
        try await storedSHA256(runID: runID, part: part) != nil
    }

    /// The sha256 a part was stored (or processed by a command) with; nil when it is not stored.
    public func storedSHA256(runID: String, part: Int) async throws -> String? {
        try await backend.storedSHA256(runID: runID, part: part)
    }

    /// What a part already stored makes of this one: nil when its key is new; ``Outcome/duplicate`` when it
    /// is stored with the same sha256; ``Outcome/conflict(stored:)`` when with another (and kept aside), before
    /// an external processor command is given it.
    public func admit(_ header: ResultHeader, payload: Data, processor: String) async throws -> Outcome? {
        try await backend.admit(header, payload: payload, processor: processor)
    }

    /// Records that an external processor command handled a part, so that a redelivery is recognised.
    /// - Returns: ``Outcome/duplicate`` if it was already recorded with the same sha256, ``Outcome/conflict(stored:)``
    ///   if with another (another processor stored it meanwhile; the payload is then kept aside).
    public func recordProcessed(_ header: ResultHeader, payload: Data, processor: String) async throws -> Outcome {
        try await backend.recordProcessed(header, payload: payload, processor: processor)
    }

    /// Removes a stored part and its records (for `baton replay --overwrite`).
    public func delete(runID: String, part: Int) async throws {
        try await backend.delete(runID: runID, part: part)
    }

    /// Every stored part's key, checksum and stage (nil for a job without stages), for `baton audit`.
    public func storedParts() async throws -> [StoredPart] {
        try await backend.storedParts()
    }

    /// Number of stored parts.
    public func resultCount() async throws -> Int {
        try await backend.resultCount()
    }

    /// The records of one part, in line order.
    public func records(runID: String, part: Int = 0) async throws -> [String] {
        try await backend.records(runID: runID, part: part)
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

        /// A conflict as the `conflicts` table keeps it (the header as JSON, the time as text).
        init(headerText: String, storedSHA256: String, payload: Data, processor: String, receivedAt: String) throws {
            header = try Timestamp.decoder().decode(ResultHeader.self, from: Data(headerText.utf8))
            self.storedSHA256 = storedSHA256
            self.payload = payload
            self.processor = processor
            self.receivedAt = Timestamp.parse(receivedAt) ?? Date(timeIntervalSince1970: 0)
        }
    }

    /// The parts refused as conflicts, oldest first.
    public func conflicts() async throws -> [Conflict] {
        try await backend.conflicts()
    }

    /// A refused part's header as the `conflicts` table keeps it: without its sending time, so that the same
    /// part sent again is the same row.
    static func keptHeader(_ header: ResultHeader) throws -> String {
        var kept = header
        kept.sentAtUs = nil
        return String(decoding: try Timestamp.encoder().encode(kept), as: UTF8.self)
    }

    /// The byte ranges of a payload's lines when every line is one JSON value (``JSONLines``); `nil` otherwise
    /// (store as a blob). A trailing newline ends the last line; it does not start an empty one.
    static func jsonLines(_ payload: Data) -> [Range<Int>]? {
        JSONLines.lines(in: payload)
    }
}

/// What each backend of ``ResultStore`` does, with the same rules (see there).
protocol ResultStoreBackend: Sendable {
    func store(_ header: ResultHeader, payload: Data, processor: String) async throws -> ResultStore.Outcome
    func storedSHA256(runID: String, part: Int) async throws -> String?
    func storeBatch(_ parts: [(header: ResultHeader, payload: Data)], processor: String) async throws -> [ResultStore.Outcome]
    func admit(_ header: ResultHeader, payload: Data, processor: String) async throws -> ResultStore.Outcome?
    func recordProcessed(_ header: ResultHeader, payload: Data, processor: String) async throws -> ResultStore.Outcome
    func delete(runID: String, part: Int) async throws
    func storedParts() async throws -> [ResultStore.StoredPart]
    func resultCount() async throws -> Int
    func records(runID: String, part: Int) async throws -> [String]
    func conflicts() async throws -> [ResultStore.Conflict]
}
