public import Config
import Foundation

/// The start-up check of the commands a service runs: each is found the way ``CommandRunner`` finds it when it
/// runs (see ``ProgramLookup``), and its `workdir` can be entered. A problem is a ``ConfigurationError`` naming
/// the key, found before the service starts rather than an hour later, when a job first runs.
public enum CommandCheck {
    /// Checks commands in order; the first problem is thrown.
    /// - Parameters:
    ///   - commands: Each command with the key it is configured under, e.g. `jobs[0]` or `processor`.
    ///   - environment: The process environment (its `PATH` finds commands).
    ///   - source: The file named in errors.
    public static func check(
        _ commands: [(field: String, command: Configuration.Command)],
        environment: [String: String],
        source: String
    ) throws(ConfigurationError) {
        for (field, command) in commands {
            if let problem = PathCheck.workingDirectory(command.workingDirectory) {
                throw ConfigurationError(source: source, field: "\(field).workdir", problem: problem)
            }
            let program = command.argv[0]
            let path = command.environment["PATH"] ?? environment["PATH"]
            let problem: String? =
                switch ProgramLookup.resolve(program, workingDirectory: command.workingDirectory, path: path) {
                case .found: nil
                case .notFound where program.contains("/"): "\(program) not found" + relativeTo(program, command.workingDirectory)
                case .notFound: "\(program) not found on PATH (\(path ?? ProgramLookup.defaultPath))"
                case .notExecutable(let found):
                    found == program ? "\(program) is not executable" : "\(program) is not executable (\(found))"
                }
            if let problem { throw ConfigurationError(source: source, field: "\(field).command", problem: problem) }
        }
    }

    private static func relativeTo(_ program: String, _ workingDirectory: String) -> String {
        guard !program.hasPrefix("/") else { return "" }
        let base = workingDirectory.isEmpty ? FileManager.default.currentDirectoryPath : workingDirectory
        return " (looked for in \(base))"
    }
}
