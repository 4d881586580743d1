public import Foundation

/// Algorithm → processor: one part of a run's raw result, with its checksum.
public struct ResultHeader: WireMessage, Equatable {
    public static let kind = "result"

    /// The run this result belongs to.
    public var runID: String
    /// The job's name.
    public var job: String
    /// The run's logical time.
    public var logicalTime: Date
    /// This part's index, from 0.
    public var part: Int
    /// How many parts the run's result has.
    public var parts: Int
    /// Size of the payload in bytes.
    public var size: Int
    /// SHA-256 of the payload, 64 lowercase hex digits.
    public var sha256: String
    /// The delivery attempt, from 1; more than 1 means it was sent before.
    public var attempt: Int
    /// The lease in milliseconds: the processor must report it started (a ``LeaseRenewal``) within this
    /// time, and renew it at least this often while it works, or the result is sent to another processor.
    public var leaseMs: Int
    /// When the result became durable on the algorithm's host (its outbox row committed), in microseconds
    /// since 1970; processors measure the hand-off latency from it. Optional.
    public var durableAtUs: Int64?
    /// When the algorithm handed this delivery to its socket, in microseconds since 1970. Optional.
    public var sentAtUs: Int64?

    /// Creates a result header.
    /// - Parameters:
    ///   - runID: The run.
    ///   - job: The job.
    ///   - logicalTime: The run's logical time.
    ///   - part: This part's index.
    ///   - parts: Number of parts.
    ///   - size: Payload size in bytes.
    ///   - sha256: Payload checksum.
    ///   - attempt: Delivery attempt, from 1.
    ///   - leaseMs: The lease, in milliseconds.
    ///   - durableAtUs: When it became durable, in microseconds since 1970.
    public init(
        runID: String,
        job: String,
        logicalTime: Date,
        part: Int = 0,
        parts: Int = 1,
        size: Int,
        sha256: String,
        attempt: Int = 1,
        leaseMs: Int = 30_000,
        durableAtUs: Int64? = nil
    ) {
        self.runID = runID
        self.job = job
        self.logicalTime = logicalTime
        self.part = part
        self.parts = parts
        self.size = size
        self.sha256 = sha256
        self.attempt = attempt
        self.leaseMs = leaseMs
        self.durableAtUs = durableAtUs
    }

    enum CodingKeys: String, CodingKey {
        case runID = "runId", job, logicalTime, part, parts, size, sha256, attempt, leaseMs, durableAtUs, sentAtUs
    }

    public func validate() throws(ProtocolError) {
        try JobName.validate(job, field: "job")
        try RunID.validate(runID, field: "runId", job: job)
        guard parts >= 1 else { throw ProtocolError(.field, "field \"parts\" must be at least 1 (got \(parts))") }
        guard (0..<parts).contains(part) else {
            throw ProtocolError(.field, "field \"part\" must be from 0 to \(parts - 1) (got \(part))")
        }
        guard size >= 0 else { throw ProtocolError(.field, "field \"size\" must not be negative (got \(size))") }
        guard SHA256.isDigest(sha256) else {
            throw ProtocolError(.field, "field \"sha256\" must be 64 lowercase hex digits")
        }
        guard attempt >= 1 else { throw ProtocolError(.field, "field \"attempt\" must be at least 1 (got \(attempt))") }
        guard leaseMs >= 10 else { throw ProtocolError(.field, "field \"leaseMs\" must be at least 10 (got \(leaseMs))") }
    }
}

/// A result header with its payload, checked against each other.
public struct ResultMessage: Sendable, Equatable {
    /// The header.
    public var header: ResultHeader
    /// The raw result bytes.
    public var payload: Data

    /// Creates a result message.
    public init(header: ResultHeader, payload: Data) {
        self.header = header
        self.payload = payload
    }

    /// Decodes and verifies a result: its payload must have the header's size and checksum.
    public init(frames: [Data]) throws(ProtocolError) {
        let (header, payload) = try Wire.decode(ResultHeader.self, from: frames)
        guard let payload else { throw ProtocolError(.frames, "a result needs a payload frame") }
        guard payload.count == header.size else {
            throw ProtocolError(.checksum, "payload of \(header.runID) is \(payload.count) bytes, header says \(header.size)")
        }
        let digest = SHA256.hex(of: payload)
        guard digest == header.sha256 else {
            throw ProtocolError(.checksum, "payload of \(header.runID) has sha256 \(digest), header says \(header.sha256)")
        }
        self.header = header
        self.payload = payload
    }

    /// The frames to send.
    public var frames: [Data] { Wire.encode(header, payload: payload) }
}

/// Processor → algorithm: a result part was stored (or found already stored) and may be forgotten by the sender.
public struct Acknowledgement: WireMessage, Equatable {
    public static let kind = "ack"

    /// The run.
    public var runID: String
    /// The part stored.
    public var part: Int
    /// The processor instance that stored it.
    public var processor: String
    /// True when the part was already stored before (a redelivery).
    public var duplicate: Bool

    /// Creates an acknowledgement.
    public init(runID: String, part: Int, processor: String, duplicate: Bool) {
        self.runID = runID
        self.part = part
        self.processor = processor
        self.duplicate = duplicate
    }

    enum CodingKeys: String, CodingKey {
        case runID = "runId", part, processor, duplicate
    }

    public func validate() throws(ProtocolError) {
        try RunID.validate(runID, field: "runId")
        guard part >= 0 else { throw ProtocolError(.field, "field \"part\" must not be negative (got \(part))") }
    }
}

/// Processor → algorithm: "I am working on this part": sent when processing starts and then periodically,
/// so a long processing step keeps its lease for as long as its processor lives.
public struct LeaseRenewal: WireMessage, Equatable {
    public static let kind = "lease"

    /// The run.
    public var runID: String
    /// The part being processed.
    public var part: Int
    /// The processor instance working on it.
    public var processor: String

    /// Creates a lease renewal.
    public init(runID: String, part: Int, processor: String) {
        self.runID = runID
        self.part = part
        self.processor = processor
    }

    enum CodingKeys: String, CodingKey {
        case runID = "runId", part, processor
    }

    public func validate() throws(ProtocolError) {
        try RunID.validate(runID, field: "runId")
        guard part >= 0 else { throw ProtocolError(.field, "field \"part\" must not be negative (got \(part))") }
    }
}

/// Processor → algorithm: processing a part failed, or the processor is stopping and hands it back.
public struct FailureReport: WireMessage, Equatable {
    public static let kind = "nack"

    /// The run.
    public var runID: String
    /// The part.
    public var part: Int
    /// The processor instance.
    public var processor: String
    /// Why, in words.
    public var reason: String
    /// True when the part is handed back unprocessed (the processor is stopping): not a failed attempt.
    public var handBack: Bool
    /// True when the part was refused as a conflict: its key is stored with another sha256. Permanent, so
    /// the algorithm dead-letters it at once (cause `conflict`) instead of retrying. Absent means false.
    public var conflict: Bool?
    /// True when trying again cannot help (the processor command exists but is not executable): the part is
    /// dead-lettered at once instead of after every retry. Absent on the wire (older processors) means false.
    public var permanent: Bool

    /// Creates a failure report.
    public init(
        runID: String,
        part: Int,
        processor: String,
        reason: String,
        handBack: Bool = false,
        conflict: Bool = false,
        permanent: Bool = false
    ) {
        self.runID = runID
        self.part = part
        self.processor = processor
        self.reason = reason
        self.handBack = handBack
        self.conflict = conflict ? true : nil
        self.permanent = permanent
    }

    enum CodingKeys: String, CodingKey {
        case runID = "runId", part, processor, reason, handBack, conflict, permanent
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        runID = try container.decode(String.self, forKey: .runID)
        part = try container.decode(Int.self, forKey: .part)
        processor = try container.decode(String.self, forKey: .processor)
        reason = try container.decode(String.self, forKey: .reason)
        handBack = try container.decode(Bool.self, forKey: .handBack)
        conflict = try container.decodeIfPresent(Bool.self, forKey: .conflict)
        permanent = try container.decodeIfPresent(Bool.self, forKey: .permanent) ?? false
    }

    public func validate() throws(ProtocolError) {
        try RunID.validate(runID, field: "runId")
        guard part >= 0 else { throw ProtocolError(.field, "field \"part\" must not be negative (got \(part))") }
    }
}
