import Foundation
import Glibc
import Runtime
import Testing
import ZMQ

/// The start-up checks: folders, files, ipc sockets and commands a configuration names, each problem an
/// error naming its key.
struct ConfigurationCheckTests {
    /// A scratch folder for one test, removed afterwards.
    final class Scratch {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("bt-check-\(UUID().uuidString.prefix(8))").path
        init() throws { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
        deinit { try? FileManager.default.removeItem(atPath: path) }
        func file(_ name: String, mode: Int = 0o644, contents: String = "#!/bin/sh\nexit 0\n") throws -> String {
            let file = (path as NSString).appendingPathComponent(name)
            try contents.write(toFile: file, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: file)
            return file
        }
        func folder(_ name: String) throws -> String {
            let folder = (path as NSString).appendingPathComponent(name)
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            return folder
        }
    }

    static func error(_ body: () throws -> Void) -> ConfigurationError? {
        do {
            try body()
            return nil
        } catch let error as ConfigurationError {
            return error
        } catch {
            Issue.record("not a configuration error: \(error)")
            return nil
        }
    }

    @Test func aUsableDataDirectoryPassesAndNothingIsCreated() throws {
        let scratch = try Scratch()
        var config = Configuration()
        config.dataDirectory = scratch.path + "/data/deeper"
        for service in Configuration.services {
            try config.checkPaths(service: service, source: "t.yaml")
        }
        #expect(!FileManager.default.fileExists(atPath: scratch.path + "/data"))
    }

    @Test func dataDirectoryThatIsAFile() throws {
        let scratch = try Scratch()
        let file = try scratch.file("plain")
        var config = Configuration()
        config.dataDirectory = file
        let error = Self.error { try config.checkPaths(service: "scheduler", source: "t.yaml") }
        #expect(error?.field == "data_dir")
        #expect(error?.problem == "\(file) is not a directory")
        #expect(error?.description == "t.yaml: data_dir: \(file) is not a directory")
    }

    @Test func dataDirectoryUnderAFileCannotBeCreated() throws {
        let scratch = try Scratch()
        let file = try scratch.file("plain")
        var config = Configuration()
        config.dataDirectory = file + "/data"
        let error = Self.error { try config.checkPaths(service: "algorithm", source: "t.yaml") }
        #expect(error?.field == "data_dir")
        #expect(error?.problem == "\(file)/data cannot be created: \(file) is not a directory")
    }

    /// Root may write anywhere, so only an ordinary user sees a folder without write permission refused.
    @Test(.enabled(if: getuid() != 0)) func dataDirectoryNotWritable() throws {
        let scratch = try Scratch()
        let folder = try scratch.folder("locked")
        try FileManager.default.setAttributes([.posixPermissions: 0o555], ofItemAtPath: folder)
        defer { try? FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: folder) }
        var config = Configuration()
        config.dataDirectory = folder
        let error = Self.error { try config.checkPaths(service: "logger", source: "t.yaml") }
        #expect(error?.field == "data_dir")
        #expect(error?.problem.hasPrefix("\(folder) is not writable") == true)
    }

    /// A folder a service keeps in data_dir, taken by a file.
    @Test func aServiceFolderTakenByAFile() throws {
        let scratch = try Scratch()
        let logs = try scratch.file("logs")
        var config = Configuration()
        config.dataDirectory = scratch.path
        let error = Self.error { try config.checkPaths(service: "logger", source: "t.yaml") }
        #expect(error?.field == "data_dir")
        #expect(error?.problem == "\(logs) is not a directory")
        // The scheduler does not use logs/.
        try config.checkPaths(service: "scheduler", source: "t.yaml")
    }

    @Test func storePathThatIsADirectory() throws {
        let scratch = try Scratch()
        var config = Configuration()
        config.dataDirectory = scratch.path + "/data"
        config.store.path = try scratch.folder("store")
        let error = Self.error { try config.checkPaths(service: "processor", source: "t.yaml") }
        #expect(error?.field == "store.path")
        #expect(error?.problem == "\(config.store.path) is a directory, not a file")
        // Only processors open the store.
        try config.checkPaths(service: "algorithm", source: "t.yaml")
    }

    @Test func storePathInAFolderThatCannotBeCreated() throws {
        let scratch = try Scratch()
        let file = try scratch.file("plain")
        var config = Configuration()
        config.dataDirectory = scratch.path
        config.store.path = file + "/results.sqlite"
        let error = Self.error { try config.checkPaths(service: "processor", source: "t.yaml") }
        #expect(error?.field == "store.path")
        #expect(error?.problem == "\(file) is not a directory")
    }

    @Test func ipcEndpointInAMissingFolder() throws {
        let scratch = try Scratch()
        var config = Configuration()
        config.dataDirectory = scratch.path
        config.endpoints.runs = "ipc://\(scratch.path)/no/such/runs.sock"
        let error = Self.error { try config.checkPaths(service: "scheduler", source: "t.yaml") }
        #expect(error?.field == "endpoints.runs")
        #expect(error?.problem == "ipc://\(scratch.path)/no/such/runs.sock: the folder \(scratch.path)/no/such does not exist")
        // The algorithm connects to runs: nothing local is needed.
        try config.checkPaths(service: "algorithm", source: "t.yaml")
        config.endpoints.runs = "ipc://\(scratch.path)/" + String(repeating: "r", count: 120)
        #expect(Self.error { try config.checkPaths(service: "scheduler", source: "t.yaml") }?.problem.contains("at most 107") == true)
    }

    // MARK: Commands

    static func job(_ argv: [String], workdir: String = "", env: [String: String] = [:]) -> Configuration.Job {
        Configuration.Job(
            name: "j",
            every: .seconds(60),
            algorithm: .command(.init(argv: argv, workingDirectory: workdir, environment: env))
        )
    }

    @Test func jobCommandNotFound() throws {
        let scratch = try Scratch()
        var config = Configuration()
        config.jobs = [Self.job(["sh", "-c", "true"]), Self.job(["./train.py"], workdir: scratch.path)]
        let error = Self.error {
            try config.checkCommands(service: "algorithm", environment: ProcessInfo.processInfo.environment, source: "t")
        }
        #expect(error?.field == "jobs[1].command")
        #expect(error?.problem == "./train.py not found (looked for in \(scratch.path))")
        // Only the algorithm runs jobs' commands.
        try config.checkCommands(service: "scheduler", environment: [:], source: "t")
    }

    @Test func jobCommandNotExecutableIsFoundRelativeToItsWorkdir() throws {
        let scratch = try Scratch()
        _ = try scratch.file("train.py", mode: 0o644)
        var config = Configuration()
        config.jobs = [Self.job(["./train.py"], workdir: scratch.path)]
        let error = Self.error { try config.checkCommands(service: "algorithm", environment: [:], source: "t") }
        #expect(error?.field == "jobs[0].command")
        #expect(error?.problem == "./train.py is not executable (\(scratch.path)/train.py)")
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: scratch.path + "/train.py")
        try config.checkCommands(service: "algorithm", environment: [:], source: "t")
    }

    @Test func jobCommandOnPathAndTheJobsOwnPath() throws {
        let scratch = try Scratch()
        _ = try scratch.file("my-algo", mode: 0o755)
        var config = Configuration()
        config.jobs = [Self.job(["my-algo"])]
        let error = Self.error { try config.checkCommands(service: "algorithm", environment: ["PATH": "/usr/bin:/bin"], source: "t") }
        #expect(error?.field == "jobs[0].command")
        #expect(error?.problem == "my-algo not found on PATH (/usr/bin:/bin)")
        try config.checkCommands(service: "algorithm", environment: ["PATH": "/usr/bin:\(scratch.path)"], source: "t")
        // The job's env sets its own PATH, as the runner gives it.
        config.jobs = [Self.job(["my-algo"], env: ["PATH": scratch.path])]
        try config.checkCommands(service: "algorithm", environment: ["PATH": "/usr/bin"], source: "t")
    }

    @Test func jobWorkdirMustExist() throws {
        let scratch = try Scratch()
        var config = Configuration()
        config.jobs = [Self.job(["sh"], workdir: scratch.path + "/gone")]
        let error = Self.error {
            try config.checkCommands(service: "algorithm", environment: ProcessInfo.processInfo.environment, source: "t")
        }
        #expect(error?.field == "jobs[0].workdir")
        #expect(error?.problem == "\(scratch.path)/gone does not exist")
    }

    @Test func processorCommandNotExecutable() throws {
        let scratch = try Scratch()
        let script = try scratch.file("store.sh", mode: 0o600)
        var config = Configuration()
        config.processor.command = [script, "--fast"]
        let error = Self.error { try config.checkCommands(service: "processor", environment: [:], source: "t") }
        #expect(error?.field == "processor.command")
        #expect(error?.problem == "\(script) is not executable")
        config.processor.command = [scratch.path]
        #expect(
            Self.error { try config.checkCommands(service: "processor", environment: [:], source: "t") }?.problem.contains("not executable")
                == true
        )
        // The built-in store needs no command.
        config.processor.command = []
        try config.checkCommands(service: "processor", environment: [:], source: "t")
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

    // MARK: Binding

    @Test func aBindFailureNamesTheKey() async throws {
        let context = Context()
        let holder = try await AsyncSocket(context: context, configuration: .init(type: .pull, bind: ["tcp://127.0.0.1:*"]))
        let taken = holder.boundEndpoints[0]
        let endpoints = [(key: "endpoints.acks", endpoint: "tcp://127.0.0.1:1"), (key: "endpoints.runs", endpoint: taken)]
        let error = await #expect(throws: ConfigurationError.self) {
            try await ConfigurationError.binding(endpoints) {
                try await AsyncSocket(context: context, configuration: .init(type: .push, bind: [taken]))
            }
        }
        #expect(error?.field == "endpoints.runs")
        #expect(error?.problem == "\(taken) is already in use (Address already in use)")
        let missing = "ipc:///tmp/bt-no-such-\(UUID().uuidString.prefix(8))/x.sock"
        let other = await #expect(throws: ConfigurationError.self) {
            try await ConfigurationError.binding([(key: "endpoints.query", endpoint: missing)]) {
                try await AsyncSocket(context: context, configuration: .init(type: .reply, bind: [missing]))
            }
        }
        #expect(other?.field == "endpoints.query")
        #expect(other?.problem.hasPrefix("\(missing) cannot be bound") == true)
        await holder.close()
    }
}
