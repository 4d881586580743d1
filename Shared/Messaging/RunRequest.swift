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
        try JobName.validate(job, field: "job")
        try RunID.validate(runID, field: "runId", job: job)
    }
}

/// Run ids: `<job>@<logical time>`, e.g. `hourly@2026-03-29T01:00:00.000Z`, so a slot fired twice keeps its id.
///
/// The grammar (docs/PROTOCOL.md, "Names and run ids"), exactly what the scheduler makes:
///
///     run-id    = job-name "@" timestamp [ "~manual" / "~" count ]
///     job-name  = [A-Za-z0-9] [A-Za-z0-9._-]{0,127}
///     timestamp = YYYY "-" MM "-" DD "T" hh ":" mm ":" ss "." mmm "Z"   (UTC, a real date and time, as Timestamp.format writes it)
///     count     = [2-9] / [1-9] [0-9]{1,8}                               (a backfill's rerun: 2, 3, …)
///
/// `~manual` marks a `baton trigger` run, `~N` the Nth run of a slot (`baton backfill --rerun`). Anything else
/// (`NaN`, empty, control characters, `/`, over 200 bytes) is refused where a message is decoded.
public enum RunID {
    /// Longest run id, in bytes: a 128-byte job name, `@`, a 24-byte timestamp and a suffix fit.
    public static let maxLength = 200

    /// The id of a job's run for a logical time.
    public static func make(job: String, logicalTime: Date) -> String {
        "\(job)@\(Timestamp.format(logicalTime))"
    }

    /// The job of a run id: everything before the first `@` (job names have none).
    public static func job(of id: String) -> String {
        id.split(separator: "@", maxSplits: 1).first.map(String.init) ?? id
    }

    /// A run id's parts: the job, the logical time's text, and the suffix after `~` (`manual`, or a count).
    public struct Parts: Sendable, Equatable {
        /// The job's name.
        public var job: String
        /// The logical time as written in the id.
        public var timestamp: String
        /// `manual`, a count from 2, or nil.
        public var suffix: String?

        /// Creates the parts of an id.
        public init(job: String, timestamp: String, suffix: String? = nil) {
            self.job = job
            self.timestamp = timestamp
            self.suffix = suffix
        }
    }

    /// Splits an id by the grammar; nil when it does not follow it.
    public static func parse(_ id: String) -> Parts? {
        guard !id.isEmpty, id.utf8.count <= maxLength, let at = id.firstIndex(of: "@") else { return nil }
        let job = String(id[..<at])
        guard JobName.isValid(job) else { return nil }
        var rest = id[id.index(after: at)...]
        var suffix: String?
        if let tilde = rest.firstIndex(of: "~") {
            let text = String(rest[rest.index(after: tilde)...])
            guard text == "manual" || isCount(text) else { return nil }
            suffix = text
            rest = rest[..<tilde]
        }
        let timestamp = String(rest)
        guard isTimestamp(timestamp) else { return nil }
        return Parts(job: job, timestamp: timestamp, suffix: suffix)
    }

    /// Checks that an id follows the grammar (so it is usable as a key and a file name).
    /// - Parameters:
    ///   - id: The run id.
    ///   - field: The field's name, for the error.
    ///   - job: When given, the job the id must name (the message's own `job` field).
    public static func validate(_ id: String, field: String, job: String? = nil) throws(ProtocolError) {
        guard let parts = parse(id) else {
            throw ProtocolError(
                .field,
                "field \"\(field)\" must be a run id JOB@YYYY-MM-DDTHH:MM:SS.mmmZ with an optional ~manual or ~N (got \(quoted(id)))"
            )
        }
        if let job, parts.job != job {
            throw ProtocolError(.field, "field \"\(field)\" names job \"\(parts.job)\", the message's job is \"\(job)\"")
        }
    }

    /// A value for an error message: quoted, control characters escaped, at most 80 characters.
    static func quoted(_ value: String) -> String {
        var text = ""
        for scalar in value.unicodeScalars.prefix(80) {
            text += scalar.value < 0x20 || scalar.value == 0x7F ? "\\u{\(String(scalar.value, radix: 16))}" : String(scalar)
        }
        return "\"\(text)\"" + (value.unicodeScalars.count > 80 ? "…" : "")
    }

    private static func isCount(_ text: String) -> Bool {
        guard (1...9).contains(text.utf8.count), text.utf8.allSatisfy({ (48...57).contains($0) }), text.first != "0" else { return false }
        return (Int(text) ?? 0) >= 2
    }

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`, a real UTC time written as ``Timestamp/format(_:)`` writes it.
    private static func isTimestamp(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard bytes.count == 24 else { return false }
        for (index, byte) in bytes.enumerated() {
            let expected: UInt8? =
                switch index {
                case 4, 7: UInt8(ascii: "-")
                case 10: UInt8(ascii: "T")
                case 13, 16: UInt8(ascii: ":")
                case 19: UInt8(ascii: ".")
                case 23: UInt8(ascii: "Z")
                default: nil
                }
            if let expected {
                guard byte == expected else { return false }
            } else {
                guard (48...57).contains(byte) else { return false }
            }
        }
        guard let date = Timestamp.parse(text) else { return false }
        return Timestamp.format(date) == text
    }
}

/// Job names: `[A-Za-z0-9][A-Za-z0-9._-]{0,127}`: letters, digits, `-`, `_` and `.`, starting with a letter or
/// digit, at most 128 bytes (docs/PROTOCOL.md, "Names and run ids").
public enum JobName {
    /// Longest job name, in bytes.
    public static let maxLength = 128

    /// True when a name follows the grammar.
    public static func isValid(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard let first = bytes.first, bytes.count <= maxLength, isAlphanumeric(first) else { return false }
        return bytes.allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") }
    }

    /// Checks a job name.
    public static func validate(_ name: String, field: String) throws(ProtocolError) {
        guard isValid(name) else {
            throw ProtocolError(
                .field,
                "field \"\(field)\" must be 1 to \(maxLength) letters, digits, '-', '_' or '.', starting with a letter or digit (got \(RunID.quoted(name)))"
            )
        }
    }

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (48...57).contains(byte) || (65...90).contains(byte) || (97...122).contains(byte)
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
