import Foundation
import Glibc

/// Finds the program a command's `argv[0]` names, the way the guard's `execvp` will when the command runs:
/// a name with a `/` is a path, relative to the command's working directory; any other name is looked up on
/// `PATH` (the command's own `PATH` if its environment sets one, else the service's), whose relative entries
/// (and an empty one, meaning `.`) are relative to the working directory too.
///
/// Used by ``CommandRunner`` just before it starts a command and by the start-up checks of the services
/// that run commands, so both give the same answer.
public enum ProgramLookup {
    /// Where a program was found, or why it was not.
    public enum Result: Sendable, Equatable {
        /// An executable file, at this path.
        case found(String)
        /// Nothing by that name (at that path, or in any `PATH` folder).
        case notFound
        /// Something by that name exists but cannot be run: no execute permission, or a directory.
        case notExecutable(String)
    }

    /// The `PATH` used when neither the command nor the process sets one (glibc's `execvp` default).
    public static let defaultPath = "/usr/local/bin:/usr/bin:/bin"

    /// Resolves a program.
    /// - Parameters:
    ///   - program: `argv[0]`.
    ///   - workingDirectory: The command's working directory; `nil` or empty for the process's own.
    ///   - path: The `PATH` the command gets; `nil` for ``defaultPath``.
    public static func resolve(_ program: String, workingDirectory: String?, path: String?) -> Result {
        let base = workingDirectory.flatMap { $0.isEmpty ? nil : $0 }
        func located(_ name: String) -> String {
            guard !name.hasPrefix("/"), let base else { return name }
            let relative = name.hasPrefix("./") ? String(name.dropFirst(2)) : name
            return base.hasSuffix("/") ? base + relative : base + "/" + relative
        }
        if program.contains("/") { return check(located(program)) }
        var unusable: String?
        for directory in (path ?? defaultPath).split(separator: ":", omittingEmptySubsequences: false) {
            let candidate = located((directory.isEmpty ? "." : String(directory)) + "/" + program)
            switch check(candidate) {
            case .found: return .found(candidate)
            case .notExecutable(let path): unusable = unusable ?? path
            case .notFound: continue
            }
        }
        return unusable.map(Result.notExecutable) ?? .notFound
    }

    private static func check(_ candidate: String) -> Result {
        var info = stat()
        guard stat(candidate, &info) == 0 else { return .notFound }
        guard (info.st_mode & S_IFMT) != S_IFDIR, access(candidate, X_OK) == 0 else { return .notExecutable(candidate) }
        return .found(candidate)
    }
}
