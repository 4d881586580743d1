public import Foundation

/// `baton status` → logger: asks for the current status (on the logger's REP `query` socket), or, with
/// `what: "runs"`, `baton runs` → logger: searches the run history (answered with a ``RunsReport``).
public struct StatusQuery: WireMessage, Equatable {
    public static let kind = "query"

    /// What is asked: `status` or `runs`.
    public var what: String
    /// List services gone (down or stopped for longer than `goneAfter`) too; default false.
    public var all: Bool?
    /// Seconds after which a service down or stopped is gone; default 600.
    public var goneAfter: Double?
    /// Seconds over which errors and lost events are counted; default 600.
    public var window: Double?
    /// `runs`: only this job's runs.
    public var job: String?
    /// `runs`: only runs in this state (see ``RunsReport/Run/state``).
    public var state: String?
    /// `runs`: only runs whose slot (logical time) is at or after this.
    public var from: Date?
    /// `runs`: only runs whose slot is before this.
    public var to: Date?
    /// `runs`: at most this many, newest slot first; default 100, at most 10,000.
    public var limit: Int?
    /// `runs`: only this run, with its tasks.
    public var run: String?

    /// The states a run in the history can be in, from `skipped` to `dead`.
    public static let runStates = [
        "skipped", "scheduled", "queued", "accepted", "running", "retrying", "processing", "succeeded", "failed", "cancelled", "dead",
    ]
    /// The most runs a `runs` query returns.
    public static let maxLimit = 10_000

    /// Creates a status query.
    public init(what: String = "status", all: Bool? = nil, goneAfter: Double? = nil, window: Double? = nil) {
        self.what = what
        self.all = all
        self.goneAfter = goneAfter
        self.window = window
    }

    /// Creates a query of the run history.
    public static func runs(
        job: String? = nil,
        state: String? = nil,
        from: Date? = nil,
        to: Date? = nil,
        limit: Int? = nil,
        run: String? = nil
    ) -> StatusQuery {
        var query = StatusQuery(what: "runs")
        query.job = job
        query.state = state
        query.from = from
        query.to = to
        query.limit = limit
        query.run = run
        return query
    }

    public func validate() throws(ProtocolError) {
        guard what == "status" || what == "runs" else {
            throw ProtocolError(.field, "field \"what\" must be \"status\" or \"runs\" (got \"\(WireText.escape(what, limit: 40))\")")
        }
        for (name, value) in [("goneAfter", goneAfter), ("window", window)] {
            if let value, !(value.isFinite && value > 0) {
                throw ProtocolError(.field, "field \"\(name)\" must be a positive number of seconds (got \(value))")
            }
        }
        if let job, !JobName.isValid(job) {
            throw ProtocolError(.field, "field \"job\" must be a job name (got \"\(WireText.escape(job, limit: 40))\")")
        }
        if let state, !Self.runStates.contains(state) {
            throw ProtocolError(
                .field,
                "field \"state\" must be one of \(Self.runStates.joined(separator: ", ")) (got \"\(WireText.escape(state, limit: 40))\")"
            )
        }
        if let limit, !(1...Self.maxLimit).contains(limit) {
            throw ProtocolError(.field, "field \"limit\" must be from 1 to \(Self.maxLimit) (got \(limit))")
        }
        if let run { try RunID.validate(run, field: "run") }
        if let from, let to, from >= to { throw ProtocolError(.field, "field \"from\" must be before \"to\"") }
    }
}

/// Logger → `baton runs`: runs from the logger's run history, newest slot first (the reply to a `runs` query).
/// Documented field by field in `docs/PROTOCOL.md`; fields are only ever added.
public struct RunsReport: WireMessage, Equatable {
    public static let kind = "query.reply"

    /// When the report was made (the logger's clock).
    public var time: Date
    /// The runs found, newest slot first.
    public var runs: [Run]
    /// More runs matched than `limit`.
    public var truncated: Bool
    /// Set (and `runs` empty) when the query could not be answered.
    public var error: String?

    /// Creates a report.
    public init(time: Date, runs: [Run] = [], truncated: Bool = false, error: String? = nil) {
        self.time = time
        self.runs = runs
        self.truncated = truncated
        self.error = error
    }

    public func validate() throws(ProtocolError) {}

    /// One run as the history holds it.
    public struct Run: Codable, Sendable, Equatable {
        /// The run id.
        public var run: String
        /// Its job.
        public var job: String
        /// Its slot (logical time).
        public var slot: Date
        /// `schedule`, `manual` or `backfill`, when known.
        public var trigger: String?
        /// `skipped`, `scheduled`, `queued`, `accepted`, `running`, `retrying` (the algorithm failed, another
        /// attempt comes), `processing` (the algorithm finished; stages or the store are working),
        /// `succeeded` (its pipeline finished), `failed` (the algorithm failed for good), `cancelled`, `dead`
        /// (a task was dead-lettered; a replay can still finish it).
        public var state: String
        /// When the scheduler fired it.
        public var scheduledAt: Date?
        /// Fire time minus slot, in milliseconds.
        public var latenessMs: Double?
        /// When the algorithm accepted it.
        public var acceptedAt: Date?
        /// When its first attempt started.
        public var startedAt: Date?
        /// When the algorithm finished it (its result handed off).
        public var finishedAt: Date?
        /// When it ended: its pipeline finished, or it failed or was cancelled.
        public var endedAt: Date?
        /// Attempts of the algorithm.
        public var attempts: Int
        /// The algorithm's duration, in milliseconds.
        public var durationMs: Double?
        /// Bytes of all its parts.
        public var size: Int64?
        /// How many parts the algorithm wrote.
        public var parts: Int?
        /// Tasks dead-lettered and not replayed since.
        public var dead: Int
        /// The last error: why it failed, was skipped or cancelled, or why a task died.
        public var error: String?
        /// Its stages, in order.
        public var stages: [Stage]
        /// Its tasks with their outcome (only when one run was asked for); tasks settled in a batch are
        /// counted on their stage only.
        public var tasks: [Task]?

        /// Creates a run.
        public init(run: String, job: String, slot: Date, state: String) {
            self.run = run
            self.job = job
            self.slot = slot
            self.state = state
            self.attempts = 0
            self.dead = 0
            self.stages = []
        }
    }

    /// A stage of a run.
    public struct Stage: Codable, Sendable, Equatable {
        /// Its index, from 0.
        public var index: Int
        /// Its name (`store` for a job without stages).
        public var name: String?
        /// Its tasks.
        public var parts: Int?
        /// When its tasks were created (its input complete).
        public var readyAt: Date?
        /// When its last task succeeded.
        public var doneAt: Date?
        /// Tasks succeeded.
        public var succeeded: Int
        /// Failed attempts (retried).
        public var failed: Int
        /// Tasks dead-lettered.
        public var dead: Int

        /// Creates a stage.
        public init(index: Int, name: String?, succeeded: Int = 0, failed: Int = 0, dead: Int = 0) {
            self.index = index
            self.name = name
            self.succeeded = succeeded
            self.failed = failed
            self.dead = dead
        }
    }

    /// A task (a part of a stage) of a run.
    public struct Task: Codable, Sendable, Equatable {
        /// Its stage's index.
        public var stage: Int
        /// Its part.
        public var part: Int
        /// `running`, `succeeded`, `failed` (to be retried) or `dead`.
        public var state: String
        /// Attempts started.
        public var attempts: Int
        /// The processor that last had it.
        public var processor: String?
        /// Its last error (for a command, with the last lines of its stderr).
        public var error: String?
        /// When its last attempt started.
        public var startedAt: Date?
        /// When its last attempt ended.
        public var endedAt: Date?

        /// Creates a task.
        public init(stage: Int, part: Int, state: String) {
            self.stage = stage
            self.part = part
            self.state = state
            self.attempts = 0
        }
    }
}

/// Logger → `baton status`: what the logger knows from the status bus, kept across its restarts. Also the
/// document `baton status --json` prints (with `jobs` completed from the scheduler). Documented field by
/// field in `docs/PROTOCOL.md`; fields are only ever added.
public struct StatusReport: WireMessage, Equatable {
    public static let kind = "query.reply"

    /// The format's version; 1.
    public var version: Int
    /// When the report was made (the logger's clock).
    public var time: Date
    /// Every service instance seen recently, by service then instance.
    public var services: [Service]
    /// Jobs, by name: their last outcome from the run history (and, from `baton status`, their schedule).
    public var jobs: [Job]
    /// Runs not yet finished, oldest first.
    public var runs: [Run]
    /// The latest finished runs, newest first.
    public var recent: [Run]
    /// Results not yet stored, as the algorithm last counted them; nil before it first did.
    public var backlog: Backlog?
    /// The latest errors (log records at level error or critical, rejected messages) of the last
    /// `windowSeconds`, newest first.
    public var errors: [ErrorRecord]
    /// Status events lost on the bus in the last `windowSeconds`, per publisher (`service/instance`).
    public var eventsLost: [String: UInt64]
    /// Set (and everything else empty) when the query could not be answered, e.g. it was malformed.
    public var error: String?
    /// Services that cannot write their state (`disk.full` without a `disk.ok` since, or `store.down` without
    /// a `store.up`), by `service/instance`, with the message; absent when none.
    public var diskFull: [String: String]?
    /// The window `errors`, `eventsLost` and each service's recent counts cover, in seconds.
    public var windowSeconds: Double?
    /// Services down or stopped for longer than this many seconds are gone.
    public var goneAfterSeconds: Double?
    /// How many gone services were left out of `services` (absent when the query asked for all).
    public var hiddenServices: Int?
    /// Status events lost per publisher since the logger's history began.
    public var eventsLostTotal: [String: UInt64]?
    /// Runs whose pipeline is in flight, oldest first, with their stages' parts done of total.
    public var pipelines: [PipelineRun]?

    /// Creates a report.
    public init(
        version: Int = 1,
        time: Date,
        services: [Service] = [],
        jobs: [Job] = [],
        runs: [Run] = [],
        recent: [Run] = [],
        backlog: Backlog? = nil,
        errors: [ErrorRecord] = [],
        eventsLost: [String: UInt64] = [:],
        error: String? = nil,
        diskFull: [String: String]? = nil,
        windowSeconds: Double? = nil,
        goneAfterSeconds: Double? = nil,
        hiddenServices: Int? = nil,
        eventsLostTotal: [String: UInt64]? = nil,
        pipelines: [PipelineRun]? = nil
    ) {
        self.pipelines = pipelines
        self.windowSeconds = windowSeconds
        self.goneAfterSeconds = goneAfterSeconds
        self.hiddenServices = hiddenServices
        self.eventsLostTotal = eventsLostTotal
        self.diskFull = diskFull
        self.version = version
        self.time = time
        self.services = services
        self.jobs = jobs
        self.runs = runs
        self.recent = recent
        self.backlog = backlog
        self.errors = errors
        self.eventsLost = eventsLost
        self.error = error
    }

    public func validate() throws(ProtocolError) {
        guard version >= 1 else { throw ProtocolError(.field, "field \"version\" must be at least 1 (got \(version))") }
    }

    /// One service instance.
    public struct Service: Codable, Sendable, Equatable {
        /// The service: `logger`, `scheduler`, `algorithm`, `processor`.
        public var service: String
        /// The instance's name, e.g. `processor-1` or `host:1234`.
        public var instance: String
        /// `up` (heard from within three heartbeats), `down` (silent for longer, or its supervisor saw it exit)
        /// or `stopped` (it said goodbye).
        public var state: String
        /// The host it runs on, once known.
        public var host: String?
        /// Its process id, once known.
        public var pid: Int?
        /// Its Baton version, once known.
        public var version: String?
        /// When it started, once known.
        public var startedAt: Date?
        /// When it was last heard from.
        public var lastSeen: Date
        /// Seconds since it started, when up.
        public var uptimeSeconds: Int?
        /// Its heartbeat interval in milliseconds.
        public var heartbeatMs: Int
        /// How many times this instance started again after dying (seen in the history).
        public var restarts: Int
        /// How it last ended without stopping cleanly, e.g. `killed by signal 9`.
        public var lastExit: String?
        /// When that was.
        public var lastExitAt: Date?
        /// True when it is gone (down or stopped for longer than the report's `goneAfterSeconds`); only
        /// listed when all services were asked for.
        public var gone: Bool?
        /// Its errors in the report's window; absent when none.
        public var recentErrors: Int?
        /// Its status events lost in the report's window; absent when none.
        public var recentEventsLost: UInt64?

        /// Creates a service entry.
        public init(
            service: String,
            instance: String,
            state: String,
            host: String? = nil,
            pid: Int? = nil,
            version: String? = nil,
            startedAt: Date? = nil,
            lastSeen: Date,
            uptimeSeconds: Int? = nil,
            heartbeatMs: Int = 5000,
            restarts: Int = 0,
            lastExit: String? = nil,
            lastExitAt: Date? = nil
        ) {
            self.service = service
            self.instance = instance
            self.state = state
            self.host = host
            self.pid = pid
            self.version = version
            self.startedAt = startedAt
            self.lastSeen = lastSeen
            self.uptimeSeconds = uptimeSeconds
            self.heartbeatMs = heartbeatMs
            self.restarts = restarts
            self.lastExit = lastExit
            self.lastExitAt = lastExitAt
        }
    }

    /// One job.
    public struct Job: Codable, Sendable, Equatable {
        /// The job's name.
        public var name: String
        /// Its schedule, e.g. `every 1h` or `cron 0 * * * *` (from the scheduler).
        public var schedule: String?
        /// Its time zone (from the scheduler).
        public var timeZone: String?
        /// Its next fire (from the scheduler); nil when paused or finished.
        public var next: Date?
        /// Whether it is paused (from the scheduler).
        public var paused: Bool?
        /// Its latest finished run.
        public var lastRun: String?
        /// How that run ended: `succeeded`, `failed` or `cancelled`.
        public var lastOutcome: String?
        /// How long that run took, in milliseconds.
        public var lastDurationMs: Double?
        /// When that run ended.
        public var lastEnded: Date?
        /// Runs that succeeded since the history began.
        public var succeeded: Int
        /// Runs that failed since the history began.
        public var failed: Int

        /// Creates a job entry.
        public init(name: String, succeeded: Int = 0, failed: Int = 0) {
            self.name = name
            self.succeeded = succeeded
            self.failed = failed
        }
    }

    /// One run.
    public struct Run: Codable, Sendable, Equatable {
        /// The run id, `job@logicalTime`.
        public var run: String
        /// The job.
        public var job: String
        /// `scheduled`, `accepted`, `running`, `retrying` while in flight; `succeeded`, `failed`, `cancelled` after.
        public var state: String
        /// When the scheduler fired it.
        public var scheduledAt: Date?
        /// When its (latest) attempt started.
        public var startedAt: Date?
        /// When it ended.
        public var endedAt: Date?
        /// Its attempt, from 1.
        public var attempt: Int?
        /// Progress, 0 to 100, as the algorithm last reported it.
        public var percent: Double?
        /// The algorithm's last progress message.
        public var message: String?
        /// How long it took (finished runs), in milliseconds.
        public var durationMs: Double?
        /// Why it failed.
        public var error: String?

        /// Creates a run entry.
        public init(run: String, job: String, state: String) {
            self.run = run
            self.job = job
            self.state = state
        }
    }

    /// Results not yet stored.
    public struct Backlog: Codable, Sendable, Equatable {
        /// Waiting to be sent to a processor, or for a retry.
        public var pending: Int
        /// With a processor, not yet acknowledged.
        public var sent: Int
        /// Dead-lettered: failed too often; see `baton results --state dead`.
        public var dead: Int
        /// When the algorithm counted them.
        public var time: Date

        /// Creates a backlog entry.
        public init(pending: Int, sent: Int, dead: Int, time: Date) {
            self.pending = pending
            self.sent = sent
            self.dead = dead
            self.time = time
        }
    }

    /// One error.
    public struct ErrorRecord: Codable, Sendable, Equatable {
        /// When it happened (the publisher's clock).
        public var time: Date
        /// The service that reported it.
        public var source: String
        /// Its instance.
        public var instance: String
        /// The event type, e.g. `log.error` or `message.rejected`.
        public var type: String
        /// The job, run and part it concerns, if any.
        public var job: String?
        public var run: String?
        public var part: Int?
        /// What went wrong.
        public var message: String

        /// Creates an error entry.
        public init(time: Date, source: String, instance: String, type: String, job: String?, run: String?, part: Int?, message: String) {
            self.time = time
            self.source = source
            self.instance = instance
            self.type = type
            self.job = job
            self.run = run
            self.part = part
            self.message = message
        }
    }
}
