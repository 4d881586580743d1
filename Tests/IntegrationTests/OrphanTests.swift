import Foundation
import Glibc
import Messaging
import Testing

/// No process outlives the one that started it: commands die with a killed algorithm, a restarted algorithm
/// clears what a predecessor left, and `baton up`'s services die with it.
@Suite(.serialized)
struct OrphanTests {
    /// Whether `pid` (or the group, for a negative id) is gone within `timeout`.
    static func gone(_ id: Int32, within timeout: Duration) async -> Bool {
        let gone = try? await TestStack.waitUntil(timeout: timeout, poll: .milliseconds(20)) {
            (kill(id, 0) != 0 && errno == ESRCH) || (id > 0 && isZombie(id))
        }
        return gone == true
    }

    /// A process that has ended but whose new parent (init, after its own parent died) has not reaped it yet.
    static func isZombie(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else {
            return false
        }
        return stat[stat.index(after: close)...].split(separator: " ").first == "Z"
    }

    static func lines(_ path: String) -> [Int32] {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").compactMap { Int32($0) }
    }

    /// The attempts' partial files (each attempt's `BATON_OUTPUT_DIR`, `<partial>.parts.partial`, goes with its file).
    static func partials(_ stack: TestStack, job: String) -> Set<String> {
        Set(
            ((try? FileManager.default.contentsOfDirectory(atPath: stack.dataDirectory + "/raw/\(job)")) ?? []).filter {
                $0.hasSuffix(".partial") && !$0.hasSuffix(".parts.partial")
            }
        )
    }

    /// A process carrying `BATON_OWNER` of a dead algorithm for this stack's data directory: what a
    /// predecessor without the guard would have left.
    static func fakeLeftover(_ stack: TestStack, deadOwner: Int32) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sleep")
        process.arguments = ["60"]
        var environment = ProcessInfo.processInfo.environment
        environment["BATON_OWNER"] = "algorithm:\(deadOwner):\(stack.dataDirectory)"
        process.environment = environment
        try process.run()
        return process
    }

    /// `kill -9` of the algorithm while its command runs: the command (a group leader, behind its guard) is
    /// dead within 2 s. The restarted algorithm kills leftovers of a dead predecessor, removes the partial
    /// files of dead attempts, and runs the run again into a file of its own.
    /// The limit is a safety net, not a target: the trigger alone may wait up to 60 s for a scheduler started on a
    /// machine loaded by the other suites (one CI run spent the whole minute before the run had started).
    @Test(.timeLimit(.minutes(3)))
    func killedAlgorithmTakesItsCommandAlongAndItsSuccessorCleansUp() async throws {
        // Hourly slots half an hour away: the one run is triggered, whenever the scheduler is up.
        let anchor = Timestamp.format(Date().addingTimeInterval(1800))
        try await TestStack.with(
            "orphan",
            yaml: """
                jobs:
                  - name: slow
                    every: 1h
                    anchor: \(anchor)
                    misfire: all
                    command: [sh, -c, "echo $$ >> $PIDS; echo partial > $BATON_OUTPUT; sleep 60"]
                    env: {PIDS: "PIDS_PATH"}
                    timeout: 2m
                """.replacingOccurrences(of: "PIDS_PATH", with: "/tmp/bt-orphan-pids-\(getpid())")
        ) { stack in
            let pids = "/tmp/bt-orphan-pids-\(getpid())"
            try? FileManager.default.removeItem(atPath: pids)
            defer { try? FileManager.default.removeItem(atPath: pids) }
            try stack.start("scheduler", "baton-scheduler")
            let algorithm = try stack.start("algorithm", "baton-algorithm")
            let began = ContinuousClock.now
            _ = try await stack.trigger("slow")
            print("orphan: triggered \(ContinuousClock.now - began) after the start")
            let running = try await stack.waitUntil(timeout: .seconds(30)) { !Self.lines(pids).isEmpty }
            #expect(running, "algorithm: \(stack.stderr("algorithm").suffix(800)); scheduler: \(stack.stderr("scheduler").suffix(800))")
            let command = try #require(Self.lines(pids).first)
            let leftBehind = Self.partials(stack, job: "slow")
            #expect(leftBehind.count == 1)

            kill(algorithm.processIdentifier, SIGKILL)
            #expect(try await TestStack.ended(algorithm))
            let commandGone = await Self.gone(-command, within: .seconds(2))
            if !commandGone { kill(-command, SIGKILL) }
            #expect(commandGone, "the command outlived the killed algorithm")

            let leftover = try Self.fakeLeftover(stack, deadOwner: algorithm.processIdentifier)
            defer { if leftover.isRunning { kill(leftover.processIdentifier, SIGKILL) } }
            try stack.start("algorithm-2", "baton-algorithm")
            let cleared = await Self.gone(leftover.processIdentifier, within: .seconds(10))
            #expect(cleared, "algorithm: \(stack.stderr("algorithm-2").suffix(800))")
            let rerun = try await stack.waitUntil(timeout: .seconds(10)) { Self.lines(pids).count >= 2 }
            #expect(rerun)
            let now = Self.partials(stack, job: "slow")
            #expect(now.isDisjoint(with: leftBehind), "stray partial files: \(now)")
            #expect(now.count == 1)
            #expect(stack.stderr("algorithm-2").contains("killed a command left by a dead algorithm"))
        }
    }

    static let demo = """
        processor:
          count: 1
        jobs:
          - name: quick
            every: 1s
            builtin: demo
            duration: 100ms
            result_size: 64
        """

    /// `kill -9` of `baton up`: every service is gone (within 2 s on a quiet machine). The watch that notices does not depend on
    /// the thread that started it (the old parent-death signal was lost when that thread exited): each service
    /// holds it on a dedicated thread, checked here by name.
    @Test(.timeLimit(.minutes(1)))
    func killedUpTakesEveryServiceDown() async throws {
        try await TestStack.with("upkill", yaml: Self.demo) { stack in
            let up = try stack.start("up", "baton", ["up", "--config", stack.configPath])
            let started = try await stack.waitUntil(timeout: .seconds(20)) {
                TestStack.descendants(of: up.processIdentifier).filter { TestStack.commandLine(of: $0)?.contains("baton-") == true }.count
                    >= 4
            }
            #expect(started)
            let services = TestStack.descendants(of: up.processIdentifier)
            let watched = try await stack.waitUntil(timeout: .seconds(10)) {
                services.allSatisfy { Self.threadNames(of: $0).contains("baton-lifeline") }
            }
            #expect(watched, "services without a lifeline thread")
            kill(up.processIdentifier, SIGKILL)
            // Each service exits at most 0.5 s after its lifeline thread sees end-of-file (typically well under 2 s
            // in all, printed below); the bound checked is looser, as a machine loaded by the other suites may
            // not schedule the processes for a while. Time targets are the benchmark's, not the tests'.
            let start = ContinuousClock.now
            let gone = try await TestStack.waitUntil(timeout: .seconds(10), poll: .milliseconds(20)) {
                services.allSatisfy { kill($0, 0) != 0 || Self.isZombie($0) }
            }
            print("services gone \(ContinuousClock.now - start) after kill -9 of baton up")
            let orphans = services.filter { kill($0, 0) == 0 && !Self.isZombie($0) }.compactMap(TestStack.commandLine(of:))
            for pid in services { kill(pid, SIGKILL) }
            #expect(gone, "orphans 10 s after kill -9 of baton up: \(orphans)")
        }
    }

    /// A second `baton up` for the same data directory refuses while the first runs; one that finds services
    /// of a dead `baton up` stops them first; services started by hand make it refuse, naming them.
    @Test(.timeLimit(.minutes(1)))
    func upChecksForAnEarlierInstance() async throws {
        try await TestStack.with("upagain", yaml: Self.demo) { stack in
            let first = try stack.start("up", "baton", ["up", "--config", stack.configPath])
            let running = try await stack.waitUntil(timeout: .seconds(20)) {
                PidFileProbe.held(stack.dataDirectory + "/run/algorithm.pid", by: nil)
            }
            #expect(running)
            let second = try await stack.baton(["up"])
            #expect(second.status == 1)
            #expect(second.output.contains("another baton up (pid \(first.processIdentifier))"), "\(second.output)")
            kill(first.processIdentifier, SIGTERM)
            #expect(try await TestStack.exited(first))

            // A logger of a dead `baton up` (its lifeline still open: an older baton up had none).
            let dead = Process()
            dead.executableURL = URL(fileURLWithPath: "/bin/true")
            try dead.run()
            #expect(try await TestStack.exited(dead))
            let lifeline = Pipe()
            let stray = Process()
            stray.executableURL = URL(fileURLWithPath: TestStack.binaries + "/baton-logger")
            var environment = ProcessInfo.processInfo.environment
            environment["BATON_CONFIG"] = stack.configPath
            environment["BATON_SUPERVISOR_PID"] = "\(dead.processIdentifier)"
            environment["BATON_SUPERVISOR_FD"] = "0"
            stray.environment = environment
            stray.standardInput = lifeline
            stray.standardError = FileHandle.nullDevice
            try stray.run()
            defer { if stray.isRunning { kill(stray.processIdentifier, SIGKILL) } }
            let held = try await stack.waitUntil(timeout: .seconds(15)) {
                PidFileProbe.held(stack.dataDirectory + "/run/logger.pid", by: stray.processIdentifier)
            }
            #expect(held)
            let again = try stack.start("up-2", "baton", ["up", "--config", stack.configPath])
            let stopped = await Self.gone(stray.processIdentifier, within: .seconds(15))
            let said = try await stack.waitUntil(timeout: .seconds(10)) {
                ((try? String(contentsOfFile: stack.directory + "/up-2.out", encoding: .utf8)) ?? "").contains(
                    "stopping baton-logger (pid \(stray.processIdentifier)), left running by an earlier baton up"
                )
            }
            let output = "\((try? String(contentsOfFile: stack.directory + "/up-2.out", encoding: .utf8)) ?? "")\(stack.stderr("up-2"))"
            #expect(stopped, "\(output)")
            #expect(said, "\(output)")
            kill(again.processIdentifier, SIGTERM)
            #expect(try await TestStack.exited(again))

            // A service started by hand: refused, naming it.
            let byHand = try stack.start("scheduler", "baton-scheduler")
            let up = try await stack.waitUntil(timeout: .seconds(15)) {
                PidFileProbe.held(stack.dataDirectory + "/run/scheduler.pid", by: byHand.processIdentifier)
            }
            #expect(up)
            let refused = try await stack.baton(["up"])
            #expect(refused.status == 1)
            #expect(refused.output.contains("baton-scheduler (pid \(byHand.processIdentifier)"), "\(refused.output)")
        }
    }

    static func threadNames(of pid: Int32) -> [String] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        return tasks.compactMap { try? String(contentsOfFile: "/proc/\(pid)/task/\($0)/comm", encoding: .utf8) }
            .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
    }
}

/// Whether a live process (`pid`, if given) holds a pid file's lock.
enum PidFileProbe {
    static func held(_ path: String, by pid: Int32?) -> Bool {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        guard flock(fd, LOCK_SH | LOCK_NB) != 0 else { return false }
        guard let pid else { return true }
        return ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").contains("pid=\(pid)\n")
    }
}
