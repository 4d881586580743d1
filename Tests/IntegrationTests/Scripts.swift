import Foundation
import Glibc

/// Runs the repository's scripts (`scripts/*.py`) and other helper programs from the tests.
enum Scripts {
    struct Outcome {
        var status: Int32
        var output: String
    }

    /// Runs `interpreter arguments` (looked up on PATH) from the repository root, stdout and stderr together.
    /// With `timeout`, the program is sent SIGTERM then, and SIGKILL two seconds later.
    static func run(
        _ interpreter: String,
        _ arguments: [String],
        directory: String = TestStack.repository,
        environment: [String: String] = [:],
        timeout: Duration? = nil
    ) async throws -> Outcome {
        try await execute("/usr/bin/env", [interpreter] + arguments, directory: directory, environment: environment, timeout: timeout)
    }

    /// Runs the program at `path` with `arguments` from `directory`, stdout and stderr together, and waits for it
    /// without blocking a thread of the cooperative pool. With `timeout`, as ``run(_:_:directory:environment:timeout:)``.
    static func execute(
        _ path: String,
        _ arguments: [String],
        directory: String = TestStack.repository,
        environment: [String: String] = [:],
        timeout: Duration? = nil
    ) async throws -> Outcome {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("baton-script-\(UUID().uuidString).out")
        FileManager.default.createFile(atPath: output.path, contents: nil)
        let handle = try FileHandle(forWritingTo: output)
        defer {
            try? handle.close()
            try? FileManager.default.removeItem(at: output)
        }
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        // Waited for without blocking a thread of the cooperative pool (a harness runs for minutes).
        let exited = AsyncStream<Void> { continuation in
            process.terminationHandler = { _ in continuation.finish() }
        }
        try process.run()
        let stopper = timeout.map { limit in
            Task {
                try await Deliberately.wait(limit, because: "the script's time limit")
                process.terminate()
                try await Deliberately.wait(.seconds(2), because: "the script's time to stop after SIGTERM")
                if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            }
        }
        for await _ in exited {}
        stopper?.cancel()
        // The stream also ends when this task is cancelled (a test past its time limit): the process may still
        // run, and Foundation traps on the status of a running process, taking the whole test run down.
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()  // after SIGKILL: milliseconds
            throw CancellationError()
        }
        let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
        return Outcome(status: process.terminationStatus, output: text)
    }

    /// A Python 3 that can import every module named (e.g. `zmq`, `jsonschema`): `python3` on PATH, else
    /// Debian's `/usr/bin/python3` (where `scripts/install-deps.sh --test` installs them).
    static func python(with modules: [String]) async -> String? {
        let probe = modules.map { "import \($0)" }.joined(separator: "; ")
        for candidate in ["python3", "/usr/bin/python3"] {
            if let outcome = try? await run(candidate, ["-c", probe]), outcome.status == 0 { return candidate }
        }
        return nil
    }
}
