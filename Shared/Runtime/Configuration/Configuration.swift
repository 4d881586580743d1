public import Foundation
public import Messaging
public import Scheduling

/// Everything a Baton deployment is configured with: one YAML file, overridable by environment variables.
///
/// Every service reads the same file and takes the part it needs. See `docs/CONFIGURATION.md` for each key.
public struct Configuration: Sendable, Equatable {
    /// Where raw results, state databases and logs live.
    public var dataDirectory: String = "./data"
    /// Socket endpoints.
    public var endpoints = Endpoints()
    /// Where processors store results.
    public var store = Store()
    /// How processors process results.
    public var processor = Processor()
    /// How the algorithm service runs jobs.
    public var algorithm = Algorithm()
    /// Logging.
    public var log = Log()
    /// How long raw results are kept.
    public var retention = Retention()
    /// Where each service serves `/metrics` and `/healthz`.
    public var metrics = Metrics()
    /// Bounds on message sizes, queues and subscriptions (`limits`).
    public var limits = Limits()
    /// The jobs the scheduler fires.
    public var jobs: [Job] = []

    /// The default configuration: no jobs, everything on 127.0.0.1.
    public init() {}

    /// Endpoints of every socket that is bound; the services that connect use the same addresses.
    public struct Endpoints: Sendable, Equatable {
        /// Scheduler binds PUSH; the algorithm connects PULL.
        public var runs = "tcp://127.0.0.1:7601"
        /// Scheduler binds REP for control commands.
        public var control = "tcp://127.0.0.1:7602"
        /// Algorithm binds PUSH; processors connect PULL.
        public var results = "tcp://127.0.0.1:7603"
        /// Algorithm binds PULL; processors connect PUSH with acknowledgements.
        public var acks = "tcp://127.0.0.1:7604"
        /// Logger binds XSUB; every service's publisher connects.
        public var statusIn = "tcp://127.0.0.1:7605"
        /// Logger binds XPUB; watchers connect SUB.
        public var statusOut = "tcp://127.0.0.1:7606"
        /// Logger binds REP for status queries.
        public var query = "tcp://127.0.0.1:7607"
        /// Scheduler binds PULL; the algorithm connects PUSH with run reports (accepted, finished, failed).
        public var reports = "tcp://127.0.0.1:7608"
        /// Algorithm binds REP for `baton results`, `audit` and `replay` (its outbox, run ledger and raw results).
        public var algorithmControl = "tcp://127.0.0.1:7609"

        /// Creates the default endpoints.
        public init() {}
    }

    /// The result store.
    public struct Store: Sendable, Equatable {
        /// SQLite database file; empty means `<data_dir>/results.sqlite`.
        public var path = ""
        /// Creates the default store settings.
        public init() {}
    }

    /// Processor settings, shared by every processor instance.
    public struct Processor: Sendable, Equatable {
        /// How many processors `baton up` starts.
        public var count = 1
        /// An external command (argv) that processes a result; empty means the built-in `store`.
        public var command: [String] = []
        /// How an external command gets the result: on standard input, or as a file named by `BATON_INPUT`.
        public var input: CommandInput = .stdin
        /// Working directory for the command; empty means the processor's own.
        public var workingDirectory = ""
        /// Extra environment variables for the command.
        public var environment: [String: String] = [:]
        /// Longest a command may run on one result.
        public var timeout: Duration = .seconds(3600)
        /// A processor must start on a result within this time, and renew it this often while working.
        public var lease: Duration = .seconds(30)
        /// Retries after the first attempt before a result is dead-lettered (so `retries + 1` attempts in all),
        /// as `jobs[].retries` counts them. The default, 4, gives 5 attempts.
        public var retries = 4
        /// Attempts in all before a result is dead-lettered: the first and its ``retries``.
        public var attempts: Int { retries + 1 }
        /// Delay before the first retry of a failed result; doubled each time, with jitter.
        public var backoff: Duration = .seconds(2)
        /// Longest delay between retries.
        public var backoffMax: Duration = .seconds(300)
        /// Creates the default processor settings.
        public init() {}
    }

    /// How an external processor command receives the result.
    public enum CommandInput: String, Sendable, Equatable, CaseIterable {
        case stdin, file
    }

    /// Algorithm service settings.
    public struct Algorithm: Sendable, Equatable {
        /// How many live runs (scheduled and manual) may execute at once.
        public var concurrency = 1
        /// How many backfilled runs may execute at once, in their own lane beside the live runs.
        public var backfillConcurrency = 1
        /// On SIGTERM, how long to wait for running runs to finish before stopping them (a second signal
        /// stops them at once). A run stopped is run again at the next start.
        public var drain: Duration = .seconds(30)
        /// Creates the default algorithm settings.
        public init() {}
    }

    /// Raw result retention. Only results already stored by a processor are ever deleted.
    public struct Retention: Sendable, Equatable {
        /// Delete raw results acknowledged longer ago than this; `nil` keeps them regardless of age.
        public var maxAge: Duration? = .seconds(30 * 86_400)
        /// Delete the oldest acknowledged raw results while all of them together exceed this many bytes.
        public var maxBytes: Int64? = nil
        /// Creates the default retention: 30 days, no size limit.
        public init() {}
    }

    /// Logging settings.
    public struct Log: Sendable, Equatable {
        /// Lowest level logged: trace, debug, info, notice, warning, error or critical.
        public var level = "info"
        /// The logger rotates `<data_dir>/logs/events.jsonl` at this size.
        public var maxBytes: Int64 = 64 << 20
        /// How many rotated event logs the logger keeps.
        public var keep = 5
        /// How often every service publishes `service.heartbeat`; one silent for three of these is shown down.
        public var heartbeat: Duration = .seconds(5)
        /// Creates the default log settings.
        public init() {}
    }

    /// The HTTP endpoint of each service: Prometheus `/metrics` and `/healthz`. Port 0 turns it off.
    public struct Metrics: Sendable, Equatable {
        /// The IPv4 address listened on; `0.0.0.0` for every interface (in containers).
        public var host = "127.0.0.1"
        /// The logger's port.
        public var logger = 7610
        /// The scheduler's port.
        public var scheduler = 7611
        /// The algorithm service's port.
        public var algorithm = 7612
        /// A processor's port; `baton up` gives its processor N the port `processor + N - 1`.
        public var processor = 7613
        /// This process's own port, whatever its service (`--metrics-port`, `BATON_METRICS_PORT`); not in the file.
        public var ownPort: Int?
        /// Open HTTP connections at most; when full, the one idle the longest is closed for a new one.
        public var maxConnections = 256
        /// Bytes of request line and headers at most; a request over it gets 400 and a close.
        public var maxHeaderBytes = 16 * 1024
        /// How long a connection may take to send a request and read the answer, or sit idle between requests.
        public var requestTimeout: Duration = .seconds(10)
        /// Creates the default metrics settings.
        public init() {}

        /// The port a service listens on: its own port if one was given, else the one named after it (`logger`,
        /// `scheduler`, `algorithm`, `processor`); 0 (none) for any other name.
        public func port(for service: String) -> Int {
            if let ownPort { return ownPort }
            return switch service {
            case "logger": logger
            case "scheduler": scheduler
            case "algorithm": algorithm
            case "processor": processor
            default: 0
            }
        }
    }

    /// One scheduled job.
    public struct Job: Sendable, Equatable {
        /// Unique name; letters, digits, `-`, `_`, `.`.
        public var name: String
        /// When it fires.
        public var trigger: Trigger
        /// The IANA time zone cron fields are read in (default UTC).
        public var timeZone: TimeZone = TimeZone(identifier: "UTC")!
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

    /// The SQLite file processors store into.
    public var storePath: String {
        store.path.isEmpty ? (dataDirectory as NSString).appendingPathComponent("results.sqlite") : store.path
    }

    /// The job with this name.
    public func job(named name: String) -> Job? {
        jobs.first { $0.name == name }
    }
}
