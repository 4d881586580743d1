public import Foundation
import Glibc
import Messaging
import Persistence

/// The layout and sealing of raw result files under `<data_dir>/raw/<job>/`.
///
/// Each attempt of a run writes to a file of its own, `<run id>.<attempt>-<random>.partial`, so that a
/// leftover of an earlier attempt (or of a killed algorithm) can never write into the file of the one being
/// sealed; once it succeeded the file is hashed and fsynced through one open descriptor, renamed to
/// `<run id>.result` and the directory fsynced, so a `.result` file is always complete, and its checksum is
/// recorded. Partial files are only ever left by dead attempts: the algorithm removes them at start-up.
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

    /// The path one attempt of a run writes to before it is sealed: unique per attempt, even across restarts.
    public static func partialPath(dataDirectory: String, job: String, runID: String, attempt: Int) -> String {
        let token = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        return (directory(dataDirectory: dataDirectory, job: job) as NSString).appendingPathComponent(
            "\(runID).\(attempt)-\(token).partial"
        )
    }

    /// The directory an attempt writes its parts into (`BATON_OUTPUT_DIR`): next to its partial file, removed
    /// with the partial files of dead attempts.
    public static func outputDirectory(partial: String) -> String {
        String(partial.dropLast(".partial".count)) + ".parts.partial"
    }

    /// The final path of part `part` of a run written as several files.
    public static func partPath(final: String, part: Int) -> String {
        String(final.dropLast(".result".count)) + ".part\(part).result"
    }

    /// The regular files in an output directory, in byte order of their names (none if it does not exist).
    /// Anything else in it (a directory, a link) is refused: a part is a file the algorithm wrote.
    public static func outputFiles(in directory: String) throws -> [String] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        return try names.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }.map { name in
            let path = (directory as NSString).appendingPathComponent(name)
            var status = stat()
            guard lstat(path, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else {
                throw StorageError("\(path) in $BATON_OUTPUT_DIR is not a regular file: each part is a file")
            }
            return path
        }
    }

    /// Where a run's stage outputs are kept: `<data_dir>/raw/<job>/<run id>.stages/`.
    public static func stageDirectory(dataDirectory: String, job: String, runID: String) -> String {
        (directory(dataDirectory: dataDirectory, job: job) as NSString).appendingPathComponent("\(runID).stages")
    }

    /// Writes each of `contents` to its path (created new), fsyncs each file and then the directory.
    static func write(_ contents: [Data], to paths: [String], in directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for (data, path) in zip(contents, paths) {
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw StorageError("cannot create \(path)", errno: errno) }
            defer { close(fd) }
            var written = 0
            while written < data.count {
                let got = data.withUnsafeBytes { Glibc.write(fd, $0.baseAddress.map { $0 + written }, data.count - written) }
                if got < 0 {
                    if errno == EINTR { continue }
                    throw StorageError("cannot write \(path)", errno: errno)
                }
                written += got
            }
            guard Glibc.fsync(fd) == 0 else { throw StorageError("cannot sync \(path)", errno: errno) }
        }
        try fsync(path: directory)
    }

    /// Removes an attempt's partial file and its output directory.
    public static func remove(partial: String) {
        try? FileManager.default.removeItem(atPath: partial)
        try? FileManager.default.removeItem(atPath: outputDirectory(partial: partial))
    }

    /// Removes every `.partial` file under `<data_dir>/raw/`: call it only when no attempt is running (at the
    /// algorithm's start-up, after leftovers were killed). Returns the removed paths.
    @discardableResult
    public static func removePartials(dataDirectory: String) -> [String] {
        let raw = (dataDirectory as NSString).appendingPathComponent("raw")
        var removed: [String] = []
        for job in (try? FileManager.default.contentsOfDirectory(atPath: raw)) ?? [] {
            let folder = (raw as NSString).appendingPathComponent(job)
            for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] where name.hasSuffix(".partial") {
                let path = (folder as NSString).appendingPathComponent(name)
                if (try? FileManager.default.removeItem(atPath: path)) != nil { removed.append(path) }
            }
        }
        return removed
    }

    /// Size and checksum of a sealed file.
    public struct Seal: Sendable, Equatable {
        /// Bytes.
        public var size: Int
        /// SHA-256, hex.
        public var sha256: String
        /// The bytes themselves, when the file was no larger than the `keep` asked for: what was hashed, kept so
        /// that the sender need not read the file back (the hand-off's fast path).
        public var bytes: Data?
    }

    /// Results up to this size are kept in memory from sealing to sending (``Seal/bytes``).
    public static let keptInMemory = 64 * 1024

    /// Makes a finished partial file durable under its final name and returns its size and checksum.
    /// - Parameters:
    ///   - partial: The file the run wrote.
    ///   - final: Its final name.
    ///
    /// The checksum is of exactly the bytes renamed into place: the file is hashed and fsynced through one
    /// descriptor, and after the rename the final name must be that same file, still of the hashed size.
    public static func seal(partial: String, final: String, keep: Int = 0) throws -> Seal {
        // Sized to the file, up to 1 MiB: a small result costs no 1 MiB allocation and clearing (seen in profiles of
        // many small hand-offs).
        var status = stat()
        let expected = stat(partial, &status) == 0 ? Int(status.st_size) : 1 << 20
        var buffer = [UInt8](repeating: 0, count: min(1 << 20, max(4096, expected + 1)))
        return try seal(partial: partial, final: final, keep: keep, buffer: &buffer, sync: true)
    }

    /// Seals one file with `buffer` for reading; with `sync` false the caller makes the file and its rename durable.
    private static func seal(partial: String, final: String, keep: Int, buffer: inout [UInt8], sync: Bool) throws -> Seal {
        let fd = open(partial, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw StorageError("cannot open \(partial)", errno: errno) }
        defer { close(fd) }
        var digest = SHA256()
        var size = 0
        var kept: Data? = keep > 0 ? Data() : nil
        while true {
            let got = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if got < 0 {
                if errno == EINTR { continue }
                throw StorageError("cannot read \(partial)", errno: errno)
            }
            if got == 0 { break }
            buffer.withUnsafeBytes { digest.update(UnsafeRawBufferPointer(rebasing: $0.prefix(got))) }
            size += got
            if size > keep { kept = nil } else { kept?.append(contentsOf: buffer.prefix(got)) }
        }
        if sync { guard Glibc.fsync(fd) == 0 else { throw StorageError("cannot sync \(partial)", errno: errno) } }
        var opened = stat()
        guard fstat(fd, &opened) == 0 else { throw StorageError("cannot stat \(partial)", errno: errno) }
        guard Int(opened.st_size) == size else {
            throw StorageError(
                "\(partial) changed while it was sealed (\(size) bytes hashed, now \(opened.st_size)): is a writer still running?"
            )
        }
        if rename(partial, final) != 0 {
            throw StorageError("cannot rename \(partial) to \(final)", errno: errno)
        }
        var placed = stat()
        guard stat(final, &placed) == 0, placed.st_ino == opened.st_ino, placed.st_dev == opened.st_dev, Int(placed.st_size) == size else {
            throw StorageError("\(final) is not the file that was hashed, or changed size after sealing")
        }
        if sync { try fsync(path: (final as NSString).deletingLastPathComponent) }
        return Seal(size: size, sha256: digest.hexDigest(), bytes: kept)
    }

    /// Seals many parts of one run at once: each file hashed and renamed to its target as ``seal(partial:final:keep:)``
    /// does, then one `syncfs` of the file system holding them instead of two `fsync`s per part (a run of many
    /// small parts spent most of its hand-off in them). What `syncfs` makes durable is a superset of what the
    /// `fsync`s did: every file's data and every rename, before the outbox commit that refers to them. One read
    /// buffer serves all parts.
    /// - Parameters:
    ///   - files: The files the run wrote, in part order.
    ///   - finals: Their final names, one per file, all on one file system.
    ///   - keep: Parts up to this size are returned with their bytes…
    ///   - keepFirst: …of the first this many parts.
    public static func sealAll(files: [String], finals: [String], keep: Int = 0, keepFirst: Int = .max) throws -> [Seal] {
        precondition(files.count == finals.count, "one final name per file")
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        var seals: [Seal] = []
        seals.reserveCapacity(files.count)
        for (index, (partial, final)) in zip(files, finals).enumerated() {
            seals.append(try seal(partial: partial, final: final, keep: index < keepFirst ? keep : 0, buffer: &buffer, sync: false))
        }
        guard let first = finals.first else { return seals }
        let directory = (first as NSString).deletingLastPathComponent
        let fd = open(directory, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw StorageError("cannot open \(directory) to sync it", errno: errno) }
        defer { close(fd) }
        guard c_syncfs(fd) == 0 else { throw StorageError("cannot sync the file system of \(directory)", errno: errno) }
        return seals
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

/// glibc's `syncfs(2)`, which its headers declare only under `_GNU_SOURCE` (not seen by the Glibc module).
@_silgen_name("syncfs")
private func c_syncfs(_ fd: Int32) -> Int32
