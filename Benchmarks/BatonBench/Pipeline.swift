import AlgorithmService
import Foundation
import Glibc
import Logging
import Messaging
import Config
import ServiceKit
import ServiceLifecycle

import ZMQ

/// The algorithm's side of the result pipeline, in this process, built from the algorithm service's own
/// parts: the outbox, the hand-off (seal + commit + doorbell), the sender and the ack receiver, bound on the
/// stack's endpoints, so real `baton-processor` processes take the results. Only the scheduler and the run
/// itself are left out: producers hand off as fast as they can, which is what result throughput measures.
final class Pipeline: @unchecked Sendable {
    let stack: BenchStack
    let outbox: Outbox
    let handOff: ResultHandOff
    let ledger: RunLedger
    private let context: Context
    private var tasks: Task<Void, Never>?
    private var sockets: (results: AsyncSocket, acks: AsyncSocket)?
    private var publisher: StatusPublisher?

    /// - Parameters:
    ///   - stack: Where the endpoints and data directory are.
    ///   - lease: The processors' lease.
    ///   - deliver: Run the sender and ack receiver (false: hand-offs only, nothing read back).
    init(stack: BenchStack, lease: Duration, deliver: Bool = true) async throws {
        self.stack = stack
        let configuration = try Configuration.load(path: stack.configPath, environment: [:])
        // The stack's CURVE key pair (made at first start when missing), as the algorithm service would use it.
        context = Context(curve: try CurveIdentity.load(configuration)?.settings())
        outbox = try await Outbox(path: AlgorithmService.outboxPath(configuration))
        let doorbell = Doorbell()
        ledger = RunLedger(outbox: outbox)
        handOff = ResultHandOff(ledger: ledger, doorbell: doorbell)
        // Handles this object closes in stop(), as the sockets outlive init.
        let results = try await AsyncSocket(context: context, configuration: AlgorithmService.resultsSocket(configuration))
        let acks = try await AsyncSocket(context: context, configuration: AlgorithmService.acksSocket(configuration))
        let sockets = (results: results, acks: acks)
        let publisher = try await StatusPublisher(
            context: context,
            endpoint: configuration.endpoints.statusIn,
            source: "algorithm",
            instance: "bench"
        )
        var logger = Logger(label: "bench")
        logger.logLevel = .warning
        let requests = WorkRequests()
        let parts: [any Service] =
            deliver
            ? [
                publisher,
                WorkRequestReceiver(
                    requests: requests,
                    results: sockets.results.channel.inbound,
                    doorbell: doorbell,
                    rejector: MessageRejector(socket: "results", publisher: publisher, logger: logger)
                ),
                ResultSender(
                    outbox: outbox,
                    results: sockets.results.channel.outbound,
                    requests: requests,
                    doorbell: doorbell,
                    lease: lease,
                    publisher: publisher,
                    logger: logger
                ),
                AckReceiver(
                    dataDirectory: stack.dataDirectory,
                    outbox: outbox,
                    acks: sockets.acks.channel.inbound,
                    doorbell: doorbell,
                    lease: lease,
                    publisher: publisher,
                    logger: logger
                ),
            ]
            : [publisher]
        tasks = Task {
            await withDiscardingTaskGroup { group in
                for part in parts { group.addTask { try? await part.run() } }
            }
        }
        self.sockets = sockets
        self.publisher = publisher
    }

    /// Hands off one small result (one JSON line) as run `bench@<base>~<index + 2>`; returns when it is durable.
    /// With `parts` above 1 the run writes that many files of `payload` into `$BATON_OUTPUT_DIR`, as an
    /// algorithm making many small tasks does: each file is one task.
    func produce(index: Int, base: Date, payload: Data, parts: Int = 1) async throws {
        // One logical time, told apart by the rerun suffix (`~N`): formatted times could collide.
        let time = base
        let runID = "bench@\(Timestamp.format(time))~\(index + 2)"
        let directory = RawResults.directory(dataDirectory: stack.dataDirectory, job: "bench")
        let partial = RawResults.partialPath(dataDirectory: stack.dataDirectory, job: "bench", runID: runID)
        let final = RawResults.resultPath(dataDirectory: stack.dataDirectory, job: "bench", runID: runID)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        if parts > 1 {
            try Self.writeParts(RawResults.outputDirectory(partial: partial), parts: parts, payload: payload)
        } else {
            try payload.write(to: URL(fileURLWithPath: partial))
        }
        try await begin(runID: runID, job: "bench", time: time)
        _ = try await handOff.handOff(
            runID: runID,
            job: "bench",
            partial: partial,
            outputDirectory: RawResults.outputDirectory(partial: partial),
            final: final
        )
    }

    /// Writes `parts` files of `payload` into `folder` (made if needed), named by part number zero-padded so that
    /// byte order of the names is part order, as a user's program would: open, write, close, no fsync (that is
    /// the hand-off's job).
    static func writeParts(_ folder: String, parts: Int, payload: Data) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for part in 0..<parts {
            let name = String(part)
            let fd = open(folder + "/" + String(repeating: "0", count: max(0, 6 - name.count)) + name, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            guard fd >= 0 else { throw BenchError("cannot create a part in \(folder): errno \(errno)") }
            let written = payload.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            close(fd)
            guard written == payload.count else { throw BenchError("cannot write a part in \(folder): errno \(errno)") }
        }
    }

    /// As the run worker does: a run is accepted and running in the ledger before its result is handed off.
    func begin(runID: String, job: String, time: Date) async throws {
        _ = try await ledger.accept(RunRequest(runID: runID, job: job, logicalTime: time, firedAt: time, trigger: .schedule))
        _ = try await ledger.markRunning(runID)
    }

    func stop() async {
        tasks?.cancel()
        await tasks?.value
        if let sockets {
            await sockets.results.close()
            await sockets.acks.close()
        }
    }
}
