public import Foundation
public import Messaging

/// Appends status events to a JSON-lines file, one event per line, exactly as they were published, and
/// rotates it by size: `events.jsonl` → `events.1.jsonl` → … → `events.<keep>.jsonl`, the oldest deleted.
public final class EventLogWriter {
    /// The file written.
    public let path: String
    /// Rotate once the file reaches this many bytes.
    public let maxBytes: Int64
    /// How many rotated files to keep.
    public let keep: Int
    private var handle: FileHandle
    private var size: Int64

    /// Opens (creating if needed) the log file for appending.
    /// - Parameters:
    ///   - path: The file.
    ///   - maxBytes: Size at which the file is rotated.
    ///   - keep: Rotated files kept.
    public init(path: String, maxBytes: Int64 = 64 << 20, keep: Int = 5) throws {
        let directory = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        self.path = path
        self.maxBytes = max(maxBytes, 1024)
        self.keep = max(keep, 0)
        (handle, size) = try Self.open(path)
    }

    deinit { try? handle.close() }

    /// The rotated file with index `index` (1 is the newest) for a log path.
    public static func rotated(_ path: String, _ index: Int) -> String {
        let base = (path as NSString).deletingPathExtension
        let ext = (path as NSString).pathExtension
        return "\(base).\(index).\(ext)"
    }

    /// Every file of a log, oldest first: the rotated ones that exist, then the current one.
    public static func files(_ path: String, keep: Int = 100) -> [String] {
        let older = (1...max(keep, 1)).map { Self.rotated(path, $0) }.filter { FileManager.default.fileExists(atPath: $0) }
        return older.reversed() + (FileManager.default.fileExists(atPath: path) ? [path] : [])
    }

    private static func open(_ path: String) throws -> (FileHandle, Int64) {
        if !FileManager.default.fileExists(atPath: path) {
            _ = FileManager.default.createFile(atPath: path, contents: nil)
        }
        guard let handle = FileHandle(forWritingAtPath: path) else {
            throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: path])
        }
        let size = try handle.seekToEnd()
        return (handle, Int64(size))
    }

    /// Appends one event as a line of JSON, rotating first if the file is full.
    public func append(_ event: StatusEvent) throws {
        try append(json: event.jsonLine)
    }

    /// Appends an event's JSON as it came off the bus (its third frame, already checked to decode as an
    /// event), without encoding it again.
    public func append(json: Data) throws {
        var line = json
        line.append(0x0A)
        if size > 0 && size + Int64(line.count) > maxBytes { try rotate() }
        do {
            try handle.write(contentsOf: line)
        } catch {
            // A write cut short (disk full, file size limit) must not leave half a line for the next one to
            // follow: cut the file back to its last whole line.
            try? handle.truncate(atOffset: UInt64(size))
            throw error
        }
        size += Int64(line.count)
    }

    private func rotate() throws {
        try handle.close()
        let manager = FileManager.default
        if keep == 0 {
            try manager.removeItem(atPath: path)
        } else {
            try? manager.removeItem(atPath: Self.rotated(path, keep))
            for index in stride(from: keep - 1, through: 1, by: -1) where manager.fileExists(atPath: Self.rotated(path, index)) {
                try manager.moveItem(atPath: Self.rotated(path, index), toPath: Self.rotated(path, index + 1))
            }
            try manager.moveItem(atPath: path, toPath: Self.rotated(path, 1))
        }
        (handle, size) = try Self.open(path)
    }
}
