public import Foundation

/// One processing stage of a job's pipeline, as the hub records it and sends it with each of its tasks: what
/// to run (a built-in or a command) and whether it works per part or merges all parts of the stage before it.
///
/// A run keeps the pipeline it started with (``Pipeline/version``), so the stage a task carries is the one
/// its run began with, whatever the configuration says now.
public struct StageSpec: Codable, Sendable, Equatable, Hashable {
    /// How a stage takes its input.
    public enum Mode: String, Codable, Sendable, CaseIterable {
        /// Once per part of its input, in parallel on any free processor.
        case part
        /// Once per run, when every part of the stage before it has succeeded; its input is all of them, in part order.
        case merge
    }

    /// What a stage runs.
    public enum Builtin: String, Codable, Sendable, CaseIterable {
        /// Stores each part in the result store (the last stage; produces no output).
        case store
        /// Splits JSON lines (or any text lines) into parts of ``StageSpec/lines`` lines each.
        case split
    }

    /// The stage's name, unique in its pipeline.
    public var name: String
    /// Per part or merge.
    public var mode: Mode
    /// A built-in, or nil for a command.
    public var builtin: Builtin?
    /// `split`: lines per output part.
    public var lines: Int?
    /// A command's argv.
    public var command: [String]?
    /// A command's extra environment.
    public var env: [String: String]?
    /// A command's working directory (empty or nil: the processor's).
    public var workdir: String?
    /// How a command gets a single part: `stdin` or `file` (named by `BATON_INPUT`).
    public var input: String?
    /// A command's time limit, in milliseconds.
    public var timeoutMs: Int?

    /// Creates a stage.
    public init(
        name: String,
        mode: Mode = .part,
        builtin: Builtin? = nil,
        lines: Int? = nil,
        command: [String]? = nil,
        env: [String: String]? = nil,
        workdir: String? = nil,
        input: String? = nil,
        timeoutMs: Int? = nil
    ) {
        self.name = name
        self.mode = mode
        self.builtin = builtin
        self.lines = lines
        self.command = command
        self.env = env
        self.workdir = workdir
        self.input = input
        self.timeoutMs = timeoutMs
    }

    /// The built-in store, the default last stage.
    public static let store = StageSpec(name: "store", builtin: .store)

    /// True when the stage hands its output to a next stage (commands and `split`); `store` ends a pipeline.
    public var producesOutput: Bool { builtin != .store }

    /// Checks what JSON decoding alone cannot.
    public func validate(field: String) throws(ProtocolError) {
        try JobName.validate(name, field: "\(field).name")
        switch builtin {
        case .store:
            guard mode == .part else { throw ProtocolError(.field, "field \"\(field).mode\": store works per part") }
        case .split:
            guard let lines, lines >= 1 else { throw ProtocolError(.field, "field \"\(field).lines\" must be at least 1") }
        case nil:
            guard let command, let program = command.first, !program.isEmpty else {
                throw ProtocolError(.field, "field \"\(field).command\" must name a program")
            }
        }
        if let input, input != "stdin", input != "file" {
            throw ProtocolError(.field, "field \"\(field).input\" must be stdin or file")
        }
        if let timeoutMs, timeoutMs < 1 { throw ProtocolError(.field, "field \"\(field).timeoutMs\" must be at least 1") }
    }
}

/// A job's processing stages after its algorithm, in order, identified by a version: the digest of their
/// definition. The last stage is always the built-in `store`.
public struct Pipeline: Sendable, Equatable {
    /// The stages, in order.
    public let stages: [StageSpec]
    /// 16 hex digits of the SHA-256 of the stages' canonical JSON; "" for the default pipeline.
    public let version: String

    /// A pipeline of these stages (a `store` stage is appended unless the last one is `store`).
    public init(stages: [StageSpec]) {
        var stages = stages
        if stages.last?.builtin != .store { stages.append(.store) }
        self.stages = stages
        self.version = Self.version(of: stages)
    }

    /// The pipeline of a job without `stages:`: one per-part stage, the processor's own (`processor.command`
    /// or the built-in store). Its tasks carry no stage on the wire, exactly as before pipelines.
    public static let `default` = Pipeline(defaultStages: ())

    private init(defaultStages: Void) {
        stages = [StageSpec(name: "store")]
        version = ""
    }

    /// True for the default pipeline.
    public var isDefault: Bool { version.isEmpty }

    /// The stages as JSON, as the hub records them.
    public var definition: String {
        String(decoding: (try? Self.canonicalEncoder.encode(stages)) ?? Data("[]".utf8), as: UTF8.self)
    }

    /// The pipeline recorded as `definition` under `version`.
    public init(version: String, definition: String) throws {
        if version.isEmpty {
            self = .default
            return
        }
        stages = try JSONDecoder().decode([StageSpec].self, from: Data(definition.utf8))
        self.version = version
    }

    private static var canonicalEncoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    private static func version(of stages: [StageSpec]) -> String {
        let json = (try? canonicalEncoder.encode(stages)) ?? Data()
        return String(SHA256.hex(of: json).prefix(16))
    }
}

/// One part of a stage's input (or output): its size and SHA-256.
public struct PartDigest: Codable, Sendable, Equatable, Hashable {
    /// Bytes.
    public var size: Int
    /// SHA-256, 64 lowercase hex digits.
    public var sha256: String

    /// Creates a digest.
    public init(size: Int, sha256: String) {
        self.size = size
        self.sha256 = sha256
    }

    /// The digest of a list of parts, as a merge task's header carries it: the SHA-256 of their digests,
    /// one per line in part order (so a merge's header names its inputs without hashing their bytes again).
    public static func combined(_ parts: [PartDigest]) -> String {
        SHA256.hex(of: Data(parts.map { "\($0.sha256)\n" }.joined().utf8))
    }

    /// Checks the fields.
    public func validate(field: String) throws(ProtocolError) {
        guard size >= 0 else { throw ProtocolError(.field, "field \"\(field).size\" must not be negative (got \(size))") }
        guard SHA256.isDigest(sha256) else { throw ProtocolError(.field, "field \"\(field).sha256\" must be 64 lowercase hex digits") }
    }
}
