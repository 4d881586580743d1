import Foundation
import TestSupport
import Testing

struct CommandLineTests {
    struct Outcome {
        var status: Int32
        var output: String
    }

    static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) async throws -> Outcome {
        let outcome = try await Program.run(
            TestStack.binaries + "/" + executable,
            arguments,
            environment: environment,
            timeout: .seconds(60)
        )
        return Outcome(status: outcome.status, output: outcome.output)
    }

    @Test(arguments: ["baton-logger", "baton-scheduler", "baton-algorithm", "baton-processor"])
    func serviceHelpExplainsEveryOption(executable: String) async throws {
        let outcome = try await Self.run(executable, ["--help"])
        #expect(outcome.status == 0)
        for text in ["--config <file>", "--log-level <level>", "BATON_CONFIG", "BATON_DATA_DIR", "docs/CONFIGURATION.md"] {
            #expect(outcome.output.contains(text), "\(executable) --help lacks \(text)")
        }
    }

    @Test(arguments: [
        ["--help"], ["up", "--help"], ["watch", "--help"], ["jobs", "--help"], ["trigger", "--help"], ["pause", "--help"],
        ["resume", "--help"], ["backfill", "--help"], ["schedule", "--help"], ["results", "--help"], ["replay", "--help"],
        ["logs", "--help"],
    ])
    func batonHelp(arguments: [String]) async throws {
        let outcome = try await Self.run("baton", arguments)
        #expect(outcome.status == 0)
        #expect(outcome.output.contains("USAGE: baton"))
    }

    @Test(arguments: ["baton-logger", "baton-scheduler", "baton-algorithm", "baton-processor"])
    func malformedConfigIsAClearError(executable: String) async throws {
        let path = "/tmp/bt-bad-\(UUID().uuidString.prefix(8)).yaml"
        try "jobs:\n  - name: x\n    every: often\n    builtin: demo\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let outcome = try await Self.run(executable, ["--config", path])
        #expect(outcome.status == 2)
        #expect(outcome.output.contains("\(path): jobs[0].every: expected a duration"), "\(outcome.output)")
    }

    /// A reader that stops early (`| head -1`) ends `baton` quietly, with the status `yes | head` has (141), not a
    /// crash: `FileHandle.write` trapped on EPIPE (seen by an outsider with `baton results --json | head -3`).
    @Test func aReaderThatStopsEarlyEndsTheCommandQuietly() async throws {
        let script = "set -o pipefail; '\(TestStack.binaries)/baton' schedule '* * * * *' --count 100000 | head -1 > /dev/null"
        let outcome = try await Program.run("/bin/bash", ["-c", script], timeout: .seconds(60))
        #expect(outcome.status == 141, "\(outcome.output.prefix(600))")
        #expect(!outcome.output.contains("Fatal error"), "\(outcome.output.prefix(600))")
    }

    @Test func badEnvironmentOverrideIsAClearError() async throws {
        let outcome = try await Self.run("baton-processor", [], environment: ["BATON_PROCESSOR_COUNT": "lots"])
        #expect(outcome.status == 2)
        #expect(outcome.output.contains("BATON_PROCESSOR_COUNT"))
    }

    @Test func upRejectsABadConfig() async throws {
        let outcome = try await Self.run("baton", ["up", "--config", "/no/such/file.yaml"])
        #expect(outcome.status == 2)
        #expect(outcome.output.contains("cannot read the file"))
    }

    /// `baton schedule` prints fire times across the spring-forward night following the documented rule.
    @Test func scheduleCommandAcrossSpringForward() async throws {
        let out = try await Self.run(
            "baton",
            ["schedule", "30 2 * * *", "--tz", "Europe/Berlin", "--from", "2026-03-27T00:00:00Z", "--count", "4"]
        )
        #expect(out.status == 0)
        #expect(
            out.output.split(separator: "\n").map(String.init) == [
                "2026-03-27T02:30:00+01:00", "2026-03-28T02:30:00+01:00", "2026-03-29T03:30:00+02:00", "2026-03-30T02:30:00+02:00",
            ]
        )
        let bad = try await Self.run("baton", ["schedule", "0 25 * * *"])
        #expect(bad.status == 2)
        #expect(bad.output.contains("hour field \"25\""))
    }
}
