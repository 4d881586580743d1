import Foundation
import Glibc
import Testing
import ZMQ

/// The real executables refuse an unusable configuration at start-up with exit status 2 and a message naming
/// the key: folders and files they cannot use, commands they cannot run, sockets they cannot bind.
struct ConfigurationStartupTests {
    /// A job whose command is given (the stack's data directory and ipc endpoints come first).
    static func job(command: String) -> String {
        """
        jobs:
          - name: train
            every: 1h
            command: \(command)

        """
    }

    /// Waits (polling, without blocking the pool) for a started process to exit; `nil` if it still runs.
    static func exitStatus(_ process: Process, within timeout: Duration = .seconds(30)) async throws -> Int32? {
        try await TestStack.exited(process, within: timeout) ? process.terminationStatus : nil
    }

    enum Case: String, CaseIterable, CustomTestStringConvertible {
        case dataDirectoryIsAFile, storePathIsADirectory, jobCommandMissing, processorCommandNotExecutable, ipcFolderMissing
        var testDescription: String { rawValue }
    }

    @Test(.timeLimit(.minutes(2)), arguments: Case.allCases)
    func unusableSettingsExitTwoNamingTheKey(_ problem: Case) async throws {
        let yaml =
            switch problem {
            case .jobCommandMissing: Self.job(command: "[./train.py, --fast]")
            case .processorCommandNotExecutable: "processor:\n  command: [PROCESSOR]\n"
            default: ""
            }
        try await TestStack.with("cfg-\(problem.rawValue.prefix(4))", yaml: yaml) { stack in
            let file = stack.directory + "/plain"
            try "#!/bin/sh\nexit 0\n".write(toFile: file, atomically: true, encoding: .utf8)  // not executable: mode 644
            try stack.rewrite(yaml: yaml.replacingOccurrences(of: "PROCESSOR", with: file))
            let (executable, environment, expected): (String, [String: String], String) =
                switch problem {
                case .dataDirectoryIsAFile:
                    ("baton-scheduler", ["BATON_DATA_DIR": file], "data_dir: \(file) is not a directory")
                case .storePathIsADirectory:
                    ("baton-processor", ["BATON_STORE_PATH": stack.directory], "store.path: \(stack.directory) is a directory, not a file")
                case .jobCommandMissing:
                    ("baton-algorithm", [:], "jobs[0].command: ./train.py not found (looked for in \(TestStack.repository))")
                case .processorCommandNotExecutable:
                    ("baton-processor", [:], "processor.command: \(file) is not executable")
                case .ipcFolderMissing:
                    (
                        "baton-logger", ["BATON_ENDPOINT_STATUS_IN": "ipc://\(stack.directory)/gone/in"],
                        "endpoints.status_in: ipc://\(stack.directory)/gone/in: the folder \(stack.directory)/gone does not exist"
                    )
                }
            let process = try stack.start("service", executable, environment: environment)
            let status = try await Self.exitStatus(process)
            let stderr = stack.stderr("service")
            #expect(status == 2, "\(executable) \(status.map { "exited \($0)" } ?? "still runs"): \(stderr)")
            #expect(stderr.contains("\(executable): configuration error: \(stack.configPath): \(expected)"), "\(stderr)")
        }
    }

    /// `baton` commands that load the configuration refuse a bad one the same way.
    @Test(.timeLimit(.minutes(1)))
    func batonCommandExitsTwoOnAnEnvList() async throws {
        try await TestStack.with("cfg-env", yaml: "processor:\n  env: {A: [1, 2]}\n") { stack in
            let process = try stack.start("status", "baton", ["status", "--config", stack.configPath])
            let status = try await Self.exitStatus(process)
            #expect(status == 2, "\(stack.stderr("status"))")
            #expect(
                stack.stderr("status").contains(
                    "baton status: configuration error: \(stack.configPath): processor.env.A: expected a string"
                )
            )
        }
    }

    /// `baton up` checks every service's folders and commands before starting any.
    @Test(.timeLimit(.minutes(1)))
    func upRefusesAMissingJobCommandBeforeStarting() async throws {
        try await TestStack.with("cfg-up", yaml: Self.job(command: "[/nonexistent/train.py]")) { stack in
            let up = try stack.start("up", "baton", ["up", "--config", stack.configPath])
            let status = try await Self.exitStatus(up)
            #expect(status == 2, "\(stack.stdout("up")) \(stack.stderr("up"))")
            #expect(
                stack.stderr("up").contains(
                    "baton up: configuration error: \(stack.configPath): jobs[0].command: /nonexistent/train.py not found"
                )
            )
            #expect(!stack.stdout("up").contains("starting"))
        }
    }

    /// An endpoint already in use names its key, for a socket bound while the service is built (the
    /// scheduler's runs) and one bound once it runs (the logger's status_out).
    @Test(.timeLimit(.minutes(1)), arguments: [("baton-scheduler", "RUNS", "runs"), ("baton-logger", "STATUS_OUT", "status_out")])
    func endpointInUseNamesItsKey(executable: String, variable: String, key: String) async throws {
        let context = Context()
        let holder = try await AsyncSocket(context: context, configuration: .init(type: .pull, bind: ["tcp://127.0.0.1:*"]))
        let taken = holder.boundEndpoints[0]
        try await TestStack.with("cfg-bind", yaml: "") { stack in
            let process = try stack.start("service", executable, environment: ["BATON_ENDPOINT_\(variable)": taken])
            let status = try await Self.exitStatus(process)
            let stderr = stack.stderr("service")
            #expect(status == 2, "\(stderr)")
            #expect(
                stderr.contains(
                    "configuration error: \(stack.configPath): endpoints.\(key): \(taken) is already in use (Address already in use)"
                ),
                "\(stderr)"
            )
        }
        await holder.close()
    }

    /// A processor command that stops being executable while the processor runs: the result is dead-lettered
    /// at its first failure with the reason, not after every retry.
    @Test(.timeLimit(.minutes(2)))
    func commandNotExecutableAtRunTimeIsDeadAtOnce() async throws {
        let script = "/tmp/bt-noexec-\(UUID().uuidString.prefix(8)).sh"
        try "#!/bin/sh\ncat >/dev/null\n".write(toFile: script, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: script)
        defer { try? FileManager.default.removeItem(atPath: script) }
        let processor = """
            processor:
              command: [\(script)]
              retries: 5
              backoff: 10s
              backoff_max: 20s
            """
        // No scheduled fire during the test (the next slot is 30 minutes away): the run is triggered by hand.
        let yaml = DeliveryTests.quickJob(every: "1d", anchor: Date().addingTimeInterval(1800), extra: processor)
        try await TestStack.with("noexec", yaml: yaml) { stack in
            try stack.startServices(processors: 1)
            // Started with an executable command (the start-up check passes); then it loses its execute bit.
            let started = try await stack.waitUntil(timeout: .seconds(30)) { stack.stderr("processor-1").contains("started") }
            #expect(started, "\(stack.stderr("processor-1"))")
            try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: script)
            let triggered = try await stack.waitUntil(timeout: .seconds(30)) { try await stack.baton(["trigger", "quick"]).status == 0 }
            #expect(triggered, "\(stack.stderr("scheduler"))")
            let dead = try await stack.waitUntil(timeout: .seconds(40)) { stack.outboxCounts()["dead"] == 1 }
            #expect(dead, "outbox: \(stack.outboxCounts()); processor: \(stack.stderr("processor-1").suffix(800))")
            let listed = try await stack.baton(["results", "--state", "dead"])
            #expect(listed.output.contains("failures=1"), "\(listed.output)")
            #expect(listed.output.contains("is not an executable file"), "\(listed.output)")
        }
    }
}

extension TestStack {
    /// The text a process wrote to stdout.
    func stdout(_ name: String) -> String {
        (try? String(contentsOfFile: "\(directory)/\(name).out", encoding: .utf8)) ?? ""
    }
}
