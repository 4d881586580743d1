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
        try lines.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        #expect(Supervisor.lastError(of: path) == lines[2])
        try lines[0].write(toFile: path, atomically: true, encoding: .utf8)
        #expect(Supervisor.lastError(of: path) == nil)
        #expect(Supervisor.lastError(of: path + ".missing") == nil)
    }
}
