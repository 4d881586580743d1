import Foundation
import Testing

@testable import CLI

struct SupervisorTests {
    /// `supervisor.exited`'s `last_error` is the child's last warning or error line, never an info line
    /// written after it, and absent when the child wrote none.
    @Test func lastErrorIsTheLastWarningOrErrorLine() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("stderr-\(UUID().uuidString).log").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let lines = [
            "2026-11-30T10:00:00+0000 info baton.algorithm: instance=vm:1 [Runtime] started",
            "2026-11-30T10:00:01+0000 error baton.algorithm: path=/data [Storage] cannot open the outbox",
            "2026-11-30T10:00:02+0000 warning baton.algorithm: [Runtime] lost the bus",
            "2026-11-30T10:00:03+0000 info baton.algorithm: [Runtime] stopping",
            "",
        ]
        let exit = Date(timeIntervalSince1970: 1_796_032_805)  // 2026-11-30T10:00:05Z
        try lines.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        #expect(Supervisor.lastError(of: path, now: exit) == lines[2])
        try lines[0].write(toFile: path, atomically: true, encoding: .utf8)
        #expect(Supervisor.lastError(of: path, now: exit) == nil)
        #expect(Supervisor.lastError(of: path + ".missing", now: exit) == nil)
    }

    /// A service killed a while after an unrelated error (a task that failed a minute before) has no last error,
    /// and neither has a run of it whose lines all come before a restart.
    @Test func anOldErrorOrOneOfAnEarlierRunIsNotTheLastError() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("stderr-\(UUID().uuidString).log").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let earlier = "2026-11-30T10:00:01+0000 error baton.processor: [Processor] processing failed: boom\n"
        try earlier.write(toFile: path, atomically: true, encoding: .utf8)
        let exit = Date(timeIntervalSince1970: 1_796_032_801)  // 2026-11-30T10:00:01Z
        #expect(Supervisor.lastError(of: path, now: exit.addingTimeInterval(20)) != nil)
        #expect(Supervisor.lastError(of: path, now: exit.addingTimeInterval(60)) == nil)
        let restarted = UInt64(earlier.utf8.count)
        try (earlier + "2026-11-30T10:00:02+0000 info baton.processor: [Runtime] started\n").write(
            toFile: path,
            atomically: true,
            encoding: .utf8
        )
        #expect(Supervisor.lastError(of: path, since: restarted, now: exit.addingTimeInterval(5)) == nil)
    }
}
