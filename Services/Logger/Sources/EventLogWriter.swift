import Foundation
public import Messaging

/// Appends status events to a JSON-lines file, one event per line, exactly as they were published.
public struct EventLogWriter: ~Copyable {
    /// The file written.
    public let path: String
    private let handle: FileHandle

    /// Opens (creating if needed) the log file for appending.
    /// - Parameter path: The file.
    public init(path: String) throws {
        let directory = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        if !FileManager.default.fileExists(atPath: path) {
            _ = FileManager.default.createFile(atPath: path, contents: nil)
        }
        guard let handle = FileHandle(forWritingAtPath: path) else {
            throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: path])
        }
        try handle.seekToEnd()
        self.path = path
        self.handle = handle
    }

    deinit { try? handle.close() }

    /// Appends one event as a line of JSON.
    public func append(_ event: StatusEvent) throws {
        var line = event.jsonLine
        line.append(0x0A)
        try handle.write(contentsOf: line)
    }
}
