import Foundation
import Testing

struct CommandLineTests {
    struct Outcome {
        var status: Int32
        var output: String
    }

    static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws -> Outcome {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: TestStack.binaries + "/" + executable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Outcome(status: process.terminationStatus, output: String(decoding: data, as: UTF8.self))
    }

    @Test(arguments: ["baton-logger", "baton-scheduler", "baton-algorithm", "baton-processor"])
    func serviceHelpExplainsEveryOption(executable: String) throws {
        let outcome = try Self.run(executable, ["--help"])
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
    func batonHelp(arguments: [String]) throws {
        let outcome = try Self.run("baton", arguments)
        #expect(outcome.status == 0)
        #expect(outcome.output.contains("USAGE: baton"))
    }

    @Test(arguments: ["baton-logger", "baton-scheduler", "baton-algorithm", "baton-processor"])
    func malformedConfigIsAClearError(executable: String) throws {
        let path = "/tmp/bt-bad-\(UUID().uuidString.prefix(8)).yaml"
        try "jobs:\n  - name: x\n    every: often\n    builtin: demo\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let outcome = try Self.run(executable, ["--config", path])
        #expect(outcome.status == 2)
        #expect(outcome.output.contains("\(path): jobs[0].every: expected a duration"), "\(outcome.output)")
    }

    @Test func badEnvironmentOverrideIsAClearError() throws {
        let outcome = try Self.run("baton-processor", [], environment: ["BATON_PROCESSOR_COUNT": "lots"])
        #expect(outcome.status == 2)
        #expect(outcome.output.contains("BATON_PROCESSOR_COUNT"))
    }

    @Test func upRejectsABadConfig() throws {
        let outcome = try Self.run("baton", ["up", "--config", "/no/such/file.yaml"])
        #expect(outcome.status == 2)
        #expect(outcome.output.contains("cannot read the file"))
    }

    /// `baton schedule` prints fire times across the spring-forward night following the documented rule.
    @Test func scheduleCommandAcrossSpringForward() throws {
        let out = try Self.run(
            "baton",
            ["schedule", "30 2 * * *", "--tz", "Europe/Berlin", "--from", "2026-03-27T00:00:00Z", "--count", "4"]
        )
        #expect(out.status == 0)
        #expect(
            out.output.split(separator: "\n").map(String.init) == [
                "2026-03-27T02:30:00+01:00", "2026-03-28T02:30:00+01:00", "2026-03-29T03:30:00+02:00", "2026-03-30T02:30:00+02:00",
            ]
        )
        let bad = try Self.run("baton", ["schedule", "0 25 * * *"])
        #expect(bad.status == 2)
        #expect(bad.output.contains("hour field \"25\""))
    }
}
