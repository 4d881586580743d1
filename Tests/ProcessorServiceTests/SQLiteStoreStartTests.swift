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
