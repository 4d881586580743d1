public import Foundation
import Glibc

/// Runs a program to its end for a test, without holding a thread of the cooperative pool.
public enum Program {
    /// Runs the program at `path` with `arguments`, stdout and stderr together into one text.
    /// - Parameters:
    ///   - directory: Its working directory; by default this process's.
    ///   - environment: Variables added to this process's environment.
    ///   - timeout: SIGTERM after this long, SIGKILL 2 s later.
    /// - Throws: `CancellationError` when the calling task is cancelled (a test past its time limit) before the
    ///   program ended: it is killed then, and its status never read (Foundation traps on a running process's
    ///   status, which would take the whole test run down).
    public static func run(
        _ path: String,
        _ arguments: [String],
        directory: String? = nil,
        environment: [String: String] = [:],
        timeout: Duration? = nil
    ) async throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("baton-program-\(UUID().uuidString).out")
        FileManager.default.createFile(atPath: output.path, contents: nil)
        let handle = try FileHandle(forWritingTo: output)
        defer {
            try? handle.close()
            try? FileManager.default.removeItem(at: output)
        }
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        let exited = AsyncStream<Void> { continuation in process.terminationHandler = { _ in continuation.finish() } }
        try process.run()
        let stopper = timeout.map { limit in
            Task {
                try await Wait.deliberately(limit, because: "the program's time limit")
                process.terminate()
                try await Wait.deliberately(.seconds(2), because: "the program's time to stop after SIGTERM")
                if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            }
        }
        // The stream also ends when this task is cancelled: the process may still run then.
        for await _ in exited {}
        stopper?.cancel()
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()  // after SIGKILL: milliseconds
            throw CancellationError()
        }
        return (process.terminationStatus, (try? String(contentsOf: output, encoding: .utf8)) ?? "")
    }
}
