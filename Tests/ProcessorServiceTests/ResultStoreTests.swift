import Foundation
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
