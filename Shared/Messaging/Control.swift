public import Foundation

/// `baton` → scheduler, on the `control` REQ/REP socket: a command.
public struct ControlRequest: WireMessage, Equatable {
    public static let kind = "control"

    /// The commands the scheduler answers.
    public enum Command: String, Codable, Sendable {
        /// List the jobs.
        case jobs
        /// Run a job now.
        case trigger
        /// Stop firing a job.
        case pause
        /// Fire a job again.
        case resume
        /// Run a job for each of its slots in a time range.
        case backfill
        /// End a run (`run`), or every run of a job not started yet (`job` with `queued`).
        case cancel
        /// Every fire of a job, its last slot handled and whether it is paused (`baton audit`).
        case fires
    }

    /// The command.
    public var command: Command
    /// The job it applies to (all but `jobs`).
    public var job: String?
    /// `resume`: apply the misfire policy to the slots missed while paused.
    public var catchUp: Bool?
    /// `backfill`: the first logical time.
    public var from: Date?
    /// `backfill`: the last logical time.
    public var to: Date?
    /// `backfill`: run slots again that already ran.
    public var rerun: Bool?
    /// `cancel`: the run to end.
    public var run: String?
    /// `cancel` with `job`: every run of the job that has not started.
    public var queued: Bool?
    /// `trigger`: run the job even while it is paused.
    public var force: Bool?

    /// Creates a request.
    public init(
        command: Command,
        job: String? = nil,
        catchUp: Bool? = nil,
        from: Date? = nil,
        to: Date? = nil,
        rerun: Bool? = nil,
        run: String? = nil,
        queued: Bool? = nil,
        force: Bool? = nil
    ) {
        self.force = force
        self.command = command
        self.job = job
        self.catchUp = catchUp
        self.from = from
        self.to = to
        self.rerun = rerun
        self.run = run
        self.queued = queued
    }

    public func validate() throws(ProtocolError) {
        if command == .cancel {
            if let run {
                try RunID.validate(run, field: "run")
            } else {
                guard let job, queued == true else {
                    throw ProtocolError(.field, "cancel needs field \"run\", or \"job\" with \"queued\": true")
                }
                try JobName.validate(job, field: "job")
            }
        } else if command != .jobs {
            guard let job else { throw ProtocolError(.field, "field \"job\" is required for \(command.rawValue)") }
            try JobName.validate(job, field: "job")
        }
        if command == .backfill {
            guard let from, let to else { throw ProtocolError(.field, "fields \"from\" and \"to\" are required for backfill") }
            guard from <= to else { throw ProtocolError(.field, "field \"from\" must not be after \"to\"") }
        }
    }
}

/// Scheduler → `baton`: the answer to a ``ControlRequest``.
public struct ControlReply: WireMessage, Equatable {
    public static let kind = "control.reply"

    /// One job, as `baton jobs` shows it.
    public struct Job: Codable, Sendable, Equatable {
        /// The name.
        public var name: String
        /// The schedule, e.g. `cron 0 * * * *` or `every 10s`.
        public var schedule: String
        /// The IANA time zone, as configured (`UTC` by default).
        public var timeZone: String
        /// The next fire, if any.
        public var next: Date?
        /// Whether it is paused.
        public var paused: Bool
        /// Runs not ended: queued, sent, accepted or running (live and backfilled).
        public var running: [String]
        /// The last run that ended.
        public var lastRun: String?
        /// How the last run ended: `succeeded`, `failed` or `cancelled` (the words of the status report).
        public var lastOutcome: String?
        /// How long it took, in whole milliseconds, from its acceptance at the algorithm to its end.
        public var lastDurationMs: Int?
        /// Misfire and overlap policies, e.g. `misfire=latest overlap=forbid`.
        public var policies: String

        /// Creates a job entry.
        public init(
            name: String,
            schedule: String,
            timeZone: String,
            next: Date?,
            paused: Bool,
            running: [String],
            lastRun: String?,
            lastOutcome: String?,
            lastDurationMs: Int?,
            policies: String
        ) {
            self.name = name
            self.schedule = schedule
            self.timeZone = timeZone
            self.next = next
            self.paused = paused
            self.running = running
            self.lastRun = lastRun
            self.lastOutcome = lastOutcome
            self.lastDurationMs = lastDurationMs
            self.policies = policies
        }
    }

    /// Whether the command was done.
    public var ok: Bool
    /// Why not.
    public var error: String?
    /// What happened, in words.
    public var message: String?
    /// `jobs`: the jobs.
    public var jobs: [Job]?
    /// `trigger`, `backfill`: the runs fired.
    public var runs: [String]?
    /// `fires`: every fire of the job, oldest first.
    public var fires: [Fire]?
    /// `fires`: the job's last slot handled (fired or skipped), if any.
    public var lastSlot: Date?
    /// `fires`: whether the job is paused.
    public var paused: Bool?

    /// One slot or run in the scheduler's fire ledger.
    public struct Fire: Codable, Sendable, Equatable {
        /// The request as fired.
        public var request: RunRequest
        /// Where it is in its lifecycle.
        public var state: FireState
        /// Why it was skipped, or why it failed.
        public var detail: String?

        /// Creates a fire.
        public init(request: RunRequest, state: FireState, detail: String?) {
            self.request = request
            self.state = state
            self.detail = detail
        }
    }

    /// Creates a reply.
    public init(ok: Bool, error: String? = nil, message: String? = nil, jobs: [Job]? = nil, runs: [String]? = nil) {
        self.ok = ok
        self.error = error
        self.message = message
        self.jobs = jobs
        self.runs = runs
    }

    /// Creates the reply to `fires`.
    public init(fires: [Fire], lastSlot: Date?, paused: Bool) {
        self.init(ok: true)
        self.fires = fires
        self.lastSlot = lastSlot
        self.paused = paused
    }

    public func validate() throws(ProtocolError) {}
}
