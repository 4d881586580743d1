import Foundation
public import Messaging

extension Configuration {
    /// One processing stage of a job, after its algorithm (`jobs[].stages`).
    public struct Stage: Sendable, Equatable {
        /// Unique within the job.
        public var name: String
        /// Per part (the default) or merge.
        public var mode: StageSpec.Mode = .part
        /// A built-in (`store`, `split`), or nil for a command.
        public var builtin: StageSpec.Builtin?
        /// `split`: lines per part.
        public var lines = 0
        /// A command's argv, its working directory and extra environment.
        public var command = Command(argv: [])
        /// How a command gets a single part: on standard input or as a file named by `BATON_INPUT`.
        public var input: CommandInput = .stdin
        /// A command's time limit; nil: `processor.timeout`.
        public var timeout: Duration?

        /// Creates a stage.
        public init(
            name: String,
            mode: StageSpec.Mode = .part,
            builtin: StageSpec.Builtin? = nil,
            lines: Int = 0,
            command: Command = Command(argv: [])
        ) {
            self.name = name
            self.mode = mode
            self.builtin = builtin
            self.lines = lines
            self.command = command
        }

        /// The stage as its tasks carry it, with `processor.timeout` for a command without its own.
        func spec(defaultTimeout: Duration) -> StageSpec {
            guard builtin == nil else { return StageSpec(name: name, mode: mode, builtin: builtin, lines: builtin == .split ? lines : nil) }
            let timeout = self.timeout ?? defaultTimeout
            return StageSpec(
                name: name,
                mode: mode,
                command: command.argv,
                env: command.environment.isEmpty ? nil : command.environment,
                workdir: command.workingDirectory.isEmpty ? nil : command.workingDirectory,
                input: input.rawValue,
                timeoutMs: max(Int(timeout / .milliseconds(1)), 1)
            )
        }
    }
}

extension Configuration.Job {
    /// The pipeline a run of this job starts with now: its `stages`, ending with the built-in `store`, or the
    /// default pipeline (the processor's own command or store) when it has none.
    public func pipeline(processor: Configuration.Processor) -> Pipeline {
        stages.isEmpty ? .default : Pipeline(stages: stages.map { $0.spec(defaultTimeout: processor.timeout) })
    }
}

extension Configuration.Stage: Decodable {
    public init(from decoder: any Decoder) throws {
        let reader = try MappingReader(
            decoder,
            allowed: ["name", "mode", "command", "builtin", "lines", "workdir", "env", "input", "timeout"]
        )
        guard reader.has("name") else {
            throw ConfigurationError(source: "", field: reader.field("name"), problem: "every stage needs a name")
        }
        self.init(name: try reader.value("name", ""))
        mode = try reader.choice("mode", mode)
        switch (reader.has("command"), reader.has("builtin")) {
        case (true, true):
            throw ConfigurationError(source: "", field: reader.field("builtin"), problem: "a stage has either command or builtin, not both")
        case (false, false):
            throw ConfigurationError(
                source: "",
                field: reader.field("command"),
                problem: "every stage needs command: [program, args...] or builtin: store or split"
            )
        case (true, false):
            let argv = try reader.value("command", [String]())
            guard !argv.isEmpty, !argv[0].isEmpty else {
                throw ConfigurationError(
                    source: "",
                    field: reader.field("command"),
                    problem: "must name a program, e.g. [python3, stage.py]"
                )
            }
            command = Configuration.Command(
                argv: argv,
                workingDirectory: try reader.value("workdir", ""),
                environment: try reader.value("env", [:])
            )
            input = try reader.choice("input", input)
            if reader.has("timeout") { timeout = try reader.duration("timeout", .zero) }
        case (false, true):
            let builtin = try reader.choice("builtin", StageSpec.Builtin.store)
            self.builtin = builtin
            for key in ["workdir", "env", "input", "timeout"] where reader.has(key) {
                throw ConfigurationError(source: "", field: reader.field(key), problem: "\(key) goes with command, not with a built-in")
            }
            if builtin == .split {
                guard reader.has("lines") else {
                    throw ConfigurationError(source: "", field: reader.field("lines"), problem: "split needs lines: N, the lines per part")
                }
                lines = try reader.value("lines", 0)
            }
        }
        if reader.has("lines"), builtin != .split {
            throw ConfigurationError(source: "", field: reader.field("lines"), problem: "lines goes with builtin: split")
        }
    }

    /// The first problem with a job's stages, named by its field from the job, e.g. `.stages[1].name`.
    static func firstProblem(in stages: [Configuration.Stage]) -> (field: String, problem: String)? {
        var names: Set<String> = []
        for (index, stage) in stages.enumerated() {
            let field = ".stages[\(index)]"
            if let problem = Configuration.Job.nameProblem(stage.name) { return ("\(field).name", problem) }
            guard names.insert(stage.name).inserted else { return ("\(field).name", "another stage is already named \"\(stage.name)\"") }
            if stage.builtin == .store {
                guard index == stages.count - 1 else { return ("\(field).builtin", "store is the last stage") }
                guard stage.mode == .part else { return ("\(field).mode", "store works per part") }
            }
            if stage.builtin == .split, !(1...10_000_000).contains(stage.lines) {
                return ("\(field).lines", "must be from 1 to 10000000 (got \(stage.lines))")
            }
            if let timeout = stage.timeout, timeout <= .zero { return ("\(field).timeout", "must be more than 0") }
        }
        if stages.last?.builtin != .store, names.contains("store") {
            return (".stages", "a stage named store that is not the built-in store must not be last: Baton appends the built-in store")
        }
        guard stages.count <= 64 else { return (".stages", "at most 64 stages (got \(stages.count))") }
        return nil
    }
}
