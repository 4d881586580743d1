import Foundation
import Runtime
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
        let start = ContinuousClock.now
        let outcome = try await runner.run(onOutput: { _ in }, onError: { _ in })
        #expect(outcome == .timedOut(.milliseconds(200)))
        #expect(ContinuousClock.now - start < .seconds(10))
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
}
