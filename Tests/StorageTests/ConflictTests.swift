import Foundation
import GRDB
import Messaging
import Storage
import Testing

/// A known key `(run, part)` with another sha256 is a conflict, never a duplicate.
struct ConflictTests {
    let scratch = Scratch()
    static let run = "j@1970-01-01T00:01:00.000Z"

    @Test func sameKeyAndSameChecksumIsADuplicateStoredOnce() async throws {
        let store = try ResultStore(path: scratch.path("r.sqlite"))
        let payload = Data("{\"a\":1}\n".utf8)
        let header = StorageTests.header(payload, run: Self.run)
        #expect(try await store.store(header, payload: payload, processor: "p1") == .stored(records: 1))
        #expect(try await store.store(header, payload: payload, processor: "p2") == .duplicate)
        #expect(try await store.resultCount() == 1)
        #expect(try await store.conflicts().isEmpty)
    }

    /// The first result stays; the second, with another checksum, is refused and kept aside whole.
    @Test func sameKeyAndAnotherChecksumIsAConflictKeptAside() async throws {
        let store = try ResultStore(path: scratch.path("r.sqlite"))
        let forged = Data("{\"forged\":true}\n".utf8)
        let real = Data("{\"real\":true}\n".utf8)
        let first = StorageTests.header(forged, run: Self.run)
        let second = StorageTests.header(real, run: Self.run)
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

    /// The path of a processor command: `admit` before the command, `recordProcessed` after it.
    @Test func aCommandProcessedPartConflictsTheSameWay() async throws {
        let store = try ResultStore(path: scratch.path("r.sqlite"))
        let a = Data("a".utf8)
        let b = Data("b".utf8)
        let headerA = StorageTests.header(a, run: Self.run)
        let headerB = StorageTests.header(b, run: Self.run)
        #expect(try await store.admit(headerA, payload: a, processor: "p") == nil)
        #expect(try await store.recordProcessed(headerA, payload: a, processor: "p") == .stored(records: 0))
        #expect(try await store.admit(headerA, payload: a, processor: "p") == .duplicate)
        #expect(try await store.admit(headerB, payload: b, processor: "p") == .conflict(stored: headerA.sha256))
        // Another processor stored it while the command ran: the record is a conflict too.
        #expect(try await store.recordProcessed(headerB, payload: b, processor: "q") == .conflict(stored: headerA.sha256))
        #expect(try await store.conflicts().map(\.payload) == [b])
    }

    /// `baton replay --overwrite` replaces a stored part, whatever its checksum.
    @Test func overwriteReplacesAConflictingPart() async throws {
        let store = try ResultStore(path: scratch.path("r.sqlite"))
        let forged = Data("{\"forged\":true}\n".utf8)
        let real = Data("{\"real\":true}\n".utf8)
        _ = try await store.store(StorageTests.header(forged, run: Self.run), payload: forged, processor: "p")
        try await store.delete(runID: Self.run, part: 0)
        #expect(try await store.store(StorageTests.header(real, run: Self.run), payload: real, processor: "replay") == .stored(records: 1))
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
        let store = try ResultStore(path: path)
        let b = Data("b".utf8)
        #expect(
            try await store.store(StorageTests.header(b, run: Self.run), payload: b, processor: "p")
                == .conflict(stored: SHA256.hex(of: Data("a".utf8)))
        )
        #expect(try await store.conflicts().count == 1)
    }
}

struct DeadLetterCauseTests {
    let scratch = Scratch()
    let t0 = Date(timeIntervalSince1970: 1_000_000)

    /// A conflict is dead at once, with its cause, and listed by cause; a requeue forgets the cause.
    @Test func aConflictIsDeadAtOnceWithItsCause() async throws {
        let outbox = try Outbox(path: scratch.path("o.sqlite"), policy: .init(maxAttempts: 5))
        let run = ConflictTests.run
        try await outbox.add(.init(header: StorageTests.header(Data("1".utf8), run: run), path: "/x/1"), now: t0)
        try await outbox.add(.init(header: StorageTests.header(Data("2".utf8), run: "j@1970-01-01T00:02:00.000Z"), path: "/x/2"), now: t0)
        try await outbox.markSent(runID: run, part: 0, leaseDeadline: t0 + 30, now: t0)
        #expect(try await outbox.markDead(runID: run, part: 0, reason: "conflict: stored with another sha256", cause: Outbox.conflictCause))
        let entry = try #require(try await outbox.entry(runID: run, part: 0))
        #expect(entry.state == .dead)
        #expect(entry.cause == "conflict")
        #expect(entry.failures == 0)
        #expect(try await outbox.entries(state: .dead, cause: Outbox.conflictCause).map(\.header.runID) == [run])
        try await outbox.requeue(runID: run)
        #expect(try await outbox.entry(runID: run, part: 0)?.cause == nil)
    }
}
