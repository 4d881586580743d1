public import Foundation
import NIOPosix
public import Logging
public import Messaging
import Persistence
public import Config
import Commands

/// Processes one result part: the built-in store, or the configured processor command. Either way the
/// part's key `(run id, part)` is recorded in the store in one transaction, so a part processed twice is
/// stored (and given to the command) once. A part whose key is recorded with another sha256 is a conflict:
/// refused and kept aside (see ``ResultStore``), never given to the command. Used by `baton-processor` and by
/// `baton replay`.
public struct ResultHandler: Sendable {
    private let configuration: Configuration
    private let store: ResultStore
    private let instance: String

    /// Creates a handler.
    /// - Parameters:
    ///   - configuration: Processor settings and data directory.
    ///   - store: The result store.
    ///   - instance: The processor's name, recorded with what it stores.
    public init(configuration: Configuration, store: ResultStore, instance: String) {
        self.configuration = configuration
        self.store = store
        self.instance = instance
    }

    /// What handling a task did.
    public enum Handled: Sendable, Equatable {
        /// The last stage (the store, or the processor's own command): stored, a duplicate, or a conflict.
        case stored(ResultStore.Outcome)
        /// A stage that hands on: its output parts, in order, for the hub to commit as the next stage's input.
        case produced([Data])
    }

    /// Handles a task: the stage its header carries (a built-in, or a command), or, for the default pipeline's
    /// one stage, ``process(_:overwrite:logger:)``.
    public func handle(_ message: ResultMessage, logger: Logger) async throws -> Handled {
        guard let stage = message.header.stage else { return .stored(try await process(message, logger: logger)) }
        switch stage.builtin {
        case .store:
            return .stored(try await store.store(message.header, payload: message.concatenatedInput, processor: instance))
        case .split:
            return .produced(Self.split(message.concatenatedInput, lines: stage.lines ?? 1))
        case nil:
            return .produced(try await runStage(stage, message, logger: logger))
        }
    }

    /// Whether this processor stores small store tasks many to a transaction: its store is the built-in one (no
    /// `processor.command`, which takes one task at a time).
    public var storesInBatches: Bool { configuration.processor.command.isEmpty }

    /// Stores tasks for the store (``WorkRequest/isBatchable(_:)``) in one transaction: one outcome each, as
    /// ``handle(_:logger:)`` would give. Any error stores none of them.
    public func storeBatch(_ messages: [ResultMessage]) async throws -> [ResultStore.Outcome] {
        try await store.storeBatch(
            messages.map { ($0.header, $0.header.stage == nil ? $0.payload : $0.concatenatedInput) },
            processor: instance
        )
    }

    /// The built-in `split`: the payload's lines, `lines` to a part, each part's bytes exactly as they were
    /// (a last line without a newline stays without one). No input, no part.
    public static func split(_ payload: Data, lines: Int) -> [Data] {
        var parts: [Data] = []
        var start = payload.startIndex
        var count = 0
        var index = payload.startIndex
        while index < payload.endIndex {
            if payload[index] == UInt8(ascii: "\n") {
                count += 1
                if count == lines {
                    parts.append(payload[start...index])
                    start = payload.index(after: index)
                    count = 0
                }
            }
            index = payload.index(after: index)
        }
        if start < payload.endIndex { parts.append(payload[start..<payload.endIndex]) }
        return parts.map { Data($0) }
    }

    /// Runs a stage's command on a task: its input as a file (a merge's inputs also one file each in
    /// `BATON_INPUT_DIR`), its output from `BATON_OUTPUT_DIR` (each file a part, in name order) or else
    /// `BATON_OUTPUT` (one part) or else nothing.
    private func runStage(_ stage: StageSpec, _ message: ResultMessage, logger: Logger) async throws -> [Data] {
        let header = message.header
        let token = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let work = (configuration.dataDirectory as NSString).appendingPathComponent(
            "processor/work/\(header.runID).s\(header.stageNumber).p\(header.part).\(getpid())-\(token)"
        )
        defer { try? FileManager.default.removeItem(atPath: work) }
        let input = (work as NSString).appendingPathComponent("input")
        let output = (work as NSString).appendingPathComponent("output")
        let outputs = (work as NSString).appendingPathComponent("outputs")
        try FileManager.default.createDirectory(atPath: outputs, withIntermediateDirectories: true)
        var environment = configuration.processor.environment.merging(stage.env ?? [:]) { $1 }
        environment["BATON_STAGE"] = stage.name
        environment["BATON_STAGE_INDEX"] = "\(header.stageNumber)"
        environment["BATON_OUTPUT"] = output
        environment["BATON_OUTPUT_DIR"] = outputs
        if header.inputs != nil {
            let directory = (work as NSString).appendingPathComponent("inputs")
            let inputs = message.inputs
            let whole = message
            try await NIOThreadPool.singleton.runIfActive {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                for (index, data) in inputs.enumerated() {
                    try data.write(to: URL(fileURLWithPath: (directory as NSString).appendingPathComponent(String(format: "%06d", index))))
                }
                try whole.concatenatedInput.write(to: URL(fileURLWithPath: input))
            }
            environment["BATON_INPUT_DIR"] = directory
        } else {
            let payload = message.payload
            try await NIOThreadPool.singleton.runIfActive { try payload.write(to: URL(fileURLWithPath: input)) }
        }
        try await run(
            argv: stage.command ?? [],
            environment: environment,
            workingDirectory: stage.workdir ?? "",
            timeout: .milliseconds(stage.timeoutMs ?? Int(configuration.processor.timeout / .milliseconds(1))),
            inputFile: input,
            asFile: stage.input == "file",
            header: header,
            logger: logger
        )
        return try await NIOThreadPool.singleton.runIfActive {
            let names = try FileManager.default.contentsOfDirectory(atPath: outputs).sorted {
                Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8))
            }
            if !names.isEmpty {
                if FileManager.default.fileExists(atPath: output) {
                    throw StorageError("the stage wrote both $BATON_OUTPUT and files in $BATON_OUTPUT_DIR: write one or the other")
                }
                return try names.map { try Data(contentsOf: URL(fileURLWithPath: (outputs as NSString).appendingPathComponent($0))) }
            }
            return FileManager.default.fileExists(atPath: output) ? [try Data(contentsOf: URL(fileURLWithPath: output))] : []
        }
    }

    /// Processes a part (already checked against its checksum).
    /// - Parameters:
    ///   - message: The part.
    ///   - overwrite: Replace what is stored for this part instead of reporting it as a duplicate or a conflict.
    ///   - logger: Receives the command's output lines.
    /// - Throws: When the store or the command fails; nothing is recorded then.
    public func process(_ message: ResultMessage, overwrite: Bool = false, logger: Logger) async throws -> ResultStore.Outcome {
        let header = message.header
        if overwrite { try await store.delete(runID: header.runID, part: header.part) }
        if configuration.processor.command.isEmpty {
            return try await store.store(header, payload: message.payload, processor: instance)
        }
        if let known = try await store.admit(header, payload: message.payload, processor: instance) { return known }
        try await runCommand(message, logger: logger)
        return try await store.recordProcessed(header, payload: message.payload, processor: instance)
    }

    private func runCommand(_ message: ResultMessage, logger: Logger) async throws {
        let header = message.header
        let settings = configuration.processor
        // The payload goes to the command through a file: as its standard input, or named by BATON_INPUT.
        let directory = (configuration.dataDirectory as NSString).appendingPathComponent("processor/work")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let inputFile = (directory as NSString).appendingPathComponent("\(header.runID).part\(header.part).\(getpid())")
        // The whole result, written on NIO's blocking pool rather than on the cooperative pool.
        let payload = message.payload
        try await NIOThreadPool.singleton.runIfActive { try payload.write(to: URL(fileURLWithPath: inputFile)) }
        defer { try? FileManager.default.removeItem(atPath: inputFile) }
        try await run(
            argv: settings.command,
            environment: settings.environment,
            workingDirectory: settings.workingDirectory,
            timeout: settings.timeout,
            inputFile: inputFile,
            asFile: settings.input == .file,
            header: header,
            logger: logger
        )
    }

    /// Runs a processing command on one task's input file (its standard input, or named by `BATON_INPUT`), with
    /// the task's `BATON_*` variables; throws, with the last lines of its standard error, when it fails.
    private func run(
        argv: [String],
        environment: [String: String],
        workingDirectory: String,
        timeout: Duration,
        inputFile: String,
        asFile: Bool,
        header: ResultHeader,
        logger: Logger
    ) async throws {
        var environment = environment
        environment["BATON_RUN_ID"] = header.runID
        environment["BATON_JOB"] = header.job
        environment["BATON_LOGICAL_TIME"] = Timestamp.format(header.logicalTime)
        environment["BATON_PART"] = "\(header.part)"
        environment["BATON_PARTS"] = "\(header.parts)"
        environment["BATON_SHA256"] = header.sha256
        var input = CommandRunner.Input.file(inputFile)
        if asFile {
            environment["BATON_INPUT"] = inputFile
            input = .none
        }
        let runner = CommandRunner(
            argv: argv,
            environment: environment,
            workingDirectory: workingDirectory,
            timeout: timeout
        )
        let stderr = OutputTail()
        let outcome = try await runner.run(
            input: input,
            onOutput: { line in logger.info("\(line)", metadata: ["stream": "stdout"]) },
            onError: { line in
                stderr.append(line)
                logger.warning("\(line)", metadata: ["stream": "stderr"])
            }
        )
        // The cause goes with the failure (and so into the dead letter): the last lines of standard error.
        guard outcome.succeeded else { throw StorageError(stderr.reason("the processor command \(outcome)")) }
    }
}
