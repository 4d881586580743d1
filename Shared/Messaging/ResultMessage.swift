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
    /// The task's stage: its index in the run's pipeline. Absent means 0 (the default pipeline's one stage).
    public var stageIndex: Int?
    /// How many stages the run's pipeline has. Absent for the default pipeline.
    public var stages: Int?
    /// The run's pipeline version (``Pipeline/version``). Absent for the default pipeline.
    public var pipeline: String?
    /// What the stage runs, as the run's pipeline recorded it. Absent for the default pipeline, whose one stage
    /// is the processor's own (`processor.command`, or the built-in store).
    public var stage: StageSpec?
    /// A merge task's inputs, in part order, one payload frame each: `size` is their total and `sha256` their
    /// ``PartDigest/combined(_:)`` digest. Absent for a task of one part.
    public var inputs: [PartDigest]?

    /// The task's stage index (0 when absent).
    public var stageNumber: Int { stageIndex ?? 0 }

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
        case stageIndex, stages, pipeline, stage, inputs
    }

    public func validate() throws(ProtocolError) {
        try JobName.validate(job, field: "job")
        if let stageIndex {
            let count = stages ?? 1
            guard (0..<count).contains(stageIndex) else {
                throw ProtocolError(.field, "field \"stageIndex\" must be from 0 to \(count - 1) (got \(stageIndex))")
            }
        }
        try stage?.validate(field: "stage")
        if let inputs {
            guard inputs.count <= 1_000_000 else { throw ProtocolError(.field, "field \"inputs\" lists more than 1000000 parts") }
            for (index, input) in inputs.enumerated() { try input.validate(field: "inputs[\(index)]") }
            guard inputs.reduce(0, { $0 + $1.size }) == size, PartDigest.combined(inputs) == sha256 else {
                throw ProtocolError(.field, "fields \"size\" and \"sha256\" of a merge must be its inputs' total and combined digest")
            }
        }
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
    /// The raw result bytes (empty for a merge).
    public var payload: Data
    /// A merge's inputs, in part order (empty for a task of one part).
    public var inputs: [Data]

    /// Creates a result message.
    public init(header: ResultHeader, payload: Data) {
        self.header = header
        self.payload = payload
        self.inputs = []
    }

    /// Creates a merge task: `header.inputs` must describe `inputs`.
    public init(header: ResultHeader, inputs: [Data]) {
        self.header = header
        self.payload = Data()
        self.inputs = inputs
    }

    /// Decodes and verifies a result: its payload must have the header's size and checksum (a merge: each
    /// input frame its entry of `inputs`).
    public init(frames: [Data]) throws(ProtocolError) {
        let (header, payloads) = try Wire.decodeMany(ResultHeader.self, from: frames)
        if let digests = header.inputs {
            guard payloads.count == digests.count else {
                throw ProtocolError(
                    .frames,
                    "a merge of \(digests.count) inputs needs \(digests.count) payload frames, got \(payloads.count)"
                )
            }
            for (index, (digest, input)) in zip(digests, payloads).enumerated() {
                guard input.count == digest.size, SHA256.hex(of: input) == digest.sha256 else {
                    throw ProtocolError(.checksum, "input \(index) of \(header.runID)'s merge does not match its size and sha256")
                }
            }
            self.header = header
            self.payload = Data()
            self.inputs = payloads
            return
        }
        guard payloads.count <= 1 else {
            throw ProtocolError(.frames, "expected 3 or 4 frames (protocol, kind, header[, payload]), got \(frames.count)")
        }
        guard let payload = payloads.first else { throw ProtocolError(.frames, "a result needs a payload frame") }
        guard payload.count == header.size else {
            throw ProtocolError(.checksum, "payload of \(header.runID) is \(payload.count) bytes, header says \(header.size)")
        }
        let digest = SHA256.hex(of: payload)
        guard digest == header.sha256 else {
            throw ProtocolError(.checksum, "payload of \(header.runID) has sha256 \(digest), header says \(header.sha256)")
        }
        self.header = header
        self.payload = payload
        self.inputs = []
    }

    /// What the task is given as one stream: the payload, or a merge's inputs one after the other in part order
    /// (appended into one buffer of their total size: adding `Data` values pairwise would copy quadratically).
    public var concatenatedInput: Data {
        guard header.inputs != nil else { return payload }
        var whole = Data(capacity: inputs.reduce(0) { $0 + $1.count })
        for input in inputs { whole.append(input) }
        return whole
    }

    /// The frames to send.
    public var frames: [Data] { header.inputs == nil ? Wire.encode(header, payload: payload) : Wire.encode(header, payloads: inputs) }
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
    /// The task's stage index (absent: 0).
    public var stage: Int?
    /// The stage's output parts, in order, one payload frame each after the header; the hub commits them as
    /// the next stage's input when it settles the task. Absent for the last stage (`store`).
    public var outputs: [PartDigest]?

    /// Creates an acknowledgement.
    public init(runID: String, part: Int, processor: String, duplicate: Bool, stage: Int? = nil, outputs: [PartDigest]? = nil) {
        self.runID = runID
        self.part = part
        self.processor = processor
        self.duplicate = duplicate
        self.stage = stage
        self.outputs = outputs
    }

    enum CodingKeys: String, CodingKey {
        case runID = "runId", part, processor, duplicate, stage, outputs
    }

    public func validate() throws(ProtocolError) {
        try RunID.validate(runID, field: "runId")
        guard part >= 0 else { throw ProtocolError(.field, "field \"part\" must not be negative (got \(part))") }
        guard (stage ?? 0) >= 0 else { throw ProtocolError(.field, "field \"stage\" must not be negative") }
        for (index, output) in (outputs ?? []).enumerated() { try output.validate(field: "outputs[\(index)]") }
    }

    /// Decodes an acknowledgement and its output frames, each checked against its entry of `outputs`.
    public static func decode(frames: [Data]) throws(ProtocolError) -> (ack: Acknowledgement, outputs: [Data]) {
        let (ack, payloads) = try Wire.decodeMany(Acknowledgement.self, from: frames)
        let digests = ack.outputs ?? []
        guard payloads.count == digests.count else {
            throw ProtocolError(
                .frames,
                "an ack with \(digests.count) outputs needs \(digests.count) payload frames, got \(payloads.count)"
            )
        }
        for (index, (digest, output)) in zip(digests, payloads).enumerated() {
            guard output.count == digest.size, SHA256.hex(of: output) == digest.sha256 else {
                throw ProtocolError(.checksum, "output \(index) of \(ack.runID) does not match its size and sha256")
            }
        }
        return (ack, payloads)
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
    /// The task's stage index (absent: 0).
    public var stage: Int?

    /// Creates a lease renewal.
    public init(runID: String, part: Int, processor: String, stage: Int? = nil) {
        self.runID = runID
        self.part = part
        self.processor = processor
        self.stage = stage
    }

    enum CodingKeys: String, CodingKey {
        case runID = "runId", part, processor, stage
    }

    public func validate() throws(ProtocolError) {
        try RunID.validate(runID, field: "runId")
        guard part >= 0 else { throw ProtocolError(.field, "field \"part\" must not be negative (got \(part))") }
        guard (stage ?? 0) >= 0 else { throw ProtocolError(.field, "field \"stage\" must not be negative") }
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
    /// The task's stage index (absent: 0).
    public var stage: Int?

    /// Creates a failure report.
    public init(
        runID: String,
        part: Int,
        processor: String,
        reason: String,
        handBack: Bool = false,
        conflict: Bool = false,
        permanent: Bool = false,
        stage: Int? = nil
    ) {
        self.stage = stage
        self.runID = runID
        self.part = part
        self.processor = processor
        self.reason = reason
        self.handBack = handBack
        self.conflict = conflict ? true : nil
        self.permanent = permanent
    }

    enum CodingKeys: String, CodingKey {
        case runID = "runId", part, processor, reason, handBack, conflict, permanent, stage
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
        stage = try container.decodeIfPresent(Int.self, forKey: .stage)
    }

    public func validate() throws(ProtocolError) {
        try RunID.validate(runID, field: "runId")
        guard part >= 0 else { throw ProtocolError(.field, "field \"part\" must not be negative (got \(part))") }
        guard (stage ?? 0) >= 0 else { throw ProtocolError(.field, "field \"stage\" must not be negative") }
    }
}
