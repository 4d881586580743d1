import Foundation
import Glibc
import Messaging

/// The layout and sealing of raw result files under `<data_dir>/raw/<job>/`.
///
/// A run writes to `<run id>.partial`; once it succeeded the file is fsynced, renamed to `<run id>.result`
/// and the directory fsynced, so a `.result` file is always complete, and its checksum is recorded.
public enum RawResults {
    /// The directory of a job's raw results.
    public static func directory(dataDirectory: String, job: String) -> String {
        (dataDirectory as NSString).appendingPathComponent("raw/\(job)")
    }

    /// The final path of a run's raw result.
    public static func resultPath(dataDirectory: String, job: String, runID: String) -> String {
        (directory(dataDirectory: dataDirectory, job: job) as NSString).appendingPathComponent("\(runID).result")
    }

    /// The path a run writes to before it is sealed.
    public static func partialPath(dataDirectory: String, job: String, runID: String) -> String {
        (directory(dataDirectory: dataDirectory, job: job) as NSString).appendingPathComponent("\(runID).partial")
    }

    /// Size and checksum of a sealed file.
    public struct Seal: Sendable, Equatable {
        /// Bytes.
        public var size: Int
        /// SHA-256, hex.
        public var sha256: String
    }

    /// Makes a finished partial file durable under its final name and returns its size and checksum.
    /// - Parameters:
    ///   - partial: The file the run wrote.
    ///   - final: Its final name.
    public static func seal(partial: String, final: String) throws -> Seal {
        let seal = try checksum(path: partial)
        try fsync(path: partial)
        if rename(partial, final) != 0 {
            throw StorageError("cannot rename \(partial) to \(final)", errno: errno)
        }
        try fsync(path: (final as NSString).deletingLastPathComponent)
        return seal
    }

    /// Reads a file through SHA-256 in 1 MiB blocks.
    public static func checksum(path: String) throws -> Seal {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw StorageError("cannot open \(path)", errno: errno)
        }
        defer { try? handle.close() }
        var digest = SHA256()
        var size = 0
        while let block = try handle.read(upToCount: 1 << 20), !block.isEmpty {
            digest.update(block)
            size += block.count
        }
        return Seal(size: size, sha256: digest.hexDigest())
    }

    /// Flushes a file or directory to stable storage.
    public static func fsync(path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw StorageError("cannot open \(path) to sync it", errno: errno) }
        defer { close(fd) }
        guard Glibc.fsync(fd) == 0 else { throw StorageError("cannot sync \(path)", errno: errno) }
    }
}

/// A storage failure with the system's reason.
public struct StorageError: Error, Sendable, CustomStringConvertible {
    /// What failed.
    public var message: String
    /// The C errno, if a system call failed.
    public var code: Int32?

    /// Creates an error.
    public init(_ message: String, errno code: Int32? = nil) {
        self.message = message
        self.code = code
    }

    public var description: String {
        guard let code else { return message }
        return "\(message): \(String(cString: strerror(code)))"
    }
}
