import Foundation
import Messaging

/// Headers and requests for store tests.
enum Fixtures {
    static func header(_ payload: Data, run: String = "j@1", part: Int = 0) -> ResultHeader {
        ResultHeader(
            runID: run,
            job: "j",
            logicalTime: Date(timeIntervalSince1970: 60),
            part: part,
            parts: part + 1,
            size: payload.count,
            sha256: SHA256.hex(of: payload)
        )
    }

    static func request(_ run: String, at seconds: Double = 60) -> RunRequest {
        RunRequest(
            runID: run,
            job: "j",
            logicalTime: Date(timeIntervalSince1970: seconds),
            firedAt: Date(timeIntervalSince1970: seconds),
            trigger: .schedule
        )
    }
}

/// A directory for one test's files, removed when the test's suite instance goes away.
final class Scratch: Sendable {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("baton-storage-\(UUID().uuidString)").path

    /// A path inside the directory.
    func path(_ name: String) -> String { directory + "/" + name }

    deinit { try? FileManager.default.removeItem(atPath: directory) }
}
