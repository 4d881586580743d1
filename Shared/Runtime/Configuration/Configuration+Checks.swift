public import Foundation
import Glibc
import ZMQ

/// Start-up checks of what a configuration names outside itself: folders and files a service will write,
/// sockets it will bind, commands it will run. Each problem is a ``ConfigurationError`` naming the key, found
/// before the service starts rather than when it first needs the thing (an hour later, for a job's command).
extension Configuration {
    /// The services that check a configuration at start-up, by the name they run under.
    public static let services = ["logger", "scheduler", "algorithm", "processor"]

    /// The endpoints a service binds, as `(key, address)`: the others it connects to, which needs nothing local.
    public func boundEndpoints(service: String) -> [(key: String, endpoint: String)] {
        switch service {
        case "scheduler":
            [("endpoints.runs", endpoints.runs), ("endpoints.control", endpoints.control), ("endpoints.reports", endpoints.reports)]
        case "algorithm":
            [
                ("endpoints.results", endpoints.results), ("endpoints.acks", endpoints.acks),
                ("endpoints.algorithm_control", endpoints.algorithmControl),
            ]
        case "logger":
            [
                ("endpoints.status_in", endpoints.statusIn), ("endpoints.status_out", endpoints.statusOut),
                ("endpoints.query", endpoints.query),
            ]
        default: []
        }
    }

    /// Everything a service checks before it starts: ``checkPaths(service:source:)`` then
    /// ``checkCommands(service:environment:source:)``.
    /// - Parameters:
    ///   - service: `logger`, `scheduler`, `algorithm` or `processor`.
    ///   - environment: The process environment (its `PATH` finds commands).
    ///   - source: The file named in errors.
    public func checkStartup(service: String, environment: [String: String], source: String) throws(ConfigurationError) {
        try checkPaths(service: service, source: source)
        try checkCommands(service: service, environment: environment, source: source)
    }

    /// Checks that the service can write what it writes: `data_dir` and the folders it keeps there, the result
    /// store (processors), and the folders of the `ipc://` endpoints it binds. Creates nothing.
    public func checkPaths(service: String, source: String) throws(ConfigurationError) {
        func fail(_ field: String, _ problem: String) -> ConfigurationError {
            ConfigurationError(source: source, field: field, problem: problem)
        }
        if let problem = PathCheck.directory(dataDirectory) { throw fail("data_dir", problem) }
        let subfolders: [String] =
            switch service {
            case "scheduler": ["run", "scheduler"]
            case "algorithm": ["run", "algorithm", "raw"]
            case "processor": ["run", "processor"]
            case "logger": ["run", "logs", "logger"]
            default: ["run"]
            }
        for folder in subfolders {
            let path = PathCheck.join(dataDirectory, folder)
            if let problem = PathCheck.directory(path) { throw fail("data_dir", problem) }
        }
        if service == "logger", let problem = PathCheck.file(LogFiles.eventLog(dataDirectory: dataDirectory)) {
            throw fail("data_dir", problem)
        }
        if service == "processor",
            let problem = PathCheck.file(store.path.isEmpty ? PathCheck.join(dataDirectory, "results.sqlite") : store.path)
        {
            throw fail(store.path.isEmpty ? "data_dir" : "store.path", problem)
        }
        for (key, endpoint) in boundEndpoints(service: service) where endpoint.hasPrefix("ipc://") {
            if let problem = PathCheck.socket(String(endpoint.dropFirst("ipc://".count))) {
                throw fail(key, "\(endpoint): \(problem)")
            }
        }
    }

    /// Checks that the commands the service runs can be started: each job's `command` (the algorithm) or
    /// `processor.command` (a processor), found the way ``CommandRunner`` finds it when it runs (see
    /// ``ProgramLookup``), and their `workdir`s.
    public func checkCommands(service: String, environment: [String: String], source: String) throws(ConfigurationError) {
        var commands: [(field: String, command: Command)] = []
        if service == "algorithm" {
            for (index, job) in jobs.enumerated() {
                if case .command(let command) = job.algorithm { commands.append(("jobs[\(index)]", command)) }
            }
        }
        if service == "processor", !processor.command.isEmpty {
            commands.append(
                (
                    "processor",
                    Command(argv: processor.command, workingDirectory: processor.workingDirectory, environment: processor.environment)
                )
            )
        }
        for (field, command) in commands {
            if let problem = PathCheck.workingDirectory(command.workingDirectory) {
                throw ConfigurationError(source: source, field: "\(field).workdir", problem: problem)
            }
            let program = command.argv[0]
            let path = command.environment["PATH"] ?? environment["PATH"]
            let problem: String? =
                switch ProgramLookup.resolve(program, workingDirectory: command.workingDirectory, path: path) {
                case .found: nil
                case .notFound where program.contains("/"): "\(program) not found" + Self.relativeTo(program, command.workingDirectory)
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

extension ConfigurationError {
    /// Runs `bind`, which binds the endpoints given; a failure to bind one of them becomes an error naming its
    /// key, e.g. `endpoints.runs: tcp://127.0.0.1:7601 is already in use (Address already in use)`. The ZMQ
    /// wrapper knows nothing of configuration: its error names the call (`zmq_bind(<endpoint>)`), which is
    /// matched here. The source is left empty for the caller (``ServiceRunner``) to fill in.
    public static func binding<T>(
        _ endpoints: [(key: String, endpoint: String)],
        _ bind: () async throws -> T
    ) async throws -> T {
        do {
            return try await bind()
        } catch let error as ZMQError {
            guard let (key, endpoint) = endpoints.first(where: { error.operation == "zmq_bind(\($0.endpoint))" }) else { throw error }
            let problem =
                switch error.code {
                case EADDRINUSE: "\(endpoint) is already in use (\(error.message))"
                case EADDRNOTAVAIL: "\(endpoint) is not an address of this host (\(error.message))"
                default: "\(endpoint) cannot be bound (\(error.message))"
                }
            throw ConfigurationError(source: "", field: key, problem: problem)
        }
    }
}

/// Where the logger writes; here so that the start-up checks need not know the logger.
enum LogFiles {
    static func eventLog(dataDirectory: String) -> String {
        PathCheck.join(dataDirectory, "logs/events.jsonl")
    }
}

/// Whether a path can be used as a service will use it, as a problem in words (`nil`: fine).
enum PathCheck {
    /// A folder the service writes into: exists and is a writable directory, or can be created.
    static func directory(_ path: String) -> String? {
        switch status(path) {
        case .directory:
            return access(path, W_OK | X_OK) == 0 ? nil : "\(path) is not writable (\(String(cString: strerror(errno))))"
        case .other:
            return "\(path) is not a directory"
        case .failed(let code):
            return "\(path) cannot be used (\(String(cString: strerror(code))))"
        case .missing:
            return creatable(path)
        }
    }

    /// A file the service creates or rewrites, with companions beside it (SQLite's `-wal`): not a directory,
    /// writable if it exists, in a folder that is writable or can be created.
    static func file(_ path: String) -> String? {
        switch status(path) {
        case .directory:
            return "\(path) is a directory, not a file"
        case .other:
            if access(path, W_OK) != 0 { return "\(path) is not writable (\(String(cString: strerror(errno))))" }
        case .failed(let code):
            return "\(path) cannot be used (\(String(cString: strerror(code))))"
        case .missing:
            break
        }
        return directory(parent(of: path))
    }

    /// The file of a bound `ipc://` socket: its folder must exist (libzmq does not create it) and be writable.
    static func socket(_ path: String) -> String? {
        // sun_path holds 108 bytes, the last a NUL.
        guard path.utf8.count < 108 else { return "the path is \(path.utf8.count) bytes long; a Unix socket path can have at most 107" }
        let folder = parent(of: path)
        switch status(folder) {
        case .missing: return "the folder \(folder) does not exist"
        case .other: return "\(folder) is not a directory"
        default: break
        }
        if case .directory = status(path) { return "\(path) is a directory" }
        return directory(folder)
    }

    /// A command's working directory: empty (the service's own), or an existing directory.
    static func workingDirectory(_ path: String) -> String? {
        guard !path.isEmpty else { return nil }
        switch status(path) {
        case .directory: return access(path, X_OK) == 0 ? nil : "\(path) cannot be entered (\(String(cString: strerror(errno))))"
        case .missing: return "\(path) does not exist"
        case .other: return "\(path) is not a directory"
        case .failed(let code): return "\(path) cannot be used (\(String(cString: strerror(code))))"
        }
    }

    private enum Status { case directory, other, missing, failed(Int32) }

    private static func status(_ path: String) -> Status {
        var info = stat()
        guard stat(path, &info) == 0 else {
            // ENOTDIR: a folder on the way is a file; reported by `creatable` as such.
            return errno == ENOENT || errno == ENOTDIR ? .missing : .failed(errno)
        }
        return (info.st_mode & S_IFMT) == S_IFDIR ? .directory : .other
    }

    /// A missing folder can be created when its nearest existing ancestor is a writable directory.
    private static func creatable(_ path: String) -> String? {
        var ancestor = parent(of: path)
        while true {
            switch status(ancestor) {
            case .directory:
                guard access(ancestor, W_OK | X_OK) == 0 else {
                    return "\(path) cannot be created: \(ancestor) is not writable (\(String(cString: strerror(errno))))"
                }
                return nil
            case .other:
                return "\(path) cannot be created: \(ancestor) is not a directory"
            case .failed(let code):
                return "\(path) cannot be created: \(ancestor) cannot be used (\(String(cString: strerror(code))))"
            case .missing:
                let next = parent(of: ancestor)
                if next == ancestor { return "\(path) cannot be created" }
                ancestor = next
            }
        }
    }

    /// `folder/name`. (Plain string work: NSString's path methods trap on some long non-ASCII paths, and
    /// these are checked before anything else touches them.)
    static func join(_ folder: String, _ name: String) -> String {
        folder.hasSuffix("/") ? folder + name : folder + "/" + name
    }

    /// The folder a path is in, `.` for a bare name.
    static func parent(of path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return "." }
        var folder = trimmed[..<slash]
        while folder.count > 1, folder.hasSuffix("/") { folder = folder.dropLast() }
        return folder.isEmpty ? "/" : String(folder)
    }
}
