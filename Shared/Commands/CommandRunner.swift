import Foundation
import Config
import Glibc
import Subprocess
import SystemPackage
import Racing

/// Runs a user's command (an algorithm or a processor) as a child process, streaming its output lines
/// to callbacks, with a time limit after which it is stopped (SIGTERM, then SIGKILL after a grace period).
///
/// Every command runs behind the guard `baton-exec` (built beside the Baton executables), in a process group
/// of its own: stopping it (time limit, cancellation) signals the whole group; when the command exits,
/// anything it left running in its group is killed; and when this process dies, however and from whichever
/// thread, the guard sees its lifeline pipe close and kills the group. When `run` returns, no process of
/// the command's group is left.
public struct CommandRunner: Sendable {
    /// How a command ended.
    public enum Outcome: Sendable, Equatable, CustomStringConvertible {
        /// It exited with this status.
        case exited(Int32)
        /// A signal ended it.
        case signaled(Int32)
        /// It ran past its time limit and was stopped.
        case timedOut(Duration)

        /// True for exit status 0.
        public var succeeded: Bool { self == .exited(0) }

        public var description: String {
            switch self {
            case .exited(let code): "exited with status \(code)"
            case .signaled(let signal): "killed by signal \(signal)"
            case .timedOut(let limit): "stopped after its time limit of \(DurationText.format(limit))"
            }
        }
    }

    /// What the command reads on standard input.
    public enum Input: Sendable {
        /// Nothing (standard input is closed).
        case none
        /// The contents of this file. (A file rather than a pipe: a command that exits without reading its
        /// input then cannot make the writer fail.)
        case file(String)
    }

    /// The program and arguments.
    public var argv: [String]
    /// Variables added to the inherited environment.
    public var environment: [String: String]
    /// The working directory; `nil` for the current one.
    public var workingDirectory: String?
    /// How long the command may run.
    public var timeout: Duration
    /// How long after SIGTERM before SIGKILL.
    public var gracePeriod: Duration

    /// Creates a runner.
    /// - Parameters:
    ///   - argv: Program and arguments; a program without `/` is looked up on `PATH`.
    ///   - environment: Variables added to the inherited environment.
    ///   - workingDirectory: The working directory.
    ///   - timeout: The time limit.
    ///   - gracePeriod: Time between SIGTERM and SIGKILL when stopping it.
    public init(
        argv: [String],
        environment: [String: String] = [:],
        workingDirectory: String? = nil,
        timeout: Duration,
        gracePeriod: Duration = .seconds(5)
    ) {
        precondition(!argv.isEmpty, "a command needs a program")
        self.argv = argv
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.timeout = timeout
        self.gracePeriod = gracePeriod
    }

    /// Runs the command to its end. Cancelling the calling task stops the command the same way a timeout does.
    /// - Parameters:
    ///   - input: What to feed it on standard input.
    ///   - onOutput: Called with each line of standard output.
    ///   - onError: Called with each line of standard error.
    /// - Throws: When the program cannot be started (not found, not executable).
    public func run(
        input: Input = .none,
        onOutput: @escaping @Sendable (String) -> Void,
        onError: @escaping @Sendable (String) -> Void
    ) async throws -> Outcome {
        // The runner finishes once teardown has ended the process; a timeout's verdict is kept over its outcome.
        let outcome = try await firstResult(
            of: { try await self.execute(input: input, onOutput: onOutput, onError: onError) },
            {
                try? await Task.sleep(for: timeout)
                return Task.isCancelled ? nil : .timedOut(timeout)
            }
        )
        return outcome ?? .signaled(SIGKILL)
    }

    private func execute(
        input: Input,
        onOutput: @escaping @Sendable (String) -> Void,
        onError: @escaping @Sendable (String) -> Void
    ) async throws -> Outcome {
        let guardPath = try Self.guardPath()
        var inputPath: String?
        if case .file(let path) = input {
            close(try Self.openForReading(path).rawValue)
            inputPath = path
        }
        try Self.checkProgram(
            argv[0],
            workingDirectory: workingDirectory,
            path: environment["PATH"] ?? ProcessInfo.processInfo.environment["PATH"]
        )
        // The lifeline: the guard reads the read end (as its standard input); the write end stays here,
        // close-on-exec so that no other child inherits it, until the command has ended. If this process
        // dies first, the kernel closes it, and the guard kills the command's group.
        let lifeline = try LifelinePipe.make()
        defer { close(lifeline.write) }
        var arguments = ["--grace-ms", "\(Self.milliseconds(gracePeriod))"]
        if let inputPath { arguments += ["--input", inputPath] }
        arguments += ["--"] + argv
        let status = try await launch(
            guardPath: guardPath,
            arguments: arguments,
            input: .fileDescriptor(FileDescriptor(rawValue: lifeline.read), closeAfterSpawningProcess: true),
            onOutput: onOutput,
            onError: onError
        )
        switch status {
        case .exited(let code): return .exited(code)
        case .signaled(let signal): return .signaled(signal)
        }
    }

    private func launch<In: InputProtocol>(
        guardPath: String,
        arguments: [String],
        input: In,
        onOutput: @escaping @Sendable (String) -> Void,
        onError: @escaping @Sendable (String) -> Void
    ) async throws -> TerminationStatus {
        var options = PlatformOptions()
        // SIGTERM goes to the guard, which passes it on to the command's group and SIGKILLs the group after
        // the grace period. Only if the guard itself has not ended well after that is it killed.
        options.teardownSequence = [.gracefulShutDown(allowedDurationToNextStep: gracePeriod + .seconds(5))]
        // Its own process group, so a terminal's Ctrl-C reaches the supervisor, which then stops it cleanly.
        options.processGroupID = 0
        var updates: [Environment.Key: String?] = [:]
        for (key, value) in environment { updates[Environment.Key(stringLiteral: key)] = value }
        if let owner = CommandOwner.marker {
            updates[Environment.Key(stringLiteral: CommandOwner.variable)] = owner
        }
        let result = try await Subprocess.run(
            .path(FilePath(guardPath)),
            arguments: Arguments(arguments),
            environment: .inherit.updating(updates),
            workingDirectory: workingDirectory.flatMap { $0.isEmpty ? nil : FilePath($0) },
            platformOptions: options,
            input: input,
            output: .sequence,
            error: .sequence
        ) { execution in try await Self.pump(execution, onOutput: onOutput, onError: onError) }
        return result.terminationStatus
    }

    private static func pump<In: InputProtocol>(
        _ execution: Execution<In, SequenceOutput, SequenceOutput>,
        onOutput: @escaping @Sendable (String) -> Void,
        onError: @escaping @Sendable (String) -> Void
    ) async throws {
        let stdout = execution.standardOutput
        let stderr = execution.standardError
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { for try await line in stdout.strings() { onOutput(Self.chomp(line)) } }
            group.addTask { for try await line in stderr.strings() { onError(Self.chomp(line)) } }
            try await group.waitForAll()
        }
    }

    private static func openForReading(_ path: String) throws -> FileDescriptor {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CommandError("cannot open \(path) as the command's input: \(String(cString: strerror(errno)))") }
        return FileDescriptor(rawValue: fd)
    }

    /// The guard, `baton-exec`, beside the running executable (the test binary, too, lives beside it).
    /// - Throws: When it is not there: commands never run unguarded.
    public static func guardPath() throws -> String {
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let path = ((executable as NSString).deletingLastPathComponent as NSString).appendingPathComponent("baton-exec")
        guard access(path, X_OK) == 0 else {
            throw CommandError(
                "the command guard \(path) is missing; it is built with the Baton executables (`swift build`) and must be installed beside them"
            )
        }
        return path
    }

    /// Fails early, as a launch would, when the program does not exist or is not executable (looked up as
    /// ``ProgramLookup`` does: relative to the working directory, on the command's `PATH`).
    private static func checkProgram(_ program: String, workingDirectory: String?, path: String?) throws {
        switch ProgramLookup.resolve(program, workingDirectory: workingDirectory, path: path) {
        case .found:
            return
        case .notFound:
            throw CommandError(
                program.contains("/") ? "cannot run \(program): not found" : "cannot run \(program): not found on PATH",
                code: .notFound
            )
        case .notExecutable(let found):
            throw CommandError("cannot run \(program): \(found) is not an executable file", code: .notExecutable)
        }
    }

    private static func milliseconds(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
    }

    private static func chomp(_ line: String) -> String {
        line.hasSuffix("\n") ? String(line.dropLast()) : line
    }
}

/// A command that could not be started as asked.
public struct CommandError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure it is.
    public struct Code: Sendable, Equatable, CustomStringConvertible {
        private enum Value: Sendable, Equatable { case other, notFound, notExecutable }
        private let value: Value

        /// Anything else: the guard is missing, the input cannot be opened, no pipe.
        public static let other = Code(value: .other)
        /// The program does not exist (it may appear later, e.g. on a volume not yet mounted).
        public static let notFound = Code(value: .notFound)
        /// The program exists but is not an executable file: trying again cannot help until someone fixes it.
        public static let notExecutable = Code(value: .notExecutable)

        public var description: String { "\(value)" }
    }

    public var description: String
    /// What kind of failure it is.
    public var code: Code
    init(_ description: String, code: Code = .other) {
        self.description = description
        self.code = code
    }
}
