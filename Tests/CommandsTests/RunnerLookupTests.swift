import Commands
import Foundation
import Testing

/// The runner finds programs as the services' start-up check does (both use `ProgramLookup`).
struct RunnerLookupTests {
    /// A scratch folder for one test, removed afterwards.
    final class Scratch {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("bt-lookup-\(UUID().uuidString.prefix(8))").path
        init() throws { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
        deinit { try? FileManager.default.removeItem(atPath: path) }
        func file(_ name: String, mode: Int = 0o644, contents: String = "#!/bin/sh\nexit 0\n") throws -> String {
            let file = (path as NSString).appendingPathComponent(name)
            try contents.write(toFile: file, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: file)
            return file
        }
    }

    /// The runner refuses what the check refuses, with a code telling "not executable" (permanent) apart.
    @Test func runnerReportsANonExecutableProgramAsSuch() async throws {
        let scratch = try Scratch()
        let script = try scratch.file("x.sh", mode: 0o644)
        let runner = CommandRunner(argv: [script], timeout: .seconds(5))
        let error = await #expect(throws: CommandError.self) { try await runner.run(onOutput: { _ in }, onError: { _ in }) }
        #expect(error?.code == .notExecutable)
        let missing = CommandRunner(argv: [scratch.path + "/none"], timeout: .seconds(5))
        let other = await #expect(throws: CommandError.self) { try await missing.run(onOutput: { _ in }, onError: { _ in }) }
        #expect(other?.code == .notFound)
    }

    /// A relative program is run from the command's working directory, and found there by the runner too.
    @Test func runnerFindsARelativeProgramInItsWorkdir() async throws {
        let scratch = try Scratch()
        _ = try scratch.file("ok.sh", mode: 0o755, contents: "#!/bin/sh\necho here\n")
        let lines = Lines()
        let runner = CommandRunner(argv: ["./ok.sh"], workingDirectory: scratch.path, timeout: .seconds(30))
        let outcome = try await runner.run(onOutput: lines.append, onError: { _ in })
        #expect(outcome.succeeded)
        #expect(lines.all == ["here"])
    }
}
