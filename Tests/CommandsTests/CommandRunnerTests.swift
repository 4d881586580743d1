import Foundation
import Glibc
import Commands
import Synchronization
import Testing

final class Lines: Sendable {
    private let lines = Mutex<[String]>([])
    func append(_ line: String) { lines.withLock { $0.append(line) } }
    var all: [String] { lines.withLock { $0 } }
}

struct CommandRunnerTests {
    @Test func streamsOutputAndReportsExitStatus() async throws {
        let out = Lines()
        let err = Lines()
        let runner = CommandRunner(
            argv: ["sh", "-c", "echo one; echo two; echo oops >&2; echo $GREETING; exit 3"],
            environment: ["GREETING": "hello"],
            timeout: .seconds(30)
        )
        let outcome = try await runner.run(onOutput: out.append, onError: err.append)
        #expect(outcome == .exited(3))
        #expect(out.all == ["one", "two", "hello"])
        #expect(err.all == ["oops"])
    }

    @Test func feedsStandardInput() async throws {
        let out = Lines()
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("bt-in-\(UUID().uuidString)").path
        try Data("a\nb\n".utf8).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let runner = CommandRunner(argv: ["cat"], timeout: .seconds(30))
        let outcome = try await runner.run(input: .file(path), onOutput: out.append, onError: { _ in })
        #expect(outcome.succeeded)
        #expect(out.all == ["a", "b"])
    }

    @Test func stopsACommandPastItsTimeLimit() async throws {
        let runner = CommandRunner(argv: ["sleep", "30"], timeout: .milliseconds(200), gracePeriod: .seconds(2))
        let outcome = try await runner.run(onOutput: { _ in }, onError: { _ in })
        #expect(outcome == .timedOut(.milliseconds(200)))
    }

    @Test func commandThatIgnoresItsInputDoesNotHurtTheRunner() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("bt-in-\(UUID().uuidString)").path
        try Data(count: 1 << 20).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let runner = CommandRunner(argv: ["sh", "-c", "exit 1"], timeout: .seconds(30))
        for _ in 0..<3 {
            #expect(try await runner.run(input: .file(path), onOutput: { _ in }, onError: { _ in }) == .exited(1))
        }
    }

    @Test func missingProgramThrows() async throws {
        let runner = CommandRunner(argv: ["/no/such/program"], timeout: .seconds(5))
        await #expect(throws: (any Error).self) { try await runner.run(onOutput: { _ in }, onError: { _ in }) }
    }

    // MARK: the command's process group

    /// A script that records its process group (`$$`: the guard makes the command a group leader) and the pid
    /// of a forked child that ignores SIGTERM, then waits.
    static func stubbornScript(_ directory: String) -> [String] {
        ["sh", "-c", "echo $$ > \(directory)/group; (trap '' TERM; sleep 60) & echo $! > \(directory)/child; wait"]
    }

    static func temporaryDirectory() throws -> String {
        let path = "/tmp/bt-cr-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func pid(in path: String) -> Int32? {
        (try? String(contentsOfFile: path, encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// Whether no process of the group (or the process, for a positive id) is left, within `timeout`.
    static func gone(_ id: Int32, timeout: Duration = .seconds(10)) async -> Bool {
        await Wait.until(timeout: timeout) { kill(id, 0) != 0 && errno == ESRCH }
    }

    /// The waits of these tests: for a condition that sends no event (a pid file written, a process gone),
    /// polled with a deadline; or, deliberately, a window in which something must not happen.
    enum Wait {
        static func until(timeout: Duration, every poll: Duration = .milliseconds(20), _ condition: () -> Bool) async -> Bool {
            let deadline = ContinuousClock.now + timeout
            while ContinuousClock.now < deadline {
                if condition() { return true }
                do { try await Task.sleep(for: poll) } catch { break }
            }
            return condition()
        }

        static func deliberately(_ duration: Duration, because reason: String) async throws {
            try await Task.sleep(for: duration)
        }
    }

    @Test func timeoutKillsTheWholeGroupEvenAChildIgnoringSIGTERM() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let runner = CommandRunner(argv: Self.stubbornScript(directory), timeout: .milliseconds(500), gracePeriod: .milliseconds(300))
        let outcome = try await runner.run(onOutput: { _ in }, onError: { _ in })
        #expect(outcome == .timedOut(.milliseconds(500)))
        let child = try #require(Self.pid(in: "\(directory)/child"))
        let group = try #require(Self.pid(in: "\(directory)/group"))
        let childGone = await Self.gone(child)
        let groupGone = await Self.gone(-group)
        if !childGone { kill(child, SIGKILL) }
        #expect(childGone, "the child ignoring SIGTERM outlived the timeout")
        #expect(groupGone)
    }

    @Test func cancelKillsTheWholeGroupEvenAChildIgnoringSIGTERM() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let runner = CommandRunner(argv: Self.stubbornScript(directory), timeout: .seconds(60), gracePeriod: .milliseconds(300))
        let task = Task { try await runner.run(onOutput: { _ in }, onError: { _ in }) }
        // A wait, not a time target: a machine loaded by the other suites may take seconds to start the script.
        _ = await Wait.until(timeout: .seconds(60)) { Self.pid(in: "\(directory)/child") != nil }
        let child = try #require(Self.pid(in: "\(directory)/child"))
        let group = try #require(Self.pid(in: "\(directory)/group"))
        task.cancel()
        _ = try await task.value
        let childGone = await Self.gone(child)
        let groupGone = await Self.gone(-group)
        if !childGone { kill(child, SIGKILL) }
        #expect(childGone, "the child ignoring SIGTERM outlived the cancel")
        #expect(groupGone)
    }

    /// When the command exits, anything it left running in its group is killed before `run` returns: a late
    /// writer cannot touch the output afterwards.
    @Test func childLeftWritingIsKilledWhenTheCommandExits() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let script = "(while true; do echo x >> \(directory)/out; sleep 0.02; done) & echo $! > \(directory)/child; sleep 0.1; exit 0"
        let runner = CommandRunner(argv: ["sh", "-c", script], timeout: .seconds(30))
        #expect(try await runner.run(onOutput: { _ in }, onError: { _ in }) == .exited(0))
        let child = try #require(Self.pid(in: "\(directory)/child"))
        let alive = kill(child, 0) == 0
        if alive { kill(child, SIGKILL) }
        #expect(!alive, "the forked writer is still running after run returned")
        let size = (try? FileManager.default.attributesOfItem(atPath: "\(directory)/out")[.size] as? Int) ?? 0
        try await Wait.deliberately(.milliseconds(200), because: "a writer left behind would grow the file within 20 ms")
        #expect(((try? FileManager.default.attributesOfItem(atPath: "\(directory)/out")[.size] as? Int) ?? 0) == size)
    }

    @Test func commandKilledByASignalIsReportedAsSignaled() async throws {
        let runner = CommandRunner(argv: ["sh", "-c", "kill -KILL $$"], timeout: .seconds(30))
        #expect(try await runner.run(onOutput: { _ in }, onError: { _ in }) == .signaled(SIGKILL))
    }

    @Test func commandsCarryTheOwnerMarkerAndRunBehindTheGuard() async throws {
        let out = Lines()
        let guardPath = try CommandRunner.guardPath()
        #expect(FileManager.default.isExecutableFile(atPath: guardPath))
        let runner = CommandRunner(argv: ["sh", "-c", "ps -o comm= -p $PPID 2>/dev/null || cat /proc/$PPID/comm"], timeout: .seconds(30))
        #expect(try await runner.run(onOutput: out.append, onError: { _ in }).succeeded)
        #expect(out.all.first == "baton-exec")
    }
}
