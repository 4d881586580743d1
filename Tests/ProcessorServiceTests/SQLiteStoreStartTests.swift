import Foundation
import ProcessorService
import Testing
import TestSupport

/// Processors starting together on one store file: every one opens it (one of them creates and migrates it,
/// the others find it made), none fails at start. (The fuzz suite once lost a processor to "duplicate column
/// name: stage": two migrators had both read that the last migration was not applied.)
struct SQLiteStoreStartTests {
    @Test(.timeLimit(.minutes(2)))
    func processorsStartingTogetherAllOpenTheStore() async throws {
        let scratch = Scratch("store-start")
        defer { scratch.remove() }
        for round in 0..<100 {
            let path = scratch.directory + "/results-\(round).sqlite"
            let opened = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<8 { group.addTask { try await ResultStore(path: path).resultCount() } }
                return try await group.reduce(0) { $0 + 1 + $1 }
            }
            #expect(opened == 8)
        }
    }
}

/// A part larger than one SQLite value may be (10⁹ bytes; lowered here so the test needs no gigabyte) is refused
/// with a clear error before anything is written, and the processor reports it as a permanent failure, once,
/// instead of dying on it (GRDB stops the process on SQLite's "string or blob too big").
struct TooLargeForTheStoreTests {
    @Test(.timeLimit(.minutes(1)))
    func aPartOverTheValueLimitIsRefusedAndNothingIsStored() async throws {
        let scratch = Scratch("too-large")
        defer { scratch.remove() }
        let store = try await ResultStore(path: scratch.directory + "/results.sqlite", valueLimit: 100)
        let blob = Data(repeating: 0xff, count: 101)
        let error = await #expect(throws: ResultStore.TooLarge.self) {
            try await store.store(Fixtures.header(blob), payload: blob, processor: "p")
        }
        #expect(error?.description.contains("over SQLite's limit of 100 bytes") == true, "\(String(describing: error))")
        let line = Data(("{\"a\":\"" + String(repeating: "x", count: 120) + "\"}\n{}\n").utf8)
        await #expect(throws: ResultStore.TooLarge.self) {
            try await store.store(Fixtures.header(line, run: "j@2"), payload: line, processor: "p")
        }
        #expect(try await store.resultCount() == 0)
        // Under the limit, stored as before.
        let small = Data(repeating: 0xfe, count: 100)
        #expect(try await store.store(Fixtures.header(small, run: "j@3"), payload: small, processor: "p") == .stored(records: 0))
    }
}
