import Foundation
import Testing

/// Runs the black-box harnesses in `scripts/` against the built executables: `chaos.py` (60 s of SIGKILLs and
/// SIGSTOPs, then its own slot-by-slot oracle and `baton audit`) and `bus_churn.py --start` (prefix subscribers
/// coming and going on the status bus). Both exit 0 only if every check passed; their output is shown otherwise.
@Suite(.serialized)
struct ChaosHarnessTests {
    /// The repository root, found from this file.
    static let repository: String = {
        var directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while directory.path != "/" {
            if FileManager.default.fileExists(atPath: directory.appendingPathComponent("Package.swift").path) {
                return directory.path
            }
            directory = directory.deletingLastPathComponent()
        }
        return FileManager.default.currentDirectoryPath
    }()

    struct Outcome {
        var status: Int32
        var output: String
    }

    /// Runs `interpreter script arguments` from the repository root, collecting stdout and stderr together.
    static func run(_ interpreter: String, _ arguments: [String]) async throws -> Outcome {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [interpreter] + arguments
        process.currentDirectoryURL = URL(fileURLWithPath: repository)
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("chaos-harness-\(UUID().uuidString).out")
        FileManager.default.createFile(atPath: output.path, contents: nil)
        let handle = try FileHandle(forWritingTo: output)
        defer {
            try? handle.close()
            try? FileManager.default.removeItem(at: output)
        }
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        // Waited for without blocking a thread of the cooperative pool (the harness runs for a minute).
        let exited = AsyncStream<Void> { continuation in
            process.terminationHandler = { _ in continuation.finish() }
        }
        try process.run()
        for await _ in exited {}
        let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
        return Outcome(status: process.terminationStatus, output: text)
    }

    /// A Python 3 that can import zmq (pyzmq): `python3` on PATH, else Debian's `/usr/bin/python3`.
    static func pythonWithZMQ() async -> String? {
        for candidate in ["python3", "/usr/bin/python3"] {
            if let outcome = try? await run(candidate, ["-c", "import zmq"]), outcome.status == 0 { return candidate }
        }
        return nil
    }

    @Test(.timeLimit(.minutes(10)))
    func chaosHarnessFindsEverySlotStoredOnce() async throws {
        let outcome = try await Self.run(
            "python3",
            ["scripts/chaos.py", "--duration", "60", "--bin", Self.repository + "/.build/debug"]
        )
        #expect(outcome.status == 0, "scripts/chaos.py exited \(outcome.status):\n\(outcome.output)")
    }

    /// The same under `baton up`, which is itself killed with -9 now and then: its services must die with it.
    @Test(.timeLimit(.minutes(10)))
    func chaosUnderBatonUpLeavesNothingBehind() async throws {
        let outcome = try await Self.run(
            "python3",
            ["scripts/chaos.py", "--duration", "40", "--mode", "up", "--bin", Self.repository + "/.build/debug"]
        )
        #expect(outcome.status == 0, "scripts/chaos.py --mode up exited \(outcome.status):\n\(outcome.output)")
    }

    @Test(.timeLimit(.minutes(5)))
    func statusBusSurvivesPrefixSubscriberChurn() async throws {
        let python = try #require(await Self.pythonWithZMQ(), "no python3 with pyzmq (pip install pyzmq, or apt-get install python3-zmq)")
        let outcome = try await Self.run(
            python,
            ["scripts/bus_churn.py", "--start", "--bin", Self.repository + "/.build/debug"]
        )
        #expect(outcome.status == 0, "scripts/bus_churn.py --start exited \(outcome.status):\n\(outcome.output)")
    }
}
