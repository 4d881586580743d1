public import Foundation
import Messaging
public import Scheduling

extension Configuration {
    /// One scheduled job.
    public struct Job: Sendable, Equatable {
        /// Unique name; letters, digits, `-`, `_`, `.`.
        public var name: String
        /// When it fires.
        public var trigger: Trigger
        /// The IANA time zone cron fields are read in (default UTC).
        // UTC is always known; the fallback only satisfies the type.
        public var timeZone: TimeZone = TimeZone(identifier: "UTC") ?? TimeZone.current
        /// A random delay from 0 to this added to each fire (the logical time stays the slot).
        public var jitter: Duration = .zero
        /// What to do with slots missed while the scheduler was down or the job paused.
        public var misfire: MisfirePolicy = .latest
        /// Missed slots older than this are skipped whatever the policy; `nil` keeps all.
        public var grace: Duration?
        /// What to do when the previous run is still running at the next fire.
        public var overlap: OverlapPolicy = .forbid
        /// What computes the result.
        public var algorithm: AlgorithmSpec
        /// Longest a run may take.
        public var timeout: Duration = .seconds(3600)
        /// How many times a failed run is tried again (after 1 s, 2 s, 4 s … up to 1 min).
        public var retries = 0
        /// The processing stages after the algorithm, in order; empty: the processor's own command or store.
        public var stages: [Stage] = []

        /// Creates a job.
        public init(name: String, trigger: Trigger, algorithm: AlgorithmSpec) {
            self.name = name
            self.trigger = trigger
            self.algorithm = algorithm
        }

        /// Creates an interval job.
        public init(name: String, every: Duration, algorithm: AlgorithmSpec) {
            self.init(name: name, trigger: .interval(every: every, anchor: Date(timeIntervalSince1970: 0)), algorithm: algorithm)
        }

        /// The job's fire times.
        public var schedule: any Schedule {
            switch trigger {
            case .interval(let every, let anchor): IntervalSchedule(every: every, anchor: anchor)
            case .cron(let expression): CronSchedule(expression, timeZone: timeZone)
            case .once(let date): OnceSchedule(at: date)
            }
        }
    }

    /// When a job fires.
    public enum Trigger: Sendable, Equatable, CustomStringConvertible {
        /// Every `every`, on the grid `anchor + n × every`.
        case interval(every: Duration, anchor: Date)
        /// On a cron expression, in the job's time zone.
        case cron(CronExpression)
        /// Once, at a time.
        case once(Date)

        public var description: String {
            switch self {
            case .interval(let every, _): "every \(DurationText.format(every))"
            case .cron(let expression): "cron \(expression.text)"
            case .once(let date): "once at \(Timestamp.format(date))"
            }
        }
    }

    /// What to do with slots missed while the scheduler was down or the job paused.
    public enum MisfirePolicy: String, Sendable, Equatable, CaseIterable {
        /// Run every missed slot, oldest first.
        case all
        /// Run only the newest missed slot; record the others as skipped.
        case latest
        /// Run none; record them all as skipped.
        case skip
    }

    /// What to do when a job's previous run is still running at its next fire.
    public enum OverlapPolicy: String, Sendable, Equatable, CaseIterable {
        /// Run both.
        case allow
        /// Skip the new one and record it.
        case forbid
        /// Run the new one as soon as the previous one ends.
        case queue
        /// Stop the running one and run the new one.
        case replace
    }

    /// A job's algorithm: an external command or a built-in one.
    public enum AlgorithmSpec: Sendable, Equatable {
        /// Run this argv; it writes its result to the file named by `BATON_OUTPUT`.
        case command(Command)
        /// The built-in demo: real computation for `duration`, producing `resultSize` bytes of JSON lines.
        case demo(duration: Duration, resultSize: Int)
    }

    /// An external command.
    public struct Command: Sendable, Equatable {
        /// Program and arguments; the program is looked up on `PATH` when it has no `/`.
        public var argv: [String]
        /// Working directory; empty means the service's own.
        public var workingDirectory = ""
        /// Extra environment variables.
        public var environment: [String: String] = [:]

        /// Creates a command.
        public init(argv: [String], workingDirectory: String = "", environment: [String: String] = [:]) {
            self.argv = argv
            self.workingDirectory = workingDirectory
            self.environment = environment
        }
    }
}

extension Configuration.Job: Decodable {
    public init(from decoder: any Decoder) throws {
        let reader = try MappingReader(
            decoder,
            allowed: [
                "name", "every", "anchor", "cron", "at", "timezone", "jitter", "misfire", "grace", "overlap", "command", "workdir",
                "env", "builtin", "duration", "result_size", "timeout", "retries", "stages",
            ]
        )
        guard reader.has("name") else {
            throw ConfigurationError(source: "", field: reader.field("name"), problem: "every job needs a name")
        }
        let name = try reader.value("name", "")
        let triggers = ["every", "cron", "at"].filter(reader.has)
        guard triggers.count == 1 else {
            throw ConfigurationError(
                source: "",
                field: reader.field(triggers.last ?? "every"),
                problem: triggers.isEmpty
                    ? "every job needs a schedule: every: 1h, cron: \"0 * * * *\", or at: 2026-01-01T00:00:00Z"
                    : "a job has one schedule: every, cron or at, not \(triggers.joined(separator: " and "))"
            )
        }
        let trigger: Configuration.Trigger
        switch triggers[0] {
        case "every":
            trigger = .interval(
                every: try reader.duration("every", .zero),
                anchor: try reader.date("anchor", Date(timeIntervalSince1970: 0))
            )
        case "cron":
            let text = try reader.value("cron", "")
            do {
                trigger = .cron(try CronExpression(text))
            } catch {
                throw ConfigurationError(source: "", field: reader.field("cron"), problem: "\(error)")
            }
        default:
            trigger = .once(try reader.date("at", Date()))
        }
        if reader.has("anchor"), triggers[0] != "every" {
            throw ConfigurationError(source: "", field: reader.field("anchor"), problem: "anchor goes with every")
        }
        let algorithm: Configuration.AlgorithmSpec
        switch (reader.has("command"), reader.has("builtin")) {
        case (true, true):
            throw ConfigurationError(source: "", field: reader.field("builtin"), problem: "a job has either command or builtin, not both")
        case (true, false):
            let argv = try reader.value("command", [String]())
            guard !argv.isEmpty, !argv[0].isEmpty else {
                throw ConfigurationError(
                    source: "",
                    field: reader.field("command"),
                    problem: "must name a program, e.g. [python3, algo.py]"
                )
            }
            algorithm = .command(
                Configuration.Command(
                    argv: argv,
                    workingDirectory: try reader.value("workdir", ""),
                    environment: try reader.value("env", [:])
                )
            )
        case (false, true):
            let builtin = try reader.value("builtin", "")
            guard builtin == "demo" else {
                throw ConfigurationError(
                    source: "",
                    field: reader.field("builtin"),
                    problem: "the only built-in algorithm is demo (got \"\(builtin)\")"
                )
            }
            algorithm = .demo(duration: try reader.duration("duration", .seconds(2)), resultSize: try reader.value("result_size", 4096))
        case (false, false):
            throw ConfigurationError(
                source: "",
                field: reader.field("command"),
                problem: "every job needs an algorithm: command: [program, args...] or builtin: demo"
            )
        }
        self.init(name: name, trigger: trigger, algorithm: algorithm)
        if reader.has("timezone") {
            let zone = try reader.value("timezone", "")
            guard let timeZone = TimeZone(identifier: zone) else {
                throw ConfigurationError(
                    source: "",
                    field: reader.field("timezone"),
                    problem: "unknown IANA time zone \"\(zone)\", e.g. Europe/Berlin"
                )
            }
            self.timeZone = timeZone
        }
        jitter = try reader.duration("jitter", jitter)
        misfire = try reader.choice("misfire", misfire)
        if reader.has("grace") { grace = try reader.duration("grace", .zero) }
        overlap = try reader.choice("overlap", overlap)
        timeout = try reader.duration("timeout", timeout)
        retries = try reader.value("retries", retries)
        stages = try reader.value("stages", stages)
    }
}

extension Configuration.Job {
    /// What is wrong with a job's (or a stage's) name, in words that follow its field; nil when it is valid.
    static func nameProblem(_ name: String) -> String? {
        do {
            try JobName.validate(name, field: "name")
            return nil
        } catch {
            return error.reason.replacingOccurrences(of: "field \"name\" ", with: "")
        }
    }

    /// The first problem with the jobs' values (each job's own, then the uniqueness of names), named by its field
    /// from `jobs`, e.g. `[0].name`.
    static func firstProblem(in jobs: [Configuration.Job]) -> (field: String, problem: String)? {
        var names: Set<String> = []
        for (index, job) in jobs.enumerated() {
            let field = "[\(index)]"
            if let problem = nameProblem(job.name) { return ("\(field).name", problem) }
            guard names.insert(job.name).inserted else { return ("\(field).name", "another job is already named \"\(job.name)\"") }
            if case .interval(let every, _) = job.trigger, every < .milliseconds(10) {
                return ("\(field).every", "must be at least 10ms")
            }
            guard job.timeout > .zero else { return ("\(field).timeout", "must be more than 0") }
            guard (0...100).contains(job.retries) else { return ("\(field).retries", "must be from 0 to 100 (got \(job.retries))") }
            if case .demo(_, let size) = job.algorithm, !(0...(1 << 30)).contains(size) {
                return ("\(field).result_size", "must be from 0 to 1 GiB in bytes (got \(size))")
            }
            if let problem = Configuration.Stage.firstProblem(in: job.stages) { return (field + problem.field, problem.problem) }
        }
        return nil
    }
}
