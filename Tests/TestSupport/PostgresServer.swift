public import Foundation
import Subprocess
import SystemPackage

/// A real PostgreSQL server for tests: its own cluster (`initdb`) in a temporary directory, listening on
/// 127.0.0.1 at a free port and on a unix socket in that directory, with `trust` authentication for the user
/// `postgres`. Run as the `postgres` user when the tests run as root (CI), as the current user otherwise.
///
/// ```swift
/// let server = try await PostgresServer.shared()          // one per test process, removed at exit
/// let url = try await server.createDatabase()               // a fresh database per test
/// // an outage test starts its own:
/// let own = try await PostgresServer.start(); defer { own.remove() }
/// try own.kill9(); try await own.start()
/// ```
///
/// Everything is removed by ``remove()`` (also when the object goes away, and for ``shared()`` at exit), and a
/// directory a crashed earlier run left (its owner process dead) is swept, its server stopped, when the next
/// server starts. ``isInstalled`` says whether the binaries are there (`scripts/install-deps.sh --test`
/// installs them).
public final class PostgresServer: Sendable {
    /// The temporary directory: `data` (the cluster), `server.log`, the socket, `owner` (the test process's pid).
    public let directory: String
    /// The TCP port on 127.0.0.1.
    public let port: Int
    private let bin: String
    /// The address it listens on: 127.0.0.1, or a test host's (``TestHosts``).
    public let address: String
    /// The command line its programs run behind (e.g. `ip netns exec NS`, to run it on a test host).
    private let wrapper: [String]

    private static let prefix = "bt-pg-"

    /// The newest installed version's `bin` directory (`/usr/lib/postgresql/<version>/bin`), if any.
    public static var binDirectory: String? {
        let root = "/usr/lib/postgresql"
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        return versions.compactMap { Int($0) }.sorted().reversed().map { "\(root)/\($0)/bin" }
            .first { FileManager.default.isExecutableFile(atPath: "\($0)/initdb") }
    }

    /// Whether PostgreSQL's server binaries are installed.
    public static var isInstalled: Bool { binDirectory != nil }

    /// The test process's one server, started at the first call and removed when the process exits.
    public static func shared() async throws -> PostgresServer {
        try await sharedServer.value
    }

    private static let sharedServer = Task {
        let server = try await PostgresServer.start()
        sharedDirectory.withLock { $0 = server.directory }
        atexit {
            sharedDirectory.withLock { directory in
                if let directory { PostgresServer.removeSynchronously(directory) }
            }
        }
        return server
    }
    private static let sharedDirectory = LockedValue<String?>(nil)

    /// Makes a cluster in a new temporary directory and starts its server.
    /// - Parameters:
    ///   - wrapper: A command line to run its programs behind, e.g. ``TestHosts/command(on:_:)`` of a host.
    ///   - address: The address to listen on (that host's).
    public static func start(wrapper: [String] = [], address: String = "127.0.0.1") async throws -> PostgresServer {
        guard let bin = binDirectory else {
            throw ServerError("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): run scripts/install-deps.sh --test")
        }
        sweepStale()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(prefix + UUID().uuidString.prefix(8)).path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Data("\(getpid())\n".utf8).write(to: URL(fileURLWithPath: directory + "/owner"))
        let server = PostgresServer(directory: directory, port: try freePort(), bin: bin, wrapper: wrapper, address: address)
        do {
            if getuid() == 0 { try chownToPostgres(directory) }
            try await server.tool(
                "initdb",
                ["-D", server.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"]
            )
            if address != "127.0.0.1" {
                // Clients on the other test hosts: initdb trusts only loopback.
                let hba = try FileHandle(forWritingTo: URL(fileURLWithPath: server.data + "/pg_hba.conf"))
                try hba.seekToEnd()
                try hba.write(contentsOf: Data("host all all \(address)/24 trust\n".utf8))
                try hba.close()
            }
            try await server.start()
        } catch {
            server.remove()
            throw error
        }
        return server
    }

    private init(directory: String, port: Int, bin: String, wrapper: [String] = [], address: String = "127.0.0.1") {
        self.wrapper = wrapper
        self.address = address
        self.directory = directory
        self.port = port
        self.bin = bin
    }

    deinit { remove() }

    private var data: String { directory + "/data" }

    /// `postgresql://postgres@127.0.0.1:PORT/DATABASE`.
    public func url(database: String = "postgres") -> String { "postgresql://postgres@\(address):\(port)/\(database)" }

    /// The same database through the unix socket: `postgresql://postgres@/DATABASE?host=DIR&port=PORT`.
    public func socketURL(database: String = "postgres") -> String {
        "postgresql://postgres@/\(database)?host=\(directory)&port=\(port)"
    }

    /// Creates a database with a fresh name and returns its TCP URL.
    public func createDatabase() async throws -> String {
        let name = "t_" + UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: "")
        try await tool("createdb", ["-h", directory, "-p", "\(port)", "-U", "postgres", name])
        return url(database: name)
    }

    /// Starts the server (again), waiting until it accepts connections. After ``kill9()`` the old server's
    /// backends may take a moment to notice their postmaster is gone: starting is retried meanwhile.
    public func start() async throws {
        let options = "-p \(port) -k \(directory) -c listen_addresses=\(address) -c fsync=off -c max_connections=200"
        var attempt = 0
        while true {
            do {
                try await tool("pg_ctl", ["-D", data, "-l", directory + "/server.log", "-w", "-t", "60", "-o", options, "start"])
                return
            } catch  where attempt < 20 {
                attempt += 1
                try await Task.sleep(for: .milliseconds(250))
            }
        }
    }

    /// Stops the server: `immediate` aborts every session at once (crash recovery at the next start), else a fast
    /// shutdown (sessions are ended, the server checkpoints).
    public func stop(immediate: Bool = false) async throws {
        try await tool("pg_ctl", ["-D", data, "-m", immediate ? "immediate" : "fast", "-w", "stop"])
    }

    /// Kills the server with SIGKILL, as a crash of its host would: the postmaster and every process it started
    /// (each backend is a session of its own, so not by process group). Killing the postmaster alone leaves its
    /// backends serving their connections and holding the shared memory a new postmaster needs.
    public func kill9() throws {
        guard let pid = Self.postmasterPID(directory) else { throw ServerError("no postmaster.pid in \(data)") }
        let children = Self.children(of: pid)
        guard kill(pid, SIGKILL) == 0 else { throw ServerError("kill -9 \(pid): errno \(errno)") }
        for child in children { kill(child, SIGKILL) }
    }

    private static func children(of parent: pid_t) -> [pid_t] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { entry -> pid_t? in
            guard let pid = pid_t(entry), let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return nil }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 1 && pid_t(fields[1]) == parent ? pid : nil
        }
    }

    /// Stops the server at once and removes its directory. Idempotent.
    public func remove() { Self.removeSynchronously(directory) }

    /// Removes directories earlier test processes left (their owner gone), stopping their servers.
    public static func sweepStale() {
        let temporary = FileManager.default.temporaryDirectory.path
        for name in (try? FileManager.default.contentsOfDirectory(atPath: temporary)) ?? [] where name.hasPrefix(prefix) {
            let directory = temporary + "/" + name
            let owner = (try? String(contentsOfFile: directory + "/owner", encoding: .utf8)).flatMap {
                Int32($0.trimmingCharacters(in: .whitespacesAndNewlines))
            }
            if let owner, kill(owner, 0) == 0 || errno == EPERM { continue }
            removeSynchronously(directory)
        }
    }

    /// SIGQUIT (immediate shutdown, which also frees its shared memory) and a short wait, then the directory.
    /// Synchronous and without `pg_ctl`: it runs at process exit and in `deinit`.
    private static func removeSynchronously(_ directory: String) {
        if let pid = postmasterPID(directory), kill(pid, SIGQUIT) == 0 {
            for _ in 0..<100 where kill(pid, 0) == 0 { usleep(20_000) }
            if kill(pid, 0) == 0 { kill(pid, SIGKILL) }
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    private static func postmasterPID(_ directory: String) -> pid_t? {
        let text = try? String(contentsOfFile: directory + "/data/postmaster.pid", encoding: .utf8)
        return text?.split(separator: "\n").first.flatMap { pid_t($0.trimmingCharacters(in: .whitespaces)) }
    }

    /// Runs one of the server's programs (as `postgres` under root), its output into `tool.log`. Through
    /// Subprocess, which closes every other descriptor in the child: `pg_ctl start` leaves the postmaster running,
    /// and a descriptor it inherited (Foundation's `Process` watches its child through one) would stay open.
    private func tool(_ name: String, _ arguments: [String]) async throws {
        var argv = ["\(bin)/\(name)"] + arguments
        if getuid() == 0 { argv = ["/usr/sbin/runuser", "-u", "postgres", "--"] + argv }
        argv = wrapper + argv
        let log = directory + "/tool.log"
        let fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ServerError("cannot open \(log): errno \(errno)") }
        let result = try await Subprocess.run(
            .path(FilePath(argv[0])),
            arguments: Arguments(Array(argv.dropFirst())),
            input: .none,
            output: .fileDescriptor(FileDescriptor(rawValue: fd), closeAfterSpawningProcess: true),
            error: .fileDescriptor(FileDescriptor(rawValue: dup(fd)), closeAfterSpawningProcess: true)
        )
        guard case .exited(0) = result.terminationStatus else {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            let serverLog = (try? String(contentsOfFile: directory + "/server.log", encoding: .utf8)) ?? ""
            throw ServerError("\(name) ended \(result.terminationStatus): \(text.suffix(800)) server.log: \(serverLog.suffix(800))")
        }
    }

    private static func chownToPostgres(_ directory: String) throws {
        guard let user = getpwnam("postgres") else { throw ServerError("running as root, but there is no postgres user") }
        guard chown(directory, user.pointee.pw_uid, user.pointee.pw_gid) == 0 else {
            throw ServerError("chown \(directory): errno \(errno)")
        }
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: directory)
    }

    /// A port nothing listens on now: the kernel's choice for a socket bound to port 0.
    private static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ServerError("socket: errno \(errno)") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                bind(fd, raw, length) == 0 && getsockname(fd, raw, &length) == 0
            }
        }
        guard bound else { throw ServerError("bind: errno \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// A failure to run the test server, with the tool's output.
    public struct ServerError: Error, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }
}

/// A value behind a lock, for the shared server's directory (read at exit).
final class LockedValue<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func withLock<T>(_ body: (inout Value) -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body(&value)
    }
}
