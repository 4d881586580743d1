import Foundation
import AlgorithmService
import Messaging

import Testing

struct RawResultsTests {
    static func dataDirectory() throws -> String {
        let path = "/tmp/bt-raw-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path + "/raw/job", withIntermediateDirectories: true)
        return path
    }

    /// Every attempt gets a file of its own, so a leftover writer of one attempt never touches another's.
    @Test func eachAttemptWritesItsOwnPartialFile() throws {
        let data = try Self.dataDirectory()
        defer { try? FileManager.default.removeItem(atPath: data) }
        let first = RawResults.partialPath(dataDirectory: data, job: "job", runID: "job@t", attempt: 1)
        let again = RawResults.partialPath(dataDirectory: data, job: "job", runID: "job@t", attempt: 1)
        let second = RawResults.partialPath(dataDirectory: data, job: "job", runID: "job@t", attempt: 2)
        #expect(Set([first, again, second]).count == 3)
        #expect([first, again, second].allSatisfy { $0.hasSuffix(".partial") && $0.contains("/raw/job/job@t.") })
    }

    /// Sealing records the digest of exactly the bytes now under the final name.
    @Test func sealHashesWhatItRenames() throws {
        let data = try Self.dataDirectory()
        defer { try? FileManager.default.removeItem(atPath: data) }
        let partial = RawResults.partialPath(dataDirectory: data, job: "job", runID: "job@t", attempt: 1)
        let final = RawResults.resultPath(dataDirectory: data, job: "job", runID: "job@t")
        let bytes = Data((0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 * 7) })
        try bytes.write(to: URL(fileURLWithPath: partial))
        let seal = try RawResults.seal(partial: partial, final: final)
        #expect(!FileManager.default.fileExists(atPath: partial))
        #expect(seal.size == bytes.count)
        #expect(seal == (try RawResults.checksum(path: final)))
    }

    @Test func startUpRemovesThePartialFilesOfDeadAttempts() throws {
        let data = try Self.dataDirectory()
        defer { try? FileManager.default.removeItem(atPath: data) }
        let partial = RawResults.partialPath(dataDirectory: data, job: "job", runID: "job@t", attempt: 1)
        let final = RawResults.resultPath(dataDirectory: data, job: "job", runID: "job@u")
        try Data("x".utf8).write(to: URL(fileURLWithPath: partial))
        try Data("y".utf8).write(to: URL(fileURLWithPath: final))
        #expect(RawResults.removePartials(dataDirectory: data) == [partial])
        #expect(!FileManager.default.fileExists(atPath: partial))
        #expect(FileManager.default.fileExists(atPath: final))
    }
}
