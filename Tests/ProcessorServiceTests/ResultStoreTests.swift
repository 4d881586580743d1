import Foundation
import GRDB
import Messaging
import ProcessorService
import TestSupport
import Testing

struct ResultStoreTests {
    let scratch = Scratch()

    @Test(arguments: StoreBackend.allCases) func jsonLinesAreStoredOneRowPerLineExactly(backend: StoreBackend) async throws {
        let store = try await backend.open(scratch)
        let payload = Data("{\"a\": 1}\n[1,2]\n\"text\"\n".utf8)
        #expect(try await store.store(Fixtures.header(payload), payload: payload, processor: "p") == .stored(records: 3))
        #expect(try await store.records(runID: "j@1") == ["{\"a\": 1}", "[1,2]", "\"text\""])
    }

    @Test(arguments: StoreBackend.allCases) func storingTheSamePartTwiceKeepsOneCopy(backend: StoreBackend) async throws {
        let store = try await backend.open(scratch)
        let payload = Data("{\"a\":1}\n".utf8)
        #expect(try await store.store(Fixtures.header(payload), payload: payload, processor: "p1") == .stored(records: 1))
        #expect(try await store.store(Fixtures.header(payload), payload: payload, processor: "p2") == .duplicate)
        #expect(try await store.resultCount() == 1)
        #expect(try await store.records(runID: "j@1").count == 1)
    }

    @Test(arguments: StoreBackend.allCases) func nonJsonPayloadIsABlob(backend: StoreBackend) async throws {
        let store = try await backend.open(scratch)
        let payload = Data([0xff, 0x00, 0x01])
        #expect(try await store.store(Fixtures.header(payload), payload: payload, processor: "p") == .stored(records: 0))
        #expect(try await store.contains(runID: "j@1", part: 0))
    }

    /// Many lines, each kept byte for byte (non-ASCII text, escapes, CR before the newline) in line order.
    @Test(arguments: StoreBackend.allCases) func manyLinesAreStoredByteForByte(backend: StoreBackend) async throws {
        let store = try await backend.open(scratch)
        let lines = (0..<3000).map { index in
            index % 3 == 0 ? "{\"n\":\(index),\"t\":\"é€😀 \\\"\\u00e9\"}\r" : index % 3 == 1 ? "[\(index), -0.5e3, null]" : "\"\(index)\""
        }
        let payload = Data(lines.joined(separator: "\n").utf8 + [0x0A])
        #expect(try await store.store(Fixtures.header(payload), payload: payload, processor: "p") == .stored(records: lines.count))
        #expect(try await store.records(runID: "j@1") == lines)
    }

    /// Random JSON lines (every kind of value, whitespace with tabs and CRs, escapes, non-ASCII text) come back
    /// from `records` byte for byte and in order, whatever the store keeps them as.
    @Test(arguments: StoreBackend.allCases) func randomLinesComeBackByteForByte(backend: StoreBackend) async throws {
        let store = try await backend.open(scratch)
        try await Self.storeRandomLines(in: store, seeds: 0..<300)
    }

    /// SQLite keeps a part's lines in blocks of bounded size (here at most 256 bytes, so a line of its own now and
    /// then): the lines come back whole, in order, across the blocks' edges.
    @Test func linesSpreadOverManyBlocksComeBackInOrder() async throws {
        try FileManager.default.createDirectory(atPath: scratch.directory, withIntermediateDirectories: true)
        let store = try await ResultStore(path: scratch.path("small-blocks.sqlite"), valueLimit: 256)
        try await Self.storeRandomLines(in: store, seeds: 300..<400)
    }

    /// Stores one part of the lines the seeds make (``JSONMaker``) and reads them back.
    private static func storeRandomLines(in store: ResultStore, seeds: Range<UInt64>) async throws {
        var lines: [[UInt8]] = []
        for seed in seeds {
            var maker = JSONMaker(seed: seed)
            let (data, bounds) = maker.payload()
            lines += bounds.map { Array(data[$0]) }.filter { $0.count < 120 }
        }
        let payload = Data(lines.joined(separator: [0x0A]))
        #expect(try await store.store(Fixtures.header(payload), payload: payload, processor: "p") == .stored(records: lines.count))
        let records = try await store.records(runID: "j@1")
        #expect(records.count == lines.count)
        for (index, (record, line)) in zip(records, lines).enumerated() where Array(record.utf8) != line {
            Issue.record("line \(index): \(String(decoding: line, as: UTF8.self).debugDescription) came back as \(record.debugDescription)")
        }
    }

    /// A store from before the blocks (version 3: a row per line in the `records` table) keeps its lines: after
    /// the migration `records` gives the old rows and the new blocks alike, and deleting a part removes either.
    @Test func aStoreWithARowPerLineIsMigrated() async throws {
        try FileManager.default.createDirectory(atPath: scratch.directory, withIntermediateDirectories: true)
        let path = scratch.path("v3.sqlite")
        let old = Data("{\"old\": 1}\n[2]\n".utf8)
        let queue = try DatabaseQueue(path: path)
        try await queue.write { db in
            try db.execute(
                sql: """
                    CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY);
                    INSERT INTO grdb_migrations VALUES ('v1'), ('v2 conflicts'), ('v3 stage');
                    CREATE TABLE results (
                        run_id TEXT NOT NULL, part INTEGER NOT NULL, job TEXT NOT NULL, logical_time TEXT NOT NULL,
                        size INTEGER NOT NULL, sha256 TEXT NOT NULL,
                        format TEXT NOT NULL CHECK (format IN ('jsonl', 'blob', 'command')), blob BLOB,
                        processor TEXT NOT NULL, stored_at TEXT NOT NULL, stage TEXT, PRIMARY KEY (run_id, part)
                    );
                    CREATE TABLE records (
                        run_id TEXT NOT NULL, part INTEGER NOT NULL, line INTEGER NOT NULL, data TEXT NOT NULL,
                        PRIMARY KEY (run_id, part, line),
                        FOREIGN KEY (run_id, part) REFERENCES results (run_id, part) ON DELETE CASCADE
                    );
                    CREATE TABLE conflicts (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL);
                    """
            )
            try db.execute(
                sql: """
                    INSERT INTO results VALUES ('j@1', 0, 'j', '1970-01-01T00:01:00.000Z', ?, ?, 'jsonl', NULL, 'p',
                        '1970-01-01T00:01:00.000Z', NULL);
                    INSERT INTO records VALUES ('j@1', 0, 0, '{"old": 1}'), ('j@1', 0, 1, '[2]');
                    """,
                arguments: [old.count, SHA256.hex(of: old)]
            )
        }
        try queue.close()
        let store = try await ResultStore(path: path)
        #expect(try await store.records(runID: "j@1") == ["{\"old\": 1}", "[2]"])
        #expect(try await store.store(Fixtures.header(old), payload: old, processor: "p") == .duplicate)
        let new = Data("{\"new\": 3}\n".utf8)
        #expect(try await store.store(Fixtures.header(new, run: "j@2"), payload: new, processor: "p") == .stored(records: 1))
        #expect(try await store.records(runID: "j@2") == ["{\"new\": 3}"])
        try await store.delete(runID: "j@1", part: 0)
        try await store.delete(runID: "j@2", part: 0)
        #expect(try await store.records(runID: "j@1").isEmpty)
        #expect(try await store.records(runID: "j@2").isEmpty)
        #expect(try await store.resultCount() == 0)
    }

    /// What is not one JSON value per line is kept whole: a trailing comma, a blank line, a lone surrogate.
    @Test(arguments: StoreBackend.allCases) func notQuiteJSONLinesIsABlob(backend: StoreBackend) async throws {
        let store = try await backend.open(scratch)
        for (index, text) in ["[1,2,]\n", "1\n\n2\n", "\"\\ud800\"\n"].enumerated() {
            let payload = Data(text.utf8)
            let header = Fixtures.header(payload, run: "j@\(index + 1)")
            #expect(try await store.store(header, payload: payload, processor: "p") == .stored(records: 0), "\(text.debugDescription)")
            #expect(try await store.records(runID: header.runID).isEmpty)
        }
    }

    /// A pipeline's store stage records its name with each part; a job without stages records none.
    @Test(arguments: StoreBackend.allCases) func eachPartRecordsTheStageThatStoredIt(backend: StoreBackend) async throws {
        let store = try await backend.open(scratch)
        let payload = Data("{\"a\":1}\n".utf8)
        var staged = Fixtures.header(payload, run: "j@2")
        staged.stageIndex = 2
        staged.stages = 3
        staged.stage = StageSpec(name: "keep", builtin: .store)
        _ = try await store.store(staged, payload: payload, processor: "p")
        _ = try await store.store(Fixtures.header(payload, run: "j@1"), payload: payload, processor: "p")
        let stages = try await store.storedParts().sorted { $0.runID < $1.runID }.map(\.stage)
        #expect(stages == [nil, "keep"])
    }
}

struct SplitTests {
    @Test(arguments: [
        ("a\nb\nc\nd\ne\n", 2, ["a\nb\n", "c\nd\n", "e\n"]),
        ("a\nb\nc", 2, ["a\nb\n", "c"]),
        ("a\nb\n", 5, ["a\nb\n"]),
        ("", 3, []),
        ("\n\n", 1, ["\n", "\n"]),
    ])
    func splitKeepsEveryByteInOrder(input: String, lines: Int, parts: [String]) {
        let split = ResultHandler.split(Data(input.utf8), lines: lines)
        #expect(split.map { String(decoding: $0, as: UTF8.self) } == parts)
        #expect(split.reduce(Data(), +) == Data(input.utf8))
    }
}
