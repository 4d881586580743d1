import Foundation
public import Logging
import Messaging
public import Runtime
public import ServiceLifecycle
public import Storage
public import ZMQ

/// Takes results from the algorithm, one at a time, checks them, processes and stores them, and acknowledges.
///
/// Processing is either the built-in store (JSON lines become rows, anything else a blob) or the configured
/// command. Either way the part's key `(run id, part)` is recorded in the store in one transaction, so a
/// result delivered twice is processed and stored once, and acknowledged each time.
public struct ResultProcessor: Service {
    private let configuration: Configuration
    private let results: AsyncSocket
    private let acks: AsyncSocket
    private let store: ResultStore
    private let instance: String
    private let publisher: StatusPublisher
    private let logger: Logger

    /// Creates the processor.
    /// - Parameters:
    ///   - configuration: Processor settings and data directory.
    ///   - results: The PULL socket connected to the algorithm.
    ///   - acks: The PUSH socket connected to the algorithm.
    ///   - store: The result store.
    ///   - instance: This processor's name, recorded with what it stores.
    ///   - publisher: The status bus.
    ///   - logger: The logger.
    public init(
        configuration: Configuration,
        results: AsyncSocket,
        acks: AsyncSocket,
        store: ResultStore,
        instance: String,
        publisher: StatusPublisher,
        logger: Logger
    ) {
        self.configuration = configuration
        self.results = results
        self.acks = acks
        self.store = store
        self.instance = instance
        self.publisher = publisher
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                guard let frames = try? await results.receive() else { return }
                let message: ResultMessage
                do {
                    message = try ResultMessage(frames: frames)
                } catch {
                    logger.warning("rejected a malformed result", metadata: ["error": "\(error)"])
                    publisher.publish(EventType.messageRejected, message: "\(error)", attributes: ["socket": "results"])
                    continue
                }
                await handle(message)
            }
        }
    }

    private func handle(_ message: ResultMessage) async {
        let header = message.header
        var logger = logger
        logger[metadataKey: "job"] = "\(header.job)"
        logger[metadataKey: "run"] = "\(header.runID)"
        logger[metadataKey: "part"] = "\(header.part)"
        publisher.publish(
            EventType.resultReceived,
            job: header.job,
            run: header.runID,
            part: header.part,
            attributes: ["size": "\(header.size)", "attempt": "\(header.attempt)"]
        )
        let clock = ContinuousClock()
        let start = clock.now
        let outcome: ResultStore.Outcome
        do {
            if configuration.processor.command.isEmpty {
                outcome = try await store.store(header, payload: message.payload, processor: instance)
            } else {
                outcome = try await runCommand(message, logger: logger)
            }
        } catch {
            logger.error("processing failed: \(error)")
            publisher.publish(EventType.resultFailed, job: header.job, run: header.runID, part: header.part, message: "\(error)")
            return
        }
        let elapsed = clock.now - start
        switch outcome {
        case .stored(let records):
            publisher.publish(
                EventType.resultStored,
                job: header.job,
                run: header.runID,
                part: header.part,
                attributes: ["records": "\(records)", "duration_ms": String(format: "%.3f", elapsed / .milliseconds(1))]
            )
        case .duplicate:
            publisher.publish(EventType.resultDuplicate, job: header.job, run: header.runID, part: header.part)
        }
        let ack = Acknowledgement(runID: header.runID, part: header.part, processor: instance, duplicate: outcome == .duplicate)
        acks.post(Wire.encode(ack))
    }

    private func runCommand(_ message: ResultMessage, logger: Logger) async throws -> ResultStore.Outcome {
        let header = message.header
        if try await store.contains(runID: header.runID, part: header.part) { return .duplicate }
        let settings = configuration.processor
        var environment = settings.environment
        environment["BATON_RUN_ID"] = header.runID
        environment["BATON_JOB"] = header.job
        environment["BATON_LOGICAL_TIME"] = Timestamp.format(header.logicalTime)
        environment["BATON_PART"] = "\(header.part)"
        environment["BATON_PARTS"] = "\(header.parts)"
        environment["BATON_SHA256"] = header.sha256
        var input = CommandRunner.Input.data(message.payload)
        var inputFile: String?
        if settings.input == .file {
            let directory = (configuration.dataDirectory as NSString).appendingPathComponent("processor/work")
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let path = (directory as NSString).appendingPathComponent("\(header.runID).part\(header.part).\(getpid())")
            try message.payload.write(to: URL(fileURLWithPath: path))
            environment["BATON_INPUT"] = path
            inputFile = path
            input = .none
        }
        defer { if let inputFile { try? FileManager.default.removeItem(atPath: inputFile) } }
        let runner = CommandRunner(
            argv: settings.command,
            environment: environment,
            workingDirectory: settings.workingDirectory,
            timeout: settings.timeout
        )
        let outcome = try await runner.run(
            input: input,
            onOutput: { line in logger.info("\(line)", metadata: ["stream": "stdout"]) },
            onError: { line in logger.warning("\(line)", metadata: ["stream": "stderr"]) }
        )
        guard outcome.succeeded else { throw StorageError("the processor command \(outcome)") }
        return try await store.recordProcessed(header, processor: instance)
    }
}
