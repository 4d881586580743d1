import Foundation
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
        var environment = settings.environment
        environment["BATON_RUN_ID"] = header.runID
        environment["BATON_JOB"] = header.job
        environment["BATON_LOGICAL_TIME"] = Timestamp.format(header.logicalTime)
        environment["BATON_PART"] = "\(header.part)"
        environment["BATON_PARTS"] = "\(header.parts)"
        environment["BATON_SHA256"] = header.sha256
        // The payload goes to the command through a file: as its standard input, or named by BATON_INPUT.
        let directory = (configuration.dataDirectory as NSString).appendingPathComponent("processor/work")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let inputFile = (directory as NSString).appendingPathComponent("\(header.runID).part\(header.part).\(getpid())")
        // The whole result, written on NIO's blocking pool rather than on the cooperative pool.
        let payload = message.payload
        try await NIOThreadPool.singleton.runIfActive { try payload.write(to: URL(fileURLWithPath: inputFile)) }
        defer { try? FileManager.default.removeItem(atPath: inputFile) }
        var input = CommandRunner.Input.file(inputFile)
        if settings.input == .file {
            environment["BATON_INPUT"] = inputFile
            input = .none
        }
        let runner = CommandRunner(
            argv: settings.command,
            environment: environment,
            workingDirectory: settings.workingDirectory,
            timeout: settings.timeout
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
