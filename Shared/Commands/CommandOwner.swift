import CPlatform
import Foundation
import Glibc
import Synchronization

/// Which service started a command: every command a Baton service runs carries
/// `BATON_OWNER=<service>:<pid>:<absolute data dir>` in its environment, so that a restarted service can
/// find and kill the commands a dead predecessor (same service, same data directory) left running.
public enum CommandOwner {
    /// The environment variable holding the marker.
    public static let variable = "BATON_OWNER"

    private static let current = Mutex<String?>(nil)

    /// This process's marker, once ``register(service:dataDirectory:)`` was called.
    public static var marker: String? { current.withLock { $0 } }

    /// Makes every command this process starts from now on carry the marker.
    public static func register(service: String, dataDirectory: String) {
        current.withLock { $0 = "\(service):\(getpid()):\(absolute(dataDirectory))" }
    }

    /// A data directory as an absolute, standardized path.
    public static func absolute(_ path: String) -> String {
        let full = path.hasPrefix("/") ? path : (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(path)
        return (full as NSString).standardizingPath
    }

    /// A process that still runs a command of a dead owner.
    public struct Leftover: Sendable, Equatable {
        /// The process.
        public var pid: Int32
        /// Its process group.
        public var group: Int32
        /// The pid of the service that started it.
        public var owner: Int32
        /// Its command line.
        public var commandLine: String
    }

    /// Processes carrying a marker of `service` for `dataDirectory` whose owner is not alive (or is this
    /// process, which has started nothing yet: a predecessor had the same pid). Commands of a live owner
    /// (another processor sharing the data directory) are never included.
    public static func leftovers(service: String, dataDirectory: String) -> [Leftover] {
        let directory = absolute(dataDirectory)
        let me = getpid()
        var found: [Leftover] = []
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry), pid != me,
                let data = FileManager.default.contents(atPath: "/proc/\(entry)/environ")
            else { continue }
            let prefix = Array("\(variable)=\(service):".utf8)
            for field in data.split(separator: 0, omittingEmptySubsequences: true) where field.starts(with: prefix) {
                let rest = String(decoding: field.dropFirst(prefix.count), as: UTF8.self)
                guard let colon = rest.firstIndex(of: ":"), let owner = Int32(rest[..<colon]),
                    String(rest[rest.index(after: colon)...]) == directory
                else { continue }
                if owner != me && isAlive(owner) { continue }
                let command =
                    FileManager.default.contents(atPath: "/proc/\(entry)/cmdline")
                    .map { String(decoding: $0.map { $0 == 0 ? 32 : $0 }, as: UTF8.self) } ?? "?"
                found.append(Leftover(pid: pid, group: getpgid(pid), owner: owner, commandLine: command))
            }
        }
        return found
    }

    /// Whether process `pid` exists and has not ended. A zombie (ended, not yet reaped by its parent, which a
    /// loaded or careless supervisor may leave for a long time) has ended: its commands are leftovers.
    public static func isAlive(_ pid: Int32) -> Bool {
        guard kill(pid, 0) == 0 || errno != ESRCH else { return false }
        guard let stat = FileManager.default.contents(atPath: "/proc/\(pid)/stat"), let close = stat.lastIndex(of: UInt8(ascii: ")")),
            close + 2 < stat.count
        else { return true }
        return stat[close + 2] != UInt8(ascii: "Z")
    }

    /// Kills (SIGKILL) the process groups of the leftovers of a dead predecessor and returns what was killed.
    /// Never signals this process's own group.
    @discardableResult
    public static func killLeftovers(service: String, dataDirectory: String) -> [Leftover] {
        let found = leftovers(service: service, dataDirectory: dataDirectory)
        // A whole group only when its leader is a leftover too (a command or its guard, each a group leader):
        // never a group that merely contains one, such as a shell's or this process's.
        let leaders = Set(found.map(\.pid))
        for leftover in found {
            if leftover.group > 1 && leftover.group != getpgrp() && leaders.contains(leftover.group) { kill(-leftover.group, SIGKILL) }
            kill(leftover.pid, SIGKILL)
        }
        return found
    }
}

/// A pipe whose two ends are close-on-exec from the start (atomically: no child spawned meanwhile by
/// another thread inherits them). Used as a lifeline: the holder of the write end dies → the reader sees EOF.
public enum LifelinePipe {
    /// Creates the pipe.
    public static func make() throws -> (read: Int32, write: Int32) {
        var ends: [Int32] = [-1, -1]
        guard baton_pipe_cloexec(&ends) == 0 else { throw CommandError("cannot create a pipe: \(String(cString: strerror(errno)))") }
        return (ends[0], ends[1])
    }
}
