public import Foundation

/// Scheduler → algorithm: run a job for one logical time.
public struct RunRequest: WireMessage, Equatable {
    public static let kind = "run"

    /// Why a run was asked for.
    public enum Trigger: String, Codable, Sendable {
        /// Its schedule came due.
        case schedule
        /// A user asked for it now (`baton trigger`).
        case manual
        /// A user asked for a past slot (`baton backfill`).
        case backfill
    }

    /// Unique id of the run; the same slot of the same job always gets the same id (see ``RunID``).
    public var runID: String
    /// The job's name.
    public var job: String
    /// The slot's scheduled time, which the algorithm sees as `BATON_LOGICAL_TIME`.
    public var logicalTime: Date
    /// When the scheduler actually fired it.
    public var firedAt: Date
    /// Why it runs.
    public var trigger: Trigger

    /// Creates a run request.
    /// - Parameters:
    ///   - runID: Unique id of the run.
    ///   - job: The job's name.
    ///   - logicalTime: The slot's scheduled time.
    ///   - firedAt: When it was fired.
    ///   - trigger: Why it runs.
    public init(runID: String, job: String, logicalTime: Date, firedAt: Date, trigger: Trigger) {
        self.runID = runID
        self.job = job
        self.logicalTime = logicalTime
        self.firedAt = firedAt
        self.trigger = trigger
    }

    /// The request for a job's scheduled slot: its run id is the slot's (see ``RunID``).
    public static func scheduled(job: String, slot: Date, firedAt: Date) -> RunRequest {
        RunRequest(runID: RunID.make(job: job, logicalTime: slot), job: job, logicalTime: slot, firedAt: firedAt, trigger: .schedule)
    }

    enum CodingKeys: String, CodingKey {
        case runID = "runId", job, logicalTime, firedAt, trigger
    }

    public func validate() throws(ProtocolError) {
        try RunID.validate(runID, field: "runId")
        try JobName.validate(job, field: "job")
    }
}

/// Run ids: `<job>@<logical time>`, e.g. `hourly@2026-03-29T01:00:00.000Z`, so a slot fired twice keeps its id.
public enum RunID {
    /// The id of a job's run for a logical time.
    public static func make(job: String, logicalTime: Date) -> String {
        "\(job)@\(Timestamp.format(logicalTime))"
    }

    /// The job of a run id: everything before the first `@` (job names have none).
    public static func job(of id: String) -> String {
        id.split(separator: "@", maxSplits: 1).first.map(String.init) ?? id
    }

    /// Checks that an id is usable as a key and a file name.
    public static func validate(_ id: String, field: String) throws(ProtocolError) {
        guard !id.isEmpty, id.utf8.count <= 200 else {
            throw ProtocolError(.field, "field \"\(field)\" must be 1 to 200 bytes long")
        }
        guard !id.contains("/"), !id.contains("\0"), id != ".", id != ".." else {
            throw ProtocolError(.field, "field \"\(field)\" must not contain \"/\" or NUL")
        }
    }
}

/// Job names: letters, digits, `-`, `_` and `.`, starting with a letter or digit.
public enum JobName {
    /// Checks a job name.
    public static func validate(_ name: String, field: String) throws(ProtocolError) {
        let allowed = name.utf8.allSatisfy { byte in
            (48...57).contains(byte) || (65...90).contains(byte) || (97...122).contains(byte) || byte == 45 || byte == 95
                || byte == 46
        }
        guard !name.isEmpty, name.utf8.count <= 100, allowed, name.first != ".", name.first != "-" else {
            throw ProtocolError(
                .field,
                "field \"\(field)\" must be 1 to 100 letters, digits, '-', '_' or '.', not starting with '.' or '-' (got \"\(name)\")"
            )
        }
    }
}

/// Scheduler → algorithm, on the `runs` channel: stop a run, or drop it if it has not started (`baton cancel`,
/// overlap policy `replace`). The algorithm reports the run's end (`cancelled`, or the outcome it already
/// had); a cancel for a run it does not know yet is remembered, so the request, if it comes, never runs.
public struct RunCancel: WireMessage, Equatable {
    public static let kind = "cancel"

    /// The run to stop.
    public var runID: String
    /// Why.
    public var reason: String
    /// Only if it has not started yet (`baton cancel --queued`); a running run is left to finish.
    public var queuedOnly: Bool?

    /// Creates a cancel request.
    public init(runID: String, reason: String, queuedOnly: Bool? = nil) {
        self.runID = runID
        self.reason = reason
        self.queuedOnly = queuedOnly == true ? true : nil
    }

    enum CodingKeys: String, CodingKey {
        case runID = "runId", reason, queuedOnly
    }

    public func validate() throws(ProtocolError) {
        try RunID.validate(runID, field: "runId")
    }
}
