import Foundation
import Messaging
import Persistence
import ProcessorService
import TestSupport
import Testing

/// The backends the store tests run against: SQLite in a scratch file, and a fresh database on the test
/// process's PostgreSQL server.
enum StoreBackend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite, postgres

    var testDescription: String { rawValue }

    /// A new, empty store.
    func open(_ scratch: Scratch) async throws -> ResultStore {
        try await open(scratch, name: "r").first
    }

    /// Two handles on one new, empty store, each with its own connection (or SQLite pool): two processors.
    func open(_ scratch: Scratch, name: String) async throws -> (first: ResultStore, second: ResultStore) {
        switch self {
        case .sqlite:
            let path = scratch.path("\(name).sqlite")
            return (try await ResultStore(path: path), try await ResultStore(path: path))
        case .postgres:
            let url = try await PostgresServer.shared().createDatabase()
            return (ResultStore(url: url), ResultStore(url: url))
        }
    }
}

/// The rules of storing hold for processors racing each other, whatever the backend.
struct StoreRaceTests {
    let scratch = Scratch()

    static func payload(_ run: String) -> Data { Data("{\"run\":\"\(run)\"}\n".utf8) }

    /// Two processors storing the same parts at once: each part is stored by one and a duplicate for the other.
    @Test(arguments: StoreBackend.allCases)
    func twoProcessorsRacingOnAKeyStoreItOnce(backend: StoreBackend) async throws {
        let (first, second) = try await backend.open(scratch, name: "race")
        let runs = (0..<40).map { "j@\($0)" }
        let outcomes = try await withThrowingTaskGroup(of: (String, ResultStore.Outcome).self) { group in
            for run in runs {
                for (store, processor) in [(first, "p1"), (second, "p2")] {
                    group.addTask {
                        (
                            run,
                            try await store.store(
                                Fixtures.header(Self.payload(run), run: run),
                                payload: Self.payload(run),
                                processor: processor
                            )
                        )
                    }
                }
            }
            return try await group.reduce(into: [String: [ResultStore.Outcome]]()) { $0[$1.0, default: []].append($1.1) }
        }
        for run in runs {
            let sorted = (outcomes[run] ?? []).map { $0 == .duplicate ? "duplicate" : "\($0)" }.sorted()
            #expect(sorted == ["duplicate", "stored(records: 1)"], "\(run)")
            #expect(try await first.records(runID: run) == [String(decoding: Self.payload(run).dropLast(), as: UTF8.self)])
        }
        #expect(try await second.resultCount() == runs.count)
    }

    /// Two processors storing different bytes under one key at once: one is stored, the other a conflict kept aside.
    @Test(arguments: StoreBackend.allCases)
    func twoProcessorsRacingWithDifferentBytesGiveOneConflict(backend: StoreBackend) async throws {
        let (first, second) = try await backend.open(scratch, name: "conflict")
        let a = Data("{\"a\":1}\n".utf8)
        let b = Data("{\"b\":2}\n".utf8)
        async let one = first.store(Fixtures.header(a), payload: a, processor: "p1")
        async let two = second.store(Fixtures.header(b), payload: b, processor: "p2")
        let outcomes = try await [one, two]
        let stored = try #require(try await first.storedSHA256(runID: "j@1", part: 0))
        #expect(outcomes.filter { $0 == .stored(records: 1) }.count == 1)
        #expect(outcomes.contains(.conflict(stored: stored)))
        let conflicts = try await second.conflicts()
        #expect(conflicts.count == 1)
        #expect(conflicts.first.map { SHA256.hex(of: $0.payload) } == conflicts.first?.header.sha256)
        #expect(conflicts.first?.header.sha256 != stored)
    }
}

/// The PostgreSQL backend's own promises: versioned migrations, and outages survived.
struct PostgresStoreTests {
    /// A database at schema version 1 (before conflicts and stages) keeps its rows and gets versions 2 and 3.
    @Test func anOldSchemaIsMigrated() async throws {
        let url = try await PostgresServer.shared().createDatabase()
        let old = Data("a".utf8)
        let connection = PostgresConnection(url: url)
        try await connection.run { session in
            try session.script(
                """
                CREATE TABLE baton_schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,
                    applied_at TIMESTAMPTZ NOT NULL DEFAULT now());
                INSERT INTO baton_schema_migrations (version, name) VALUES (1, 'results and records');
                CREATE TABLE results (run_id TEXT NOT NULL, part INTEGER NOT NULL, job TEXT NOT NULL, logical_time TEXT NOT NULL,
                    size BIGINT NOT NULL, sha256 TEXT NOT NULL, format TEXT NOT NULL, blob BYTEA, processor TEXT NOT NULL,
                    stored_at TEXT NOT NULL, PRIMARY KEY (run_id, part));
                CREATE TABLE records (run_id TEXT NOT NULL, part INTEGER NOT NULL, line INTEGER NOT NULL, data TEXT NOT NULL,
                    PRIMARY KEY (run_id, part, line));
                """
            )
            try session.query(
                "INSERT INTO results VALUES ('j@1', 0, 'j', '1970-01-01T00:01:00.000Z', 1, $1, 'blob', '\\x61', 'p', 'then')",
                [.text(SHA256.hex(of: old))]
            )
        }
        let store = ResultStore(url: url)
        let b = Data("b".utf8)
        #expect(try await store.store(Fixtures.header(b), payload: b, processor: "p") == .conflict(stored: SHA256.hex(of: old)))
        #expect(try await store.conflicts().map(\.payload) == [b])
        let staged = Data("c".utf8)
        var header = Fixtures.header(staged, run: "j@2")
        header.stage = StageSpec(name: "keep", builtin: .store)
        #expect(try await store.store(header, payload: staged, processor: "p") == .stored(records: 0))
        #expect(try await store.storedParts().map(\.stage).sorted { ($0 ?? "") < ($1 ?? "") } == [nil, "keep"])
        let versions = try await connection.run { session in
            try session.query("SELECT version FROM baton_schema_migrations ORDER BY version").map { $0[0] ?? "" }
        }
        #expect(versions == ["1", "2", "3"])
    }

    /// Processors starting together on an empty database: one creates the schema, the others find it; none fails.
    @Test func concurrentStartersMigrateOnce() async throws {
        let url = try await PostgresServer.shared().createDatabase()
        let payload = Data("x".utf8)
        let counts = try await withThrowingTaskGroup(of: Int.self) { group in
            for index in 0..<8 {
                group.addTask {
                    let store = ResultStore(url: url)
                    _ = try await store.store(Fixtures.header(payload, run: "j@\(index)"), payload: payload, processor: "p\(index)")
                    return try await store.resultCount()
                }
            }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(counts.count == 8)
        #expect(try await ResultStore(url: url).resultCount() == 8)
        let versions = try await PostgresConnection(url: url).run { session in
            try session.query("SELECT version FROM baton_schema_migrations ORDER BY version").map { $0[0] ?? "" }
        }
        #expect(versions == ["1", "2", "3"])
    }

    /// The server goes away: a processor's store holds the call, says `down` once, and stores the part when the
    /// server is back (and says `up`); the CLI's store fails at once instead.
    @Test(.timeLimit(.minutes(2)))
    func aStoreWaitsThroughAnOutage() async throws {
        let server = try await PostgresServer.start()
        defer { server.remove() }
        let url = try await server.createDatabase()
        let events = HealthLog()
        let store = ResultStore(url: url, waitThroughOutages: true) { events.append($0) }
        let first = Data("{\"n\":1}\n".utf8)
        #expect(try await store.store(Fixtures.header(first, run: "j@1"), payload: first, processor: "p") == .stored(records: 1))
        try server.kill9()
        let second = Data("{\"n\":2}\n".utf8)
        let pending = Task { try await store.store(Fixtures.header(second, run: "j@2"), payload: second, processor: "p") }
        #expect(try await Wait.until(timeout: .seconds(30)) { events.all.contains { if case .down = $0 { true } else { false } } })
        await #expect(throws: PostgresError.self) { try await ResultStore(url: url).resultCount() }
        try await server.start()
        #expect(try await pending.value == .stored(records: 1))
        #expect(try await store.records(runID: "j@2") == ["{\"n\":2}"])
        #expect(try await store.resultCount() == 2)
        let said = events.all.filter { if case .failed = $0 { false } else { true } }
        #expect(said.count == 2)
        #expect(said.last == .up)
    }
}

/// What a store said about its server, in order.
final class HealthLog: @unchecked Sendable {
    private let lock = NSLock()
    private var events: [ResultStore.Health] = []

    func append(_ event: ResultStore.Health) {
        lock.lock()
        events.append(event)
        lock.unlock()
    }

    var all: [ResultStore.Health] {
        lock.lock()
        defer { lock.unlock() }
        return events
    }
}
