public import Foundation
public import Messaging

// Shared by the unit-test targets whose modules keep stores (algorithm, processor, scheduler).

/// Headers and requests for store tests.
public enum Fixtures {
    public static func header(_ payload: Data, run: String = "j@1", part: Int = 0) -> ResultHeader {
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

    public static func request(_ run: String, at seconds: Double = 60) -> RunRequest {
        RunRequest(
            runID: run,
            job: "j",
            logicalTime: Date(timeIntervalSince1970: seconds),
            firedAt: Date(timeIntervalSince1970: seconds),
            trigger: .schedule
        )
    }
}

/// A directory for one test's files, removed when the last reference to it goes away (or by ``remove()``).
public final class Scratch: Sendable {
    public let directory: String

    public init(_ name: String = "storage") {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("bt-\(name)-\(UUID().uuidString)").path
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    /// A path inside the directory.
    public func path(_ name: String) -> String { directory + "/" + name }

    public func remove() { try? FileManager.default.removeItem(atPath: directory) }

    deinit { remove() }
}
