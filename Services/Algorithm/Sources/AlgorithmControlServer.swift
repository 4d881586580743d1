import Dispatch
public import Foundation
public import Logging
public import Messaging
import Persistence
public import Config
public import ServiceKit
public import ServiceLifecycle
public import ZMQ

/// Answers `baton results`, `baton audit` and `baton replay` on the algorithm's `algorithm_control` REP socket,
/// from the outbox, the run ledger and the raw result files, which only the algorithm opens.
public struct AlgorithmControlServer: Service {
    private let socket: SocketChannel
    private let answers: AlgorithmControl
    private let rejector: MessageRejector

    /// Creates the server.
    /// - Parameters:
    ///   - publisher: Announces the stages a `rerun` or a replayed part moves (none: not announced).
    ///   - doorbell: The sender's doorbell, rung when a `rerun` or `requeue` makes tasks due.
    public init(
        socket: SocketChannel,
        outbox: Outbox,
        ledger: RunLedger,
        logger: Logger,
        rejector: MessageRejector? = nil,
        publisher: StatusPublisher? = nil,
        doorbell: Doorbell? = nil
    ) {
        self.socket = socket
        self.answers = AlgorithmControl(outbox: outbox, ledger: ledger, publisher: publisher, doorbell: doorbell)
        self.rejector = rejector ?? MessageRejector(socket: "algorithm_control", publisher: nil, logger: logger)
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                guard let frames = try? await socket.receive() else { return }
                let answer: (reply: AlgorithmReply, payload: Data?)
                do {
                    answer = try await answers.handle(try Wire.decode(AlgorithmRequest.self, from: frames).message)
                } catch let error as ProtocolError {
                    // Still a reply: a REQ client waits for one.
                    rejector.reject(error, frames: frames)
                    answer = (AlgorithmReply(ok: false, error: WireText.readable(error.reason)), nil)
                } catch {
                    answer = (AlgorithmReply(ok: false, error: "the algorithm could not answer: \(error)"), nil)
                }
                // REP must answer every request before it can receive the next.
                do { try await socket.send(Wire.encode(answer.reply, payload: answer.payload)) } catch { return }
            }
        }
    }
}

/// The answers of the algorithm's `algorithm_control` socket, without the socket.
public struct AlgorithmControl: Sendable {
    private let outbox: Outbox
    private let ledger: RunLedger
    private let publisher: StatusPublisher?
    private let doorbell: Doorbell?

    /// Answers from this outbox and run ledger.
    /// - Parameters:
    ///   - publisher: Announces the stages a `rerun` or a replayed part moves (`stage.ready`, `stage.done`,
    ///     `pipeline.finished`).
    ///   - doorbell: The sender's doorbell, rung when a `rerun` or `requeue` makes tasks due.
    public init(outbox: Outbox, ledger: RunLedger, publisher: StatusPublisher? = nil, doorbell: Doorbell? = nil) {
        self.outbox = outbox
        self.ledger = ledger
        self.publisher = publisher
        self.doorbell = doorbell
    }

    /// The answer to one request (for `raw`, with the part's bytes).
    public func handle(_ request: AlgorithmRequest) async throws -> (reply: AlgorithmReply, payload: Data?) {
        switch request.command {
        case .results:
            let entries = try await outbox.entries(
                state: request.state,
                cause: request.cause,
                job: request.job,
                runID: request.run,
                from: request.from,
                to: request.to
            )
            let counts = try await outbox.counts()
            return (
                AlgorithmReply(
                    ok: true,
                    parts: entries.map(Self.part),
                    counts: Dictionary(uniqueKeysWithValues: counts.map { ($0.key.rawValue, $0.value) })
                ),
                nil
            )
        case .runs:
            let runs = try await ledger.runs().map {
                AlgorithmReply.Run(request: $0.request, state: $0.state, attempts: $0.attempts, error: $0.error)
            }
            return (AlgorithmReply(ok: true, runs: runs), nil)
        case .raw:
            let (run, stage, part) = (request.run ?? "", request.stage ?? 0, request.part ?? 0)
            guard let entry = try await outbox.entry(runID: run, stage: stage, part: part), !entry.path.isEmpty else {
                return (AlgorithmReply(ok: false, error: "no result recorded for run \(run) part \(part)"), nil)
            }
            let payload = try await Self.read(entry.path)
            guard payload.count == entry.header.size, SHA256.hex(of: payload) == entry.header.sha256 else {
                return (
                    AlgorithmReply(ok: false, error: "\(entry.path) does not match its recorded sha256 \(entry.header.sha256): not stored"),
                    nil
                )
            }
            return (AlgorithmReply(ok: true, parts: [Self.part(entry)]), payload)
        case .delivered:
            // Settled as a processor's ack is, so that a replayed last task completes its stage and its run's
            // pipeline, announced like any other.
            let settled = try await outbox.settle([
                .ack(runID: request.run ?? "", stage: request.stage ?? 0, part: request.part ?? 0, processor: "replay")
            ])
            let progress = settled.flatMap(\.progress)
            publisher?.publish(progress: progress)
            if !progress.isEmpty { doorbell?.ring() }
            return (AlgorithmReply(ok: true, changed: settled.first?.changed ?? false), nil)
        case .rerun, .requeue, .stages:
            return (try await pipelineAnswer(request), nil)
        }
    }

    /// The answers about a run's pipeline: `rerun`, `requeue` and `stages`. A refusal (an unknown run or
    /// stage) is an answer, not an error of the socket.
    private func pipelineAnswer(_ request: AlgorithmRequest) async throws -> AlgorithmReply {
        let run = request.run ?? ""
        do {
            switch request.command {
            case .rerun:
                var stage = request.stage ?? 0
                if let name = request.stageName { stage = try await outbox.stageIndex(runID: run, named: name) }
                let progress = try await outbox.rerun(runID: run, fromStage: stage)
                publisher?.publish(progress: progress)
                doorbell?.ring()
                let overview = try await outbox.stageOverview(runID: run)
                let ready: [AlgorithmReply.Stage] = progress.compactMap {
                    guard case .ready(_, _, let index, _, _) = $0 else { return nil }
                    return overview.first { $0.stage == index }.map(Self.stage)
                }
                return AlgorithmReply(ok: true, stages: ready)
            case .requeue:
                let count = try await outbox.requeueDead(runID: run, stage: request.stage ?? 0, part: request.part)
                if count > 0 { doorbell?.ring() }
                return AlgorithmReply(ok: true, requeued: count)
            default:
                return AlgorithmReply(ok: true, stages: try await outbox.stageOverview(runID: request.run).map(Self.stage))
            }
        } catch let error as StorageError {
            return AlgorithmReply(ok: false, error: WireText.readable(error.description))
        }
    }

    private static func stage(_ overview: Outbox.StageOverview) -> AlgorithmReply.Stage {
        AlgorithmReply.Stage(
            run: overview.runID,
            stage: overview.stage,
            name: overview.spec.name,
            mode: overview.spec.mode,
            builtin: overview.spec.builtin,
            stages: overview.stages,
            ready: overview.ready,
            parts: overview.parts,
            tasks: overview.tasks,
            done: overview.done,
            dead: overview.dead,
            doneAt: overview.doneAt
        )
    }

    private static func part(_ entry: Outbox.Entry) -> AlgorithmReply.Part {
        AlgorithmReply.Part(
            header: entry.header,
            path: entry.path,
            state: entry.state,
            failures: entry.failures,
            lastError: entry.lastError,
            cause: entry.cause
        )
    }

    /// Reads a raw result file on a Dispatch thread: it may be large, and the cooperative pool must not wait on it.
    private static func read(_ path: String) async throws -> Data {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try Data(contentsOf: URL(fileURLWithPath: path)) })
            }
        }
    }
}
