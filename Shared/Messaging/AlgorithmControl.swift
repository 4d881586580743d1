public import Foundation

/// `baton` → algorithm, on the algorithm's `algorithm_control` REQ/REP socket: what `baton results`,
/// `baton audit` and `baton replay` need of the algorithm's outbox, run ledger and raw results, so that no
/// command opens another service's files.
public struct AlgorithmRequest: WireMessage, Equatable {
    public static let kind = "algorithm.control"

    /// The requests the algorithm answers.
    public enum Command: String, Codable, Sendable {
        /// Result parts and their delivery state, filtered by the fields below; with the counts by state.
        case results
        /// Every run in the run ledger.
        case runs
        /// One part's raw bytes (`run`, `part`), checked against its recorded sha256, in the payload frame.
        case raw
        /// One part (`run`, `part`) was stored by `baton replay` into the deployment's store: acknowledge it.
        case delivered
        /// Run a run's pipeline again from one stage (`run`, and `stageName` or `stage`) with its kept input.
        case rerun
        /// Put a run's dead tasks of one stage (`run`, `stage`, optionally `part`) back in the queue as new.
        case requeue
        /// The stages of the runs with a pipeline (all, or `run`'s), with their tasks counted by state.
        case stages
    }

    /// The request.
    public var command: Command
    /// `results`: only parts in this state.
    public var state: DeliveryState?
    /// `results`: only dead parts with this cause (`conflict`).
    public var cause: String?
    /// `results`: only parts of this job.
    public var job: String?
    /// `results`: the first logical time.
    public var from: Date?
    /// `results`: the last logical time.
    public var to: Date?
    /// `results`: only this run's parts; `raw`, `delivered`: the part's run.
    public var run: String?
    /// `raw`, `delivered`: the part.
    public var part: Int?
    /// `raw`, `delivered`, `requeue`: the part's stage index (absent: 0); `rerun`: the stage to run again from.
    public var stage: Int?
    /// `rerun`: the stage to run again from, by name (instead of `stage`).
    public var stageName: String?

    /// Creates a request.
    public init(
        command: Command,
        state: DeliveryState? = nil,
        cause: String? = nil,
        job: String? = nil,
        from: Date? = nil,
        to: Date? = nil,
        run: String? = nil,
        part: Int? = nil,
        stage: Int? = nil,
        stageName: String? = nil
    ) {
        self.stage = stage
        self.stageName = stageName
        self.command = command
        self.state = state
        self.cause = cause
        self.job = job
        self.from = from
        self.to = to
        self.run = run
        self.part = part
    }

    public func validate() throws(ProtocolError) {
        if let job { try JobName.validate(job, field: "job") }
        if let run { try RunID.validate(run, field: "run") }
        if let from, let to, from > to { throw ProtocolError(.field, "field \"from\" must not be after \"to\"") }
        if command == .raw || command == .delivered {
            guard run != nil, let part, part >= 0 else {
                throw ProtocolError(.field, "\(command.rawValue) needs fields \"run\" and \"part\"")
            }
        }
        if let stage, stage < 0 { throw ProtocolError(.field, "field \"stage\" must not be negative (got \(stage))") }
        if let part, part < 0 { throw ProtocolError(.field, "field \"part\" must not be negative (got \(part))") }
        if let stageName { try JobName.validate(stageName, field: "stageName") }
        switch command {
        case .rerun:
            guard run != nil, (stage == nil) != (stageName == nil) else {
                throw ProtocolError(.field, "rerun needs field \"run\" and one of \"stageName\" and \"stage\"")
            }
        case .requeue:
            guard run != nil, stage != nil else { throw ProtocolError(.field, "requeue needs fields \"run\" and \"stage\"") }
        default:
            break
        }
    }
}

/// Algorithm → `baton`: the answer to an ``AlgorithmRequest`` (for `raw`, with the bytes in a payload frame).
public struct AlgorithmReply: WireMessage, Equatable {
    public static let kind = "algorithm.control.reply"

    /// One result part in the outbox.
    public struct Part: Codable, Sendable, Equatable {
        /// The part's header as recorded (its `attempt` is the next delivery's number).
        public var header: ResultHeader
        /// The raw result file, at the algorithm.
        public var path: String
        /// Its delivery state.
        public var state: DeliveryState
        /// Failed processing attempts.
        public var failures: Int
        /// The last failure's reason.
        public var lastError: String?
        /// Why a dead part is dead, when not after its retries (`conflict`).
        public var cause: String?

        /// Creates a part.
        public init(header: ResultHeader, path: String, state: DeliveryState, failures: Int, lastError: String?, cause: String?) {
            self.header = header
            self.path = path
            self.state = state
            self.failures = failures
            self.lastError = lastError
            self.cause = cause
        }
    }

    /// One run in the run ledger.
    public struct Run: Codable, Sendable, Equatable {
        /// The request as received.
        public var request: RunRequest
        /// Its state.
        public var state: RunState
        /// Execution attempts.
        public var attempts: Int
        /// The last failure's reason.
        public var error: String?

        /// Creates a run.
        public init(request: RunRequest, state: RunState, attempts: Int, error: String?) {
            self.request = request
            self.state = state
            self.attempts = attempts
            self.error = error
        }
    }

    /// One stage of a run's pipeline and its tasks.
    public struct Stage: Codable, Sendable, Equatable {
        /// The run.
        public var run: String
        /// The stage's index in the run's pipeline, and its name.
        public var stage: Int
        public var name: String
        /// Per part or merge.
        public var mode: StageSpec.Mode
        /// The built-in it runs (`store`, `split`); nil for a command.
        public var builtin: StageSpec.Builtin?
        /// How many stages the run's pipeline has.
        public var stages: Int
        /// Whether its tasks were created (its input was complete); false: nothing of it exists yet.
        public var ready: Bool
        /// How many tasks it was given, how many tasks of it the outbox holds, and how many are done
        /// (acknowledged) or dead.
        public var parts: Int
        public var tasks: Int
        public var done: Int
        public var dead: Int
        /// When its last task was acknowledged; nil while it is not complete.
        public var doneAt: Date?

        /// Creates a stage.
        public init(
            run: String,
            stage: Int,
            name: String,
            mode: StageSpec.Mode,
            builtin: StageSpec.Builtin?,
            stages: Int,
            ready: Bool,
            parts: Int,
            tasks: Int,
            done: Int,
            dead: Int,
            doneAt: Date?
        ) {
            self.run = run
            self.stage = stage
            self.name = name
            self.mode = mode
            self.builtin = builtin
            self.stages = stages
            self.ready = ready
            self.parts = parts
            self.tasks = tasks
            self.done = done
            self.dead = dead
            self.doneAt = doneAt
        }
    }

    /// Whether the request was answered.
    public var ok: Bool
    /// Why not.
    public var error: String?
    /// `results`: the parts, oldest first.
    public var parts: [Part]?
    /// `results`: how many parts are in each state (all parts, not only those listed).
    public var counts: [String: Int]?
    /// `runs`: the runs, oldest first.
    public var runs: [Run]?
    /// `delivered`: whether the part changed (false: it was acknowledged already).
    public var changed: Bool?
    /// `stages`: every stage of the runs' pipelines, by run and index; `rerun`: the stages made ready.
    public var stages: [Stage]?
    /// `requeue`: how many dead tasks were put back in the queue.
    public var requeued: Int?

    /// Creates a reply.
    public init(
        ok: Bool,
        error: String? = nil,
        parts: [Part]? = nil,
        counts: [String: Int]? = nil,
        runs: [Run]? = nil,
        changed: Bool? = nil,
        stages: [Stage]? = nil,
        requeued: Int? = nil
    ) {
        self.stages = stages
        self.requeued = requeued
        self.ok = ok
        self.error = error
        self.parts = parts
        self.counts = counts
        self.runs = runs
        self.changed = changed
    }

    public func validate() throws(ProtocolError) {}
}
