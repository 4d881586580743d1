import AlgorithmService
import Foundation
import Logging
import Messaging
import Config
import Testing

struct RetentionSweeperTests {
    /// Only acknowledged raw results are deleted: by age, then oldest first while over the size limit.
    @Test func deletesOnlyAcknowledgedResultsByAgeAndSize() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("bt-retention-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let outbox = try await Outbox(path: directory + "/outbox.sqlite")
        let start = Date(timeIntervalSince1970: 1_000_000)
        var paths: [String] = []
        for index in 0..<4 {
            let payload = Data(repeating: UInt8(index), count: 100)
            let path = directory + "/r\(index).result"
            try payload.write(to: URL(fileURLWithPath: path))
            paths.append(path)
            let header = ResultHeader(
                runID: "j@\(index)",
                job: "j",
                logicalTime: start,
                size: payload.count,
                sha256: SHA256.hex(of: payload)
            )
            try await outbox.add(.init(header: header, path: path))
            // r0 acked 10 days ago, r1 and r2 acked recently, r3 never acknowledged.
            if index < 3 {
                try await outbox.markAcked(runID: "j@\(index)", part: 0, now: index == 0 ? start : start + 9 * 86_400)
            }
        }
        var configuration = Configuration()
        configuration.retention.maxAge = .seconds(5 * 86_400)
        configuration.retention.maxBytes = 150
        let sweeper = RetentionSweeper(configuration: configuration, outbox: outbox, logger: Logger(label: "test"))
        let removed = try await sweeper.sweep(now: start + 10 * 86_400)
        // r0 is too old; then r1 goes to bring the acknowledged total (200 bytes) under 150; r3 is kept unacknowledged.
        #expect(removed == 2)
        #expect(paths.map { FileManager.default.fileExists(atPath: $0) } == [false, false, true, true])
        // The files removed are not looked at again: the next sweep lists only r2 (r3 is not acknowledged), and a
        // file someone else deleted is listed once more, then no longer.
        #expect(try await outbox.acknowledgedFiles().map(\.path) == [paths[2]])
        try FileManager.default.removeItem(atPath: paths[2])
        #expect(try await sweeper.sweep(now: start + 10 * 86_400) == 0)
        #expect(try await outbox.acknowledgedFiles().isEmpty)
    }
}
