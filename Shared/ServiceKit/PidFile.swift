import Foundation
import Glibc

/// A pid file under `<data_dir>/run/`, held with `flock` for as long as its process runs: the lock, not the
/// file's existence, says whether its owner is alive (the kernel drops it however the process ends).
/// Contents: `pid=<pid>`, `program=<name>` and, under a supervisor, `supervisor=<pid>`, one a line.
public enum PidFile {
    /// What a pid file says.
    public struct Info: Sendable, Equatable {
        public var pid: Int32
        public var program: String
        public var supervisor: Int32?
    }

    /// Another live process holds the file.
    public struct Held: Error, Sendable, CustomStringConvertible {
        public var path: String
        public var info: Info?
        public var description: String {
            "\(info.map { "\($0.program) (pid \($0.pid))" } ?? "another process") holds \(path)"
        }
    }

    /// The directory of a data directory's pid files.
    public static func directory(dataDirectory: String) -> String {
        (dataDirectory as NSString).appendingPathComponent("run")
    }

    /// The pid file of one service instance, e.g. `algorithm` or `processor-2`.
    public static func path(dataDirectory: String, name: String) -> String {
        let safe = String(name.map { $0 == "/" ? "_" : $0 })
        return (directory(dataDirectory: dataDirectory) as NSString).appendingPathComponent("\(safe).pid")
    }

    /// Takes the file for this process and writes its pid; the returned descriptor must stay open (it holds
    /// the lock; close-on-exec, so no child inherits it).
    /// - Throws: ``Held`` when a live process holds it; another error when it cannot be created.
    public static func acquire(path: String, program: String, supervisor: Int32?) throws -> Int32 {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        var fd: Int32 = -1
        for _ in 0..<10 {
            fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw PidFileError("cannot open \(path): \(String(cString: strerror(errno)))") }
            guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
                close(fd)
                throw Held(path: path, info: read(path: path))
            }
            // `baton up` removes pid files nobody holds: make sure the locked file is still the one named `path`.
            var locked = stat()
            var named = stat()
            if fstat(fd, &locked) == 0, stat(path, &named) == 0, locked.st_ino == named.st_ino, locked.st_dev == named.st_dev { break }
            close(fd)
            fd = -1
        }
        guard fd >= 0 else { throw PidFileError("cannot hold \(path): it keeps being removed") }
        var text = "pid=\(getpid())\nprogram=\(program)\n"
        if let supervisor { text += "supervisor=\(supervisor)\n" }
        _ = ftruncate(fd, 0)
        _ = Array(text.utf8).withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        return fd
    }

    /// Whether a live process holds the file.
    public static func isHeld(path: String) -> Bool {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK
    }

    /// Reads what a pid file says.
    public static func read(path: String) -> Info? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        var values: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { values[String(parts[0])] = String(parts[1]) }
        }
        guard let pid = values["pid"].flatMap({ Int32($0) }) else { return nil }
        return Info(pid: pid, program: values["program"] ?? "?", supervisor: values["supervisor"].flatMap { Int32($0) })
    }
}

/// A pid file that cannot be created.
public struct PidFileError: Error, Sendable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
