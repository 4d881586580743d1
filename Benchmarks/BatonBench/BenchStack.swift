import Foundation
import Glibc
import Messaging

/// Real Baton service processes for one scenario: a directory under the bench folder, a configuration on
/// its own TCP ports, processes started from the build directory and killed at the end.
final class BenchStack {
    let directory: String
    let configPath: String
    let basePort: Int
    private(set) var processes: [String: Process] = [:]
    /// Each service's lifeline (`BATON_SUPERVISOR_FD`, as `baton up` gives it): the read end of a pipe whose
    /// write end only this process holds, so the services stop when the bench dies, however it dies. With
    /// `BATON_SUPERVISOR_PID` alone they relied on the parent-death signal, which Linux ties to the thread that
    /// started them: when that thread of the bench retired (an async scenario's), a service was sent SIGTERM
    /// and left mid-run, exiting 0.
    private let lifeline: (read: Int32, write: Int32)

    /// The directory holding `baton-bench` and the service executables.
    static let binaries = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().path

    /// - Parameters:
    ///   - address: The address every endpoint binds and connects to: 127.0.0.1, or a test host's (``TestHosts``).
    init(root: String, name: String, basePort: Int, address: String = "127.0.0.1", yaml body: String) throws {
        directory = "\(root)/\(name)"
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        configPath = directory + "/baton.yaml"
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { throw BenchError("no pipe for the services' lifeline: errno \(errno)") }
        // Neither end leaks into the services' own children; each service gets the read end as its fd 0.
        for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        lifeline = (ends[0], ends[1])
        self.basePort = basePort
        let yaml = """
            data_dir: \(directory)/data
            endpoints:
              runs: tcp://\(address):\(basePort + 1)
              control: tcp://\(address):\(basePort + 2)
              results: tcp://\(address):\(basePort + 3)
              acks: tcp://\(address):\(basePort + 4)
              status_in: tcp://\(address):\(basePort + 5)
              status_out: tcp://\(address):\(basePort + 6)
              query: tcp://\(address):\(basePort + 7)
              reports: tcp://\(address):\(basePort + 8)
              algorithm_control: tcp://\(address):\(basePort + 9)
            metrics:
              logger: \(basePort + 10)
              scheduler: \(basePort + 11)
              algorithm: \(basePort + 12)
              processor: \(basePort + 13)

            """
        try (yaml + body).write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    deinit {
        close(lifeline.read)
        close(lifeline.write)
    }

    var dataDirectory: String { directory + "/data" }
    var eventLog: String { dataDirectory + "/logs/events.jsonl" }

    /// Starts an executable of the build; with `wrapper` (e.g. `ip netns exec NS`), that command line runs it.
    @discardableResult
    func start(
        _ name: String,
        _ executable: String,
        _ arguments: [String] = [],
        wrapper: [String] = [],
        environment extra: [String: String] = [:]
    ) throws -> Process {
        let process = Process()
        let argv = wrapper + [Self.binaries + "/" + executable] + arguments
        process.executableURL = URL(fileURLWithPath: argv[0])
        process.arguments = Array(argv.dropFirst())
        var environment = ProcessInfo.processInfo.environment.merging(extra) { $1 }
        environment["BATON_CONFIG"] = configPath
        environment["BATON_SUPERVISOR_PID"] = "\(getpid())"
        environment["BATON_SUPERVISOR_FD"] = "0"
        environment["BATON_INSTANCE"] = name
        process.environment = environment
        let log = "\(directory)/\(name).err"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        process.standardError = FileHandle(forWritingAtPath: log)
        process.standardOutput = FileHandle.nullDevice
        process.standardInput = FileHandle(fileDescriptor: lifeline.read, closeOnDealloc: false)
        try process.run()
        processes[name] = process
        return process
    }

    func pid(_ name: String) -> Int32? { processes[name]?.processIdentifier }

    func kill(_ name: String, signal: Int32 = SIGKILL) {
        guard let process = processes[name] else { return }
        Glibc.kill(process.processIdentifier, signal)
        process.waitUntilExit()
    }

    /// SIGTERM to all (workers first, the logger last), SIGKILL after 10 s.
    func stop() {
        let order = processes.keys.sorted { ($0 == "logger" ? 1 : 0, $0) < ($1 == "logger" ? 1 : 0, $1) }
        for name in order {
            guard let process = processes[name], process.isRunning else { continue }
            Glibc.kill(process.processIdentifier, SIGTERM)
            let deadline = Date().addingTimeInterval(10)
            while process.isRunning && Date() < deadline { usleep(20_000) }
            if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
        processes = [:]
    }

    /// The status events of a type in the logger's event log, in order.
    func events(_ type: String) -> [StatusEvent] {
        guard let text = try? String(contentsOfFile: eventLog, encoding: .utf8) else { return [] }
        let decoder = Timestamp.decoder()
        let needle = "\"type\":\"\(type)\""
        return text.split(separator: "\n").compactMap { line in
            guard line.contains(needle) else { return nil }
            return try? decoder.decode(StatusEvent.self, from: Data(line.utf8))
        }
    }

    /// Waits until `condition` holds, checking every 200 ms; false on timeout.
    func wait(timeout: Double, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition() { return true }
            usleep(200_000)
        }
        return condition()
    }

    /// CPU time of each thread of a process, in nanoseconds (from /proc/<pid>/task/<tid>/schedstat).
    static func threadCPU(_ pid: Int32) -> [String: UInt64] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        var result: [String: UInt64] = [:]
        for task in tasks {
            guard let text = try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/schedstat", encoding: .utf8),
                let first = text.split(separator: " ").first, let value = UInt64(first)
            else { continue }
            result[task] = value
        }
        return result
    }

    /// CPU nanoseconds a process used during `seconds`, all threads, sampled every 0.25 s so that threads
    /// ending in between (libdispatch retires idle workers) keep what they had used.
    static func cpuNanos(of pids: [Int32], during seconds: Double) -> [UInt64] {
        var first = pids.map { threadCPU($0) }
        var last = first
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            usleep(250_000)
            for (index, pid) in pids.enumerated() {
                for (tid, value) in threadCPU(pid) {
                    if first[index][tid] == nil { first[index][tid] = 0 }  // a thread born during the window
                    last[index][tid] = value
                }
            }
        }
        return pids.indices.map { index in
            last[index].reduce(0) { total, entry in total + (entry.value - min(first[index][entry.key] ?? 0, entry.value)) }
        }
    }

    /// Private (anonymous) resident memory of a process in KiB: heap and stacks, without the mapped code and
    /// libraries that RSS also counts (from /proc/<pid>/smaps_rollup).
    static func anonymousKiB(_ pid: Int32) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/smaps_rollup", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("Anonymous:") {
            return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
        }
        return 0
    }

    /// CPU seconds a process used so far, all threads, live or ended (utime + stime in /proc/<pid>/stat).
    static func cpuSeconds(_ pid: Int32) -> Double {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return 0 }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // After the command: state is field 3, utime 14, stime 15 (1-based over the whole line).
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// Resident memory of a process in KiB (VmRSS).
    static func rssKiB(_ pid: Int32) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
        }
        return 0
    }
}
