import Foundation
import Glibc
import TestSupport

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
        let (status, output) = try await Program.run(path, arguments, directory: directory, environment: environment, timeout: timeout)
        return Outcome(status: status, output: output)
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
