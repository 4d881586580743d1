import Foundation
import Glibc
import Subprocess
import SystemPackage

/// Runs service processes and restarts any that dies, with exponential backoff.
///
/// Stopping (cancellation) sends each child SIGTERM and, after `gracePeriod`, SIGKILL. Each child's standard
/// input is the read end of the supervisor's lifeline pipe (`BATON_SUPERVISOR_FD=0`, and
/// `BATON_SUPERVISOR_PID`), whose write end only the supervisor holds: when the supervisor dies, however and
/// whenever, the pipe reaches end-of-file and every child stops (within 1.5 s, hard if need be).
struct Supervisor: Sendable {
    /// One supervised process.
    struct Child: Sendable {
        /// Display name, e.g. `processor-2`; also its instance name on the bus (`BATON_INSTANCE`).
        var name: String
        /// The service it runs, e.g. `processor`.
        var service: String
        /// The executable.
        var path: String
        /// Its arguments.
        var arguments: [String]
        /// How long it may take to stop before SIGKILL, if not the supervisor's default (the algorithm
        /// drains its running runs for `algorithm.drain`).
        var gracePeriod: Duration? = nil
    }

    /// What happened to a child, for display.
    enum Report: Sendable {
        case started(String)
        case exited(Child, status: String, restartIn: Duration, lastError: String?)
        case failedToStart(String, error: String, restartIn: Duration)
    }

    /// The read end of the lifeline pipe, given to every child as its standard input.
    var lifeline: Int32
    var logDirectory: String
    var gracePeriod: Duration = .seconds(10)
    var environment: [String: String]
    var report: @Sendable (Report) -> Void
    var restartPolicy = RestartPolicy()

    /// How long to wait before restarting a child that ended: exponential backoff, reset by a healthy run.
    struct RestartPolicy: Sendable {
        /// The first delay, and the delay after a child that ran longer than `healthyAfter`.
        var initial: Duration = .milliseconds(500)
        /// The longest delay.
        var maximum: Duration = .seconds(30)
        /// A child that ran longer than this is healthy again: its next restart waits `initial` only.
        var healthyAfter: Duration = .seconds(30)

        /// The delay before the next restart of a child that ran for `ran`, given the delay before its previous
        /// restart (`nil` if it had none): double that, up to `maximum`.
        func delay(previous: Duration?, ran: Duration) -> Duration {
            guard let previous, ran <= healthyAfter else { return initial }
            return min(previous * 2, maximum)
        }
    }

    /// How many earlier runs' standard error logs are kept (`NAME.stderr.log.1` is the latest).
    static let keptLogs = 3

    /// Supervises one child until the calling task is cancelled. The previous run's standard error log is
    /// kept (see ``rotate(_:keep:)``); restarts within this run append to the new one.
    func supervise(_ child: Child) async {
        var previous: Duration?
        let stderrPath = (logDirectory as NSString).appendingPathComponent("\(child.name).stderr.log")
        Self.rotate(stderrPath, keep: Self.keptLogs)
        while !Task.isCancelled {
            let clock = ContinuousClock()
            let started = clock.now
            var status = "ended"
            var launchError: String?
            // This run's lines only: restarts append to the same log.
            let logStart = (try? FileManager.default.attributesOfItem(atPath: stderrPath))?[.size] as? UInt64 ?? 0
            do {
                status = try await runOnce(child, stderrPath: stderrPath)
            } catch {
                launchError = "\(error)"
            }
            if Task.isCancelled { return }
            let backoff = restartPolicy.delay(previous: previous, ran: clock.now - started)
            previous = backoff
            if let launchError {
                report(.failedToStart(child.name, error: launchError, restartIn: backoff))
            } else {
                report(.exited(child, status: status, restartIn: backoff, lastError: Self.lastError(of: stderrPath, since: logStart)))
            }
            do { try await Task.sleep(for: backoff) } catch { return }
        }
    }

    private func runOnce(_ child: Child, stderrPath: String) async throws -> String {
        let fd = open(stderrPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw SupervisorError("cannot open \(stderrPath): \(String(cString: strerror(errno)))") }
        var options = PlatformOptions()
        options.teardownSequence = [.gracefulShutDown(allowedDurationToNextStep: child.gracePeriod ?? gracePeriod)]
        // Its own process group: a terminal's Ctrl-C goes to the supervisor, which stops children in order.
        options.processGroupID = 0
        var updates: [Environment.Key: String?] = [:]
        for (key, value) in environment { updates[Environment.Key(stringLiteral: key)] = value }
        updates["BATON_SUPERVISOR_PID"] = "\(getpid())"
        updates["BATON_SUPERVISOR_FD"] = "0"
        updates["BATON_INSTANCE"] = child.name
        report(.started(child.name))
        // Returns when the child ends; cancelling this task tears the child down (SIGTERM, then SIGKILL).
        let result = try await Subprocess.run(
            .path(FilePath(child.path)),
            arguments: Arguments(child.arguments),
            environment: .inherit.updating(updates),
            platformOptions: options,
            input: .fileDescriptor(FileDescriptor(rawValue: lifeline), closeAfterSpawningProcess: false),
            output: .discarded,
            error: .fileDescriptor(FileDescriptor(rawValue: fd), closeAfterSpawningProcess: true)
        )
        switch result.terminationStatus {
        case .exited(let code): return "exited with status \(code)"
        case .signaled(let signal): return "killed by signal \(signal)"
        }
    }

    /// Moves `path` to `path.1`, `path.1` to `path.2` and so on, dropping what would go beyond `path.<keep>`.
    /// Nothing happens when `path` does not exist or is empty (a run that wrote nothing pushes out nothing).
    static func rotate(_ path: String, keep: Int) {
        let manager = FileManager.default
        guard let size = (try? manager.attributesOfItem(atPath: path))?[.size] as? UInt64, size > 0, keep > 0 else { return }
        try? manager.removeItem(atPath: "\(path).\(keep)")
        for index in stride(from: keep - 1, through: 1, by: -1) where manager.fileExists(atPath: "\(path).\(index)") {
            try? manager.moveItem(atPath: "\(path).\(index)", toPath: "\(path).\(index + 1)")
        }
        try? manager.moveItem(atPath: path, toPath: "\(path).1")
    }

    /// How long before a child's exit an error line may have been written to be said as its last error.
    static let recentError: TimeInterval = 30

    /// The last line at level warning, error or critical in the last 16 KiB of a child's standard error
    /// (swift-log's `<time> <level> <label>: …` lines) written by this run of it (from `offset` on) and no more
    /// than ``recentError`` before `now`, if any: an info line says nothing about a death, and neither does an
    /// error of a minute ago (a task that failed, say) when a service is killed.
    static func lastError(of path: String, since offset: UInt64 = 0, now: Date = Date()) -> String? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        let size = (try? handle.seekToEnd()) ?? 0
        try? handle.seek(toOffset: max(offset, size > 16384 ? size - 16384 : 0))
        let tail = String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
        return tail.split(separator: "\n").last { line in
            let words = line.split(separator: " ", maxSplits: 2)
            guard words.count > 1, ["warning", "error", "critical"].contains(words[1]) else { return false }
            let written = try? Date.ISO8601FormatStyle().parse(String(words[0]))
            return written.map { now.timeIntervalSince($0) <= Self.recentError } ?? true
        }.map(String.init)
    }
}

extension Supervisor {
    /// Asks `probe` until it says yes or `timeout` has passed on `clock`; returns whether it said yes. After a no,
    /// waits `pause` before asking again, so a probe that fails at once (nothing listening yet) does not spin.
    /// The probe bounds its own wait; the last attempt may end up to one probe's time after the deadline.
    static func waitUntilReady<C: Clock<Duration>>(
        within timeout: Duration,
        clock: C = ContinuousClock(),
        pause: Duration = .milliseconds(100),
        probe: () async -> Bool
    ) async -> Bool {
        let deadline = clock.now.advanced(by: timeout)
        while !Task.isCancelled {
            if await probe() { return true }
            let now = clock.now
            guard now < deadline else { return false }
            do {
                try await clock.sleep(until: min(now.advanced(by: pause), deadline), tolerance: nil)
            } catch {
                return false
            }
        }
        return false
    }
}

struct SupervisorError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
