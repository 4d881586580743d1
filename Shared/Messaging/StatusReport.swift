public import Foundation

/// `baton status` → logger: asks for the current status (on the logger's REP `query` socket).
public struct StatusQuery: WireMessage, Equatable {
    public static let kind = "query"

    /// What is asked; `status` is the only question in protocol version 1.
    public var what: String
    /// List services gone (down or stopped for longer than `goneAfter`) too; default false.
    public var all: Bool?
    /// Seconds after which a service down or stopped is gone; default 600.
    public var goneAfter: Double?
    /// Seconds over which errors and lost events are counted; default 600.
    public var window: Double?

    /// Creates a status query.
    public init(what: String = "status", all: Bool? = nil, goneAfter: Double? = nil, window: Double? = nil) {
        self.what = what
        self.all = all
        self.goneAfter = goneAfter
        self.window = window
    }

    public func validate() throws(ProtocolError) {
        guard what == "status" else { throw ProtocolError(.field, "field \"what\" must be \"status\" (got \"\(what)\")") }
        for (name, value) in [("goneAfter", goneAfter), ("window", window)] {
            if let value, !(value.isFinite && value > 0) {
                throw ProtocolError(.field, "field \"\(name)\" must be a positive number of seconds (got \(value))")
            }
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
