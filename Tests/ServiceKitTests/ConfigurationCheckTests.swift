import Foundation
import Glibc
import AlgorithmService
import Config
import LoggerService
import ProcessorService
import SchedulerService
import ServiceKit
import Testing
import ZMQ

/// The start-up checks: folders, files, ipc sockets and commands a configuration names, each problem an
/// error naming its key.
struct ConfigurationCheckTests {
    /// Every service's description, as `baton up` checks them.
    static let services: [ServiceDescription] = [.logger, .scheduler, .algorithm, .processor]

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
        for service in Self.services {
            try service.checkPaths(config, source: "t.yaml")
        }
        #expect(!FileManager.default.fileExists(atPath: scratch.path + "/data"))
    }

    @Test func dataDirectoryThatIsAFile() throws {
        let scratch = try Scratch()
        let file = try scratch.file("plain")
        var config = Configuration()
        config.dataDirectory = file
        let error = Self.error { try ServiceDescription.scheduler.checkPaths(config, source: "t.yaml") }
        #expect(error?.field == "data_dir")
        #expect(error?.problem == "\(file) is not a directory")
        #expect(error?.description == "t.yaml: data_dir: \(file) is not a directory")
    }

    @Test func dataDirectoryUnderAFileCannotBeCreated() throws {
        let scratch = try Scratch()
        let file = try scratch.file("plain")
        var config = Configuration()
        config.dataDirectory = file + "/data"
        let error = Self.error { try ServiceDescription.algorithm.checkPaths(config, source: "t.yaml") }
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
        let error = Self.error { try ServiceDescription.logger.checkPaths(config, source: "t.yaml") }
        #expect(error?.field == "data_dir")
        #expect(error?.problem.hasPrefix("\(folder) is not writable") == true)
    }

    /// A folder a service keeps in data_dir, taken by a file.
    @Test func aServiceFolderTakenByAFile() throws {
        let scratch = try Scratch()
        let logs = try scratch.file("logs")
        var config = Configuration()
        config.dataDirectory = scratch.path
        let error = Self.error { try ServiceDescription.logger.checkPaths(config, source: "t.yaml") }
        #expect(error?.field == "data_dir")
        #expect(error?.problem == "\(logs) is not a directory")
        // The scheduler does not use logs/.
        try ServiceDescription.scheduler.checkPaths(config, source: "t.yaml")
    }

    @Test func storePathThatIsADirectory() throws {
        let scratch = try Scratch()
        var config = Configuration()
        config.dataDirectory = scratch.path + "/data"
        config.store.path = try scratch.folder("store")
        let error = Self.error { try ServiceDescription.processor.checkPaths(config, source: "t.yaml") }
        #expect(error?.field == "store.path")
        #expect(error?.problem == "\(config.store.path) is a directory, not a file")
        // Only processors open the store.
        try ServiceDescription.algorithm.checkPaths(config, source: "t.yaml")
    }

    @Test func storePathInAFolderThatCannotBeCreated() throws {
        let scratch = try Scratch()
        let file = try scratch.file("plain")
        var config = Configuration()
        config.dataDirectory = scratch.path
        config.store.path = file + "/results.sqlite"
        let error = Self.error { try ServiceDescription.processor.checkPaths(config, source: "t.yaml") }
        #expect(error?.field == "store.path")
        #expect(error?.problem == "\(file) is not a directory")
    }

    @Test func ipcEndpointInAMissingFolder() throws {
        let scratch = try Scratch()
        var config = Configuration()
        config.dataDirectory = scratch.path
        config.endpoints.runs = "ipc://\(scratch.path)/no/such/runs.sock"
        let error = Self.error { try ServiceDescription.scheduler.checkPaths(config, source: "t.yaml") }
        #expect(error?.field == "endpoints.runs")
        #expect(error?.problem == "ipc://\(scratch.path)/no/such/runs.sock: the folder \(scratch.path)/no/such does not exist")
        // The algorithm connects to runs: nothing local is needed.
        try ServiceDescription.algorithm.checkPaths(config, source: "t.yaml")
        config.endpoints.runs = "ipc://\(scratch.path)/" + String(repeating: "r", count: 120)
        #expect(
            Self.error { try ServiceDescription.scheduler.checkPaths(config, source: "t.yaml") }?.problem.contains("at most 107") == true
        )
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
            try ServiceDescription.algorithm.checkCommands(config, ProcessInfo.processInfo.environment, "t")
        }
        #expect(error?.field == "jobs[1].command")
        #expect(error?.problem == "./train.py not found (looked for in \(scratch.path))")
        // Only the algorithm runs jobs' commands.
        try ServiceDescription.scheduler.checkCommands(config, [:], "t")
    }

    /// The alert command is the logger's to run: found at its start, not at the first failure it should report.
    @Test func alertCommandNotFound() throws {
        var config = Configuration()
        config.alerts.command = ["/nonexistent/notify", "--now"]
        let error = Self.error { try ServiceDescription.logger.checkCommands(config, ["PATH": "/usr/bin:/bin"], "t") }
        #expect(error?.field == "alerts.command")
        #expect(error?.problem == "/nonexistent/notify not found")
        config.alerts.command = ["sh", "-c", "cat"]
        try ServiceDescription.logger.checkCommands(config, ["PATH": "/usr/bin:/bin"], "t")
        config.alerts.command = ["/nonexistent/notify"]
        try ServiceDescription.algorithm.checkCommands(config, [:], "t")
    }

    @Test func jobCommandNotExecutableIsFoundRelativeToItsWorkdir() throws {
        let scratch = try Scratch()
        _ = try scratch.file("train.py", mode: 0o644)
        var config = Configuration()
        config.jobs = [Self.job(["./train.py"], workdir: scratch.path)]
        let error = Self.error { try ServiceDescription.algorithm.checkCommands(config, [:], "t") }
        #expect(error?.field == "jobs[0].command")
        #expect(error?.problem == "./train.py is not executable (\(scratch.path)/train.py)")
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: scratch.path + "/train.py")
        try ServiceDescription.algorithm.checkCommands(config, [:], "t")
    }

    @Test func jobCommandOnPathAndTheJobsOwnPath() throws {
        let scratch = try Scratch()
        _ = try scratch.file("my-algo", mode: 0o755)
        var config = Configuration()
        config.jobs = [Self.job(["my-algo"])]
        let error = Self.error { try ServiceDescription.algorithm.checkCommands(config, ["PATH": "/usr/bin:/bin"], "t") }
        #expect(error?.field == "jobs[0].command")
        #expect(error?.problem == "my-algo not found on PATH (/usr/bin:/bin)")
        try ServiceDescription.algorithm.checkCommands(config, ["PATH": "/usr/bin:\(scratch.path)"], "t")
        // The job's env sets its own PATH, as the runner gives it.
        config.jobs = [Self.job(["my-algo"], env: ["PATH": scratch.path])]
        try ServiceDescription.algorithm.checkCommands(config, ["PATH": "/usr/bin"], "t")
    }

    @Test func jobWorkdirMustExist() throws {
        let scratch = try Scratch()
        var config = Configuration()
        config.jobs = [Self.job(["sh"], workdir: scratch.path + "/gone")]
        let error = Self.error {
            try ServiceDescription.algorithm.checkCommands(config, ProcessInfo.processInfo.environment, "t")
        }
        #expect(error?.field == "jobs[0].workdir")
        #expect(error?.problem == "\(scratch.path)/gone does not exist")
    }

    @Test func processorCommandNotExecutable() throws {
        let scratch = try Scratch()
        let script = try scratch.file("store.sh", mode: 0o600)
        var config = Configuration()
        config.processor.command = [script, "--fast"]
        let error = Self.error { try ServiceDescription.processor.checkCommands(config, [:], "t") }
        #expect(error?.field == "processor.command")
        #expect(error?.problem == "\(script) is not executable")
        config.processor.command = [scratch.path]
        #expect(
            Self.error { try ServiceDescription.processor.checkCommands(config, [:], "t") }?.problem.contains("not executable")
                == true
        )
        // The built-in store needs no command.
        config.processor.command = []
        try ServiceDescription.processor.checkCommands(config, [:], "t")
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
