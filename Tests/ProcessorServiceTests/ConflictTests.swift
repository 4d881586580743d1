import Foundation
import GRDB
import Messaging
import ProcessorService
import TestSupport
import Testing

/// A known key `(run, part)` with another sha256 is a conflict, never a duplicate.
struct ConflictTests {
    let scratch = Scratch()
    static let run = "j@1970-01-01T00:01:00.000Z"

    @Test(arguments: StoreBackend.allCases) func sameKeyAndSameChecksumIsADuplicateStoredOnce(backend: StoreBackend) async throws {
        let store = try await backend.open(scratch)
        let payload = Data("{\"a\":1}\n".utf8)
        let header = Fixtures.header(payload, run: Self.run)
        #expect(try await store.store(header, payload: payload, processor: "p1") == .stored(records: 1))
        #expect(try await store.store(header, payload: payload, processor: "p2") == .duplicate)
        #expect(try await store.resultCount() == 1)
        #expect(try await store.conflicts().isEmpty)
    }

    /// The first result stays; the second, with another checksum, is refused and kept aside whole.
    @Test(arguments: StoreBackend.allCases) func sameKeyAndAnotherChecksumIsAConflictKeptAside(backend: StoreBackend) async throws {
        let store = try await backend.open(scratch)
        let forged = Data("{\"forged\":true}\n".utf8)
        let real = Data("{\"real\":true}\n".utf8)
        let first = Fixtures.header(forged, run: Self.run)
        let second = Fixtures.header(real, run: Self.run)
        #expect(try await store.store(first, payload: forged, processor: "p1") == .stored(records: 1))
        #expect(try await store.store(second, payload: real, processor: "p2") == .conflict(stored: first.sha256))
        #expect(try await store.resultCount() == 1)
        #expect(try await store.storedSHA256(runID: Self.run, part: 0) == first.sha256)
        #expect(try await store.records(runID: Self.run) == ["{\"forged\":true}"])
        let conflicts = try await store.conflicts()
        #expect(conflicts.count == 1)
        #expect(conflicts.first?.header.sha256 == second.sha256)
        #expect(conflicts.first?.storedSHA256 == first.sha256)
        #expect(conflicts.first?.payload == real)
        #expect(conflicts.first?.processor == "p2")
        // Sent again, it is the same conflict, kept once.
        #expect(try await store.store(second, payload: real, processor: "p2") == .conflict(stored: first.sha256))
        #expect(try await store.conflicts().count == 1)
    }

    /// A batch in one transaction gives each part the outcome it would have alone: new parts stored with their
    /// lines, a known key with the same sha256 a duplicate, with another a conflict kept aside, and a key twice in
    /// the batch stored once.
    @Test(arguments: StoreBackend.allCases) func aBatchGivesEachPartItsOwnOutcome(backend: StoreBackend) async throws {
        let store = try await backend.open(scratch)
        let known = Data("{\"known\":1}\n".utf8)
        #expect(try await store.store(Fixtures.header(known, run: Self.run), payload: known, processor: "p1") == .stored(records: 1))
        let other = "j@1970-01-01T00:02:00.000Z"
        let parts = (0..<20).map { Data("{\"n\":\($0)}\n{\"m\":\($0)}\n".utf8) }
        var batch = parts.enumerated().map { (Fixtures.header($0.element, run: other, part: $0.offset), $0.element) }
        let forged = Data("{\"forged\":1}\n".utf8)
        batch.append((Fixtures.header(known, run: Self.run), known))
        batch.append((Fixtures.header(forged, run: Self.run), forged))
        batch.append((Fixtures.header(parts[3], run: other, part: 3), parts[3]))
        let outcomes = try await store.storeBatch(batch.map { (header: $0.0, payload: $0.1) }, processor: "p2")
        #expect(
            outcomes == Array(repeating: .stored(records: 2), count: 20) + [
                .duplicate, .conflict(stored: SHA256.hex(of: known)), .duplicate,
            ]
        )
        #expect(try await store.resultCount() == 21)
        for part in [0, 3, 19] {
            #expect(try await store.records(runID: other, part: part) == ["{\"n\":\(part)}", "{\"m\":\(part)}"])
        }
        #expect(try await store.conflicts().map(\.payload) == [forged])
    }

    /// The path of a processor command: `admit` before the command, `recordProcessed` after it.
    @Test(arguments: StoreBackend.allCases) func aCommandProcessedPartConflictsTheSameWay(backend: StoreBackend) async throws {
        let store = try await backend.open(scratch)
        let a = Data("a".utf8)
        let b = Data("b".utf8)
        let headerA = Fixtures.header(a, run: Self.run)
        let headerB = Fixtures.header(b, run: Self.run)
        #expect(try await store.admit(headerA, payload: a, processor: "p") == nil)
        #expect(try await store.recordProcessed(headerA, payload: a, processor: "p") == .stored(records: 0))
        #expect(try await store.admit(headerA, payload: a, processor: "p") == .duplicate)
        #expect(try await store.admit(headerB, payload: b, processor: "p") == .conflict(stored: headerA.sha256))
        // Another processor stored it while the command ran: the record is a conflict too.
        #expect(try await store.recordProcessed(headerB, payload: b, processor: "q") == .conflict(stored: headerA.sha256))
        #expect(try await store.conflicts().map(\.payload) == [b])
    }

    /// `baton replay --overwrite` replaces a stored part, whatever its checksum.
    @Test(arguments: StoreBackend.allCases) func overwriteReplacesAConflictingPart(backend: StoreBackend) async throws {
        let store = try await backend.open(scratch)
        let forged = Data("{\"forged\":true}\n".utf8)
        let real = Data("{\"real\":true}\n".utf8)
        _ = try await store.store(Fixtures.header(forged, run: Self.run), payload: forged, processor: "p")
        try await store.delete(runID: Self.run, part: 0)
        #expect(try await store.store(Fixtures.header(real, run: Self.run), payload: real, processor: "replay") == .stored(records: 1))
        #expect(try await store.storedSHA256(runID: Self.run, part: 0) == SHA256.hex(of: real))
    }

    /// A store made before conflicts were kept is migrated: its rows stay, conflicts are then kept.
    @Test func aStoreFromBeforeIsMigrated() async throws {
        let path = scratch.path("old.sqlite")
        try FileManager.default.createDirectory(atPath: scratch.directory, withIntermediateDirectories: true)
        let queue = try DatabaseQueue(path: path)
        try await queue.write { db in
            try db.execute(
                sql: """
                    CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY);
                    INSERT INTO grdb_migrations VALUES ('v1');
                    CREATE TABLE results (
                        run_id TEXT NOT NULL, part INTEGER NOT NULL, job TEXT NOT NULL, logical_time TEXT NOT NULL,
                        size INTEGER NOT NULL, sha256 TEXT NOT NULL,
                        format TEXT NOT NULL CHECK (format IN ('jsonl', 'blob', 'command')), blob BLOB,
                        processor TEXT NOT NULL, stored_at TEXT NOT NULL, PRIMARY KEY (run_id, part)
                    );
                    CREATE TABLE records (
                        run_id TEXT NOT NULL, part INTEGER NOT NULL, line INTEGER NOT NULL, data TEXT NOT NULL,
                        PRIMARY KEY (run_id, part, line)
                    );
                    """
            )
            try db.execute(
                sql:
                    "INSERT INTO results VALUES (?, 0, 'j', '1970-01-01T00:01:00.000Z', 1, ?, 'blob', x'61', 'p', '1970-01-01T00:01:00.000Z')",
                arguments: [Self.run, SHA256.hex(of: Data("a".utf8))]
            )
        }
        try queue.close()
        let store = try await ResultStore(path: path)
        let b = Data("b".utf8)
        #expect(
            try await store.store(Fixtures.header(b, run: Self.run), payload: b, processor: "p")
                == .conflict(stored: SHA256.hex(of: Data("a".utf8)))
        )
        #expect(try await store.conflicts().count == 1)
    }
}
