import Foundation
import Glibc
import GRDB
import Testing

/// A Baton deployment for one test: its own directory, its own `ipc://` endpoints, real service processes.
///
/// Every process started through it is killed when the stack is stopped (and, since each gets
/// `BATON_SUPERVISOR_PID`, when the test runner itself dies).
final class TestStack: @unchecked Sendable {
    // `@unchecked`: `processes` is only touched under `lock`.
    let directory: String
    let configPath: String
    /// The data directory and endpoints part of the configuration.
    private let head: String
    private let lock = NSLock()
    private var processes: [String: Process] = [:]
    /// Its write end stays open in this process until the stack is torn down.
    private let lifeline = Pipe()

    /// Where the built executables are: `$BATON_BIN_DIR`, else beside the test bundle (`.build/debug`).
    static let binaries: String = {
        if let directory = ProcessInfo.processInfo.environment["BATON_BIN_DIR"] { return directory }
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL
        var directory = bundle.deletingLastPathComponent()
        while directory.path != "/" {
            if FileManager.default.isExecutableFile(atPath: directory.appendingPathComponent("baton").path) { return directory.path }
            directory = directory.deletingLastPathComponent()
        }
        return URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(".build/debug").path
    }()

    /// The repository root (for `examples/`).
    static let repository: String = {
        var directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while directory.path != "/" {
            if FileManager.default.fileExists(atPath: directory.appendingPathComponent("Package.swift").path) { return directory.path }
            directory = directory.deletingLastPathComponent()
        }
        return FileManager.default.currentDirectoryPath
    }()

    /// Creates a stack directory and writes its configuration.
    /// - Parameters:
    ///   - name: A label for the directory.
    ///   - body: YAML added after the data directory and endpoints (jobs, processor settings).
    ///   - metricsPorts: The first of four consecutive HTTP ports for the logger, scheduler, algorithm and
    ///     processor `/metrics`; without it no service serves metrics (so parallel stacks never collide).
    ///   - tcpPorts: The first of nine consecutive ports for `tcp://127.0.0.1` endpoints (with CURVE, as by
    ///     default); without it the endpoints are `ipc://` files in the stack's directory.
    ///   - tcpAddress: The address of the `tcp://` endpoints instead of 127.0.0.1 (a test host's, ``TestHosts``).
    init(_ name: String, yaml body: String, metricsPorts: Int? = nil, tcpPorts: Int? = nil, tcpAddress: String = "127.0.0.1") throws {
        // ipc paths must stay under ~100 bytes, so keep the directory short.
        let directory = "/tmp/bt-\(name.prefix(12))-\(UUID().uuidString.prefix(8))"
        self.directory = directory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        configPath = directory + "/baton.yaml"
        let names = ["runs", "control", "results", "acks", "status_in", "status_out", "query", "reports", "algorithm_control"]
        let endpoints = names.enumerated().map { index, key in
            let endpoint =
                tcpPorts.map { "tcp://\(tcpAddress):\($0 + index)" }
                ?? "ipc://\(directory)/\(key.replacingOccurrences(of: "_", with: "-"))"
            return "  \(key): \(endpoint)"
        }
        head = """
            data_dir: \(directory)/data
            endpoints:
            \(endpoints.joined(separator: "\n"))
            metrics:
              logger: \(metricsPorts ?? 0)
              scheduler: \(metricsPorts.map { $0 + 1 } ?? 0)
              algorithm: \(metricsPorts.map { $0 + 2 } ?? 0)
              processor: \(metricsPorts.map { $0 + 3 } ?? 0)

            """
        try (head + body).write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    var dataDirectory: String { directory + "/data" }
    var storePath: String { dataDirectory + "/results.sqlite" }

    /// Starts an executable from the build directory; its stdout and stderr go to `<name>.out`/`.err`. With
    /// `wrapper` (e.g. `ip netns exec NS`), that command line runs the executable.
    @discardableResult
    func start(
        _ name: String,
        _ executable: String,
        _ arguments: [String] = [],
        environment: [String: String] = [:],
        wrapper: [String] = []
    ) throws -> Process {
        let process = Process()
        let argv = wrapper + [Self.binaries + "/" + executable] + arguments
        process.executableURL = URL(fileURLWithPath: argv[0])
        process.arguments = Array(argv.dropFirst())
        var env = ProcessInfo.processInfo.environment
        env["BATON_CONFIG"] = configPath
        env["BATON_SUPERVISOR_PID"] = "\(getpid())"
        // The lifeline, as `baton up` gives it: the service stops when this test process is gone. (The
        // fallback without it, the parent-death signal, fires when the pool thread that started the process
        // exits, which an idle test's pool threads do after a few seconds.)
        env["BATON_SUPERVISOR_FD"] = "0"
        env.merge(environment) { $1 }
        process.environment = env
        process.currentDirectoryURL = URL(fileURLWithPath: Self.repository)
        _ = FileManager.default.createFile(atPath: "\(directory)/\(name).out", contents: nil)
        _ = FileManager.default.createFile(atPath: "\(directory)/\(name).err", contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: "\(directory)/\(name).out")
        process.standardError = FileHandle(forWritingAtPath: "\(directory)/\(name).err")
        process.standardInput = lifeline.fileHandleForReading
        try process.run()
        lock.withLock { processes[name] = process }
        return process
    }

    /// A process started under this name.
    func process(_ name: String) -> Process? {
        lock.withLock { processes[name] }
    }

    /// Starts the four services, logger first.
    func startServices(processors: Int = 1) throws {
        try start("logger", "baton-logger")
        try start("scheduler", "baton-scheduler")
        try start("algorithm", "baton-algorithm")
        for index in 1...max(processors, 1) where processors > 0 {
            try start("processor-\(index)", "baton-processor", ["--name", "processor-\(index)"])
        }
    }

    /// Sends SIGTERM to every process, waits up to `grace`, then SIGKILLs what is left (and its children).
    func stop(grace: Duration = .seconds(10)) async {
        let running = lock.withLock { Array(processes.values) }
        for process in running where process.isRunning { kill(process.processIdentifier, SIGTERM) }
        _ = try? await Self.waitUntil(timeout: grace, poll: .milliseconds(50)) { !running.contains(where: \.isRunning) }
        for process in running where process.isRunning {
            for child in Self.descendants(of: process.processIdentifier) { kill(child, SIGKILL) }
            kill(process.processIdentifier, SIGKILL)
        }
        // Reaped, so the next test's `descendants` and pid checks see no zombie of this one.
        for process in running { _ = try? await Self.exited(process, within: .seconds(10)) }
    }

    /// Runs `body` with a new stack and always stops its processes and removes its directory afterwards.
    static func with<T>(
        _ name: String,
        yaml: String,
        metricsPorts: Int? = nil,
        tcpPorts: Int? = nil,
        tcpAddress: String = "127.0.0.1",
        _ body: (TestStack) async throws -> T
    ) async throws -> T {
        let stack = try TestStack(name, yaml: yaml, metricsPorts: metricsPorts, tcpPorts: tcpPorts, tcpAddress: tcpAddress)
        do {
            let value = try await body(stack)
            await stack.tearDown()
            return value
        } catch {
            await stack.tearDown()
            throw error
        }
    }

    /// Stops everything and removes the directory.
    func tearDown() async {
        await stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// The text a process wrote to stderr (for failure messages).
    func stderr(_ name: String) -> String {
        (try? String(contentsOfFile: "\(directory)/\(name).err", encoding: .utf8)) ?? ""
    }

    var outboxPath: String { dataDirectory + "/algorithm/outbox.sqlite" }
    var schedulerPath: String { dataDirectory + "/scheduler/state.sqlite" }

    /// Reads the result store, or another of the stack's databases (read-only).
    func read<T>(_ path: String? = nil, _ body: (Database) throws -> T) throws -> T {
        let storePath = path ?? storePath
        guard FileManager.default.fileExists(atPath: storePath) else { throw CocoaError(.fileNoSuchFile) }
        var configuration = Configuration()
        configuration.readonly = true
        configuration.busyMode = .timeout(5)
        let queue = try DatabaseQueue(path: storePath, configuration: configuration)
        return try queue.read(body)
    }

    /// Stored result parts, or 0 while the store does not exist yet.
    func storedCount() -> Int {
        (try? read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM results") ?? 0 }) ?? 0
    }

    /// Outbox entries per state (empty while the outbox does not exist yet).
    func outboxCounts() -> [String: Int] {
        (try? read(outboxPath) { db in
            var counts: [String: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT state, COUNT(*) AS n FROM outbox GROUP BY state") {
                counts[row["state"]] = row["n"]
            }
            return counts
        }) ?? [:]
    }

    /// Runs a `baton` subcommand against this stack and returns its exit status and output, waiting for it
    /// without holding a thread of the cooperative pool (a command such as `status --timeout 20s` may take that
    /// long, and two such waits would stop every other test in the process).
    func baton(_ arguments: [String]) async throws -> (status: Int32, output: String) {
        let outcome = try await Scripts.execute(Self.binaries + "/baton", arguments + ["--config", configPath])
        return (outcome.status, outcome.output)
    }

    /// Rewrites the configuration's YAML body (after data_dir and endpoints).
    /// Triggers one run of `job` once the scheduler answers (`baton jobs`; a loaded machine may take seconds to
    /// start it) and returns the run's id. Triggering once, not until it works: a trigger whose reply came too
    /// late for the client may still have fired.
    func trigger(_ job: String) async throws -> String {
        var asked = ""
        let answering = try await waitUntil(timeout: .seconds(60)) {
            let jobs = try await baton(["jobs"])
            asked = jobs.output
            return jobs.status == 0
        }
        try #require(answering, "the scheduler does not answer: \(asked)")
        let trigger = try await baton(["trigger", job])
        try #require(trigger.status == 0, "\(trigger.output)")
        return try #require(trigger.output.split(separator: "\n").last.map(String.init))
    }

    func rewrite(yaml body: String) throws {
        try (head + body).write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    /// Pids of all processes descending from `pid`, read from /proc.
    static func descendants(of pid: Int32) -> [Int32] {
        var parents: [Int32: Int32] = [:]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let child = Int32(entry), let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8) else { continue }
            // Fields after the command name (which may hold spaces) start after the last ')'.
            guard let close = stat.lastIndex(of: ")") else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 1, let parent = Int32(fields[1]) { parents[child] = parent }
        }
        var result: [Int32] = []
        var frontier = [pid]
        while let next = frontier.popLast() {
            let children = parents.filter { $0.value == next }.map(\.key)
            result += children
            frontier += children
        }
        return result
    }

    /// The command line of a process, or nil if it is gone.
    static func commandLine(of pid: Int32) -> String? {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return nil }
        return String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
    }
}
