public import Foundation

/// An event on the status bus: what happened, where, and to which job, run and part.
///
/// On the wire an event is three frames: `[type, "baton/1", JSON]`. The type comes first so that
/// subscribers can filter by prefix (`run.`, `log.`, `service.`).
public struct StatusEvent: Codable, Sendable, Equatable {
    /// The event type, e.g. `run.started`; also the topic frame.
    public var type: String
    /// The publishing service, e.g. `processor`.
    public var source: String
    /// The publishing instance, `host:pid`; sequence numbers count per instance.
    public var instance: String
    /// This process start of the instance: 16 lowercase hex digits, new at every start. An instance name
    /// (`host:pid`, a processor's `--name`) may come back after a restart; with `boot`, a subscriber tells a
    /// restart (new boot, `seq` from 1 again) from lost events (a jump in `seq` within one boot).
    /// Absent only in events from publishers older than this field.
    public var boot: String?
    /// This publisher's event number, from 1 with no gaps within one `boot`; a gap means lost events.
    public var seq: UInt64
    /// When the event happened.
    public var time: Date
    /// The job it concerns.
    public var job: String?
    /// The run it concerns.
    public var run: String?
    /// The result part it concerns.
    public var part: Int?
    /// Log level for `log.*` events: trace, debug, info, notice, warning, error, critical.
    public var level: String?
    /// A human-readable sentence.
    public var message: String?
    /// Further details, as strings (e.g. `lateness_ms`, `size`, `sha256`, `exit_code`).
    public var attributes: [String: String]?

    /// Creates an event.
    public init(
        type: String,
        source: String,
        instance: String,
        boot: String? = nil,
        seq: UInt64 = 0,
        time: Date = Date(),
        job: String? = nil,
        run: String? = nil,
        part: Int? = nil,
        level: String? = nil,
        message: String? = nil,
        attributes: [String: String]? = nil
    ) {
        self.type = type
        self.source = source
        self.instance = instance
        self.boot = boot
        self.seq = seq
        self.time = time
        self.job = job
        self.run = run
        self.part = part
        self.level = level
        self.message = message
        self.attributes = attributes
    }

    /// The frames to publish.
    public var frames: [Data] {
        [Data(type.utf8), Data(Wire.protocolID.utf8), jsonLine]
    }

    /// The event as one line of JSON (no newline), as the logger writes it: keys sorted, no whitespace, strings
    /// escaped as `Timestamp.encoder()` escapes them (see ``canonicalLine``, which writes these bytes by hand).
    public var jsonLine: Data { canonicalLine }

    /// Decodes an event from bus frames.
    public init(frames: [Data]) throws(ProtocolError) {
        guard frames.count == 3 else {
            throw ProtocolError(.frames, "a status event has 3 frames (type, protocol, JSON), got \(frames.count)")
        }
        guard frames[1] == Data(Wire.protocolID.utf8) else {
            throw ProtocolError(.version, "expected protocol \"\(Wire.protocolID)\" in frame 1")
        }
        do {
            self = try Self.canonical(frames[2]) ?? Timestamp.decoder().decode(StatusEvent.self, from: frames[2])
        } catch let error as DecodingError {
            throw ProtocolError(.header, "status event: \(Wire.describe(error))")
        } catch {
            throw ProtocolError(.header, "status event: \(error)")
        }
        guard Data(type.utf8) == frames[0] else {
            throw ProtocolError(.field, "topic frame \"\(String(decoding: frames[0], as: UTF8.self))\" differs from type \"\(type)\"")
        }
    }
}

/// The identity of this process start, shared by every event it publishes (``StatusEvent/boot``).
public enum Boot {
    /// 16 lowercase hex digits, random per process.
    public static let id: String = {
        var generator = SystemRandomNumberGenerator()
        let value = generator.next() as UInt64
        let hex = String(value, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }()
}

/// The event types Baton publishes.
public enum EventType {
    public static let serviceStarted = "service.started"
    public static let serviceStopped = "service.stopped"
    public static let serviceHeartbeat = "service.heartbeat"
    public static let runScheduled = "run.scheduled"
    public static let runStarted = "run.started"
    public static let runProgress = "run.progress"
    public static let runFinished = "run.finished"
    public static let runFailed = "run.failed"
    public static let resultSent = "result.sent"
    public static let resultReceived = "result.received"
    public static let resultStored = "result.stored"
    public static let resultDuplicate = "result.duplicate"
    public static let resultFailed = "result.failed"
    public static let resultAcknowledged = "result.acknowledged"
    /// Small store tasks went to one processor together (in place of a `result.sent` each).
    public static let batchSent = "batch.sent"
    /// A processor stored a batch of small tasks in one transaction (in place of per-task events).
    public static let batchStored = "batch.stored"
    /// The hub settled a batch of one run's stage's tasks (in place of `result.acknowledged` and `task.succeeded` each).
    public static let batchAcknowledged = "batch.acknowledged"
    public static let resultRetry = "result.retry"
    public static let resultDead = "result.dead"
    /// A processor refused a result whose key `(run, part)` is stored with another sha256 (kept aside).
    public static let resultConflict = "result.conflict"
    public static let resultRedelivered = "result.redelivered"
    public static let resultReplayed = "result.replayed"
    public static let resultBacklog = "result.backlog"
    /// A stage's tasks of a run were created (`parts` of them): its input is complete.
    public static let stageReady = "stage.ready"
    /// Every task of a run's stage succeeded.
    public static let stageDone = "stage.done"
    /// A run's last stage is done: it has been processed and stored.
    public static let pipelineFinished = "pipeline.finished"
    /// A processor started a task `(run, stage, part)`.
    public static let taskStarted = "task.started"
    /// The hub settled a task as done (with its outputs, if its stage produces any).
    public static let taskSucceeded = "task.succeeded"
    /// A task failed: it is retried after a delay, or dead (`dead: true`).
    public static let taskFailed = "task.failed"
    public static let runAccepted = "run.accepted"
    public static let runSkipped = "run.skipped"
    public static let runQueued = "run.queued"
    public static let runReplaced = "run.replaced"
    public static let runCancelled = "run.cancelled"
    public static let runOverrun = "run.overrun"
    public static let runDuplicate = "run.duplicate"
    public static let messageRejected = "message.rejected"
    public static let supervisorStarted = "supervisor.started"
    public static let supervisorExited = "supervisor.exited"
    /// A service cannot write its state (disk full): it holds what it cannot record and retries.
    public static let diskFull = "disk.full"
    /// The service can write its state again.
    public static let diskOK = "disk.ok"
    /// A processor cannot reach its PostgreSQL store: it holds its task (renewing the lease) and takes no more
    /// until the store is back.
    public static let storeDown = "store.down"
    /// The processor reaches its store again.
    public static let storeUp = "store.up"
    /// A bound socket turned a client away: its CURVE key is not in the allow-list.
    public static let authRefused = "auth.refused"
    /// Log records: `log.<level>`.
    public static func log(_ level: String) -> String { "log.\(level)" }
}
