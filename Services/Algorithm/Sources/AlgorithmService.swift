import Foundation
import Logging
public import Config
public import ServiceKit
import Commands
public import ServiceLifecycle
public import ZMQ

/// `baton-algorithm`: binds ROUTER `results` and PULL `acks` for the processors and REP `algorithm_control` for
/// the command line, connects PULL to the
/// scheduler's `runs` and PUSH to its `reports`, and runs the ack receiver, result sender, retention sweeper,
/// backlog monitor and run worker on them until graceful shutdown. The sockets are opened in ``run()`` and
/// closed when it returns, after every part has stopped (the run worker first, the ack receiver last).
public struct AlgorithmService: Service {
    private let environment: ServiceEnvironment
    private let outbox: Outbox

    /// The outbox database for a configuration.
    public static func outboxPath(_ configuration: Configuration) -> String {
        (configuration.dataDirectory as NSString).appendingPathComponent("algorithm/outbox.sqlite")
    }

    /// ROUTER `results`, bound, where processors connect: each asks for work (`ready`) and is sent only what it
    /// asked for, addressed by its routing id. A task to a processor that went away fails at once (mandatory
    /// routing) instead of vanishing, and a processor that reconnects with its id takes its place (handover).
    public static func resultsSocket(_ configuration: Configuration) -> AsyncSocket.Configuration {
        .init(
            type: .router,
            // What processors send here is small (asks); the small limit bounds what a careless peer can make
            // the algorithm buffer.
            options: [
                .routerMandatory(true), .routerHandover(true), .peerHeartbeat, .maxMessageSize(configuration.limits.messageBytes),
                .receiveHighWaterMark(configuration.limits.receiveQueue),
            ],
            bind: [configuration.endpoints.results]
        )
    }

    /// PULL `acks`, bound: the processors' acknowledgements, renewals and failure reports.
    public static func acksSocket(_ configuration: Configuration) -> AsyncSocket.Configuration {
        .init(
            type: .pull,
            // Acknowledgements are small (no payload), so the small limit holds, unless a job has stages: then
            // an acknowledgement carries its stage's output, as large as a result may be.
            options: [
                .peerHeartbeat,
                .maxMessageSize(
                    configuration.jobs.contains { !$0.stages.isEmpty }
                        ? configuration.limits.resultBytes : configuration.limits.messageBytes
                ),
                .receiveHighWaterMark(configuration.limits.receiveQueue),
            ],
            bind: [configuration.endpoints.acks]
        )
    }

    /// REP `algorithm_control`, bound: `baton results`, `replay` and `audit` ask here for the outbox and the
    /// run ledger, so the command line never opens the algorithm's files.
    static func controlSocket(_ configuration: Configuration) -> AsyncSocket.Configuration {
        .init(
            type: .reply,
            options: [.maxMessageSize(configuration.limits.messageBytes), .receiveHighWaterMark(configuration.limits.receiveQueue)],
            bind: [configuration.endpoints.algorithmControl]
        )
    }

    /// PULL connected to the scheduler's `runs`, HWM 1: a request is taken only when the worker asks for one.
    static func runsSocket(_ configuration: Configuration) -> AsyncSocket.Configuration {
        .init(
            type: .pull,
            options: [
                .receiveHighWaterMark(1), .maxMessageSize(configuration.limits.messageBytes), .peerHeartbeat,
                .reconnectInterval(.milliseconds(100), max: .seconds(2)),
            ],
            connect: [configuration.endpoints.runs]
        )
    }

    /// PUSH connected to the scheduler's `reports`; lingers a second so the last reports leave at stop.
    static func reportsSocket(_ configuration: Configuration) -> AsyncSocket.Configuration {
        .init(
            type: .push,
            options: [.peerHeartbeat, .reconnectInterval(.milliseconds(100), max: .seconds(2))],
            connect: [configuration.endpoints.reports],
            lingerOnClose: .seconds(1)
        )
    }

    /// Prepares `baton-algorithm`: kills what a dead predecessor left and opens the outbox. Its sockets are
    /// opened when it runs.
    public static func make(environment: ServiceEnvironment) async throws -> [any Service] {
        let configuration = environment.configuration
        // Before any run is run again: kill what a dead predecessor left running, then remove the partial
        // files of its attempts (every attempt writes its own; none is running now).
        for leftover in CommandOwner.killLeftovers(service: "algorithm", dataDirectory: configuration.dataDirectory) {
            environment.logger.warning(
                "killed a command left by a dead algorithm",
                metadata: ["pid": "\(leftover.pid)", "owner": "\(leftover.owner)", "command": "\(leftover.commandLine)"]
            )
        }
        for path in RawResults.removePartials(dataDirectory: configuration.dataDirectory) {
            environment.logger.notice("removed the partial result of an interrupted attempt", metadata: ["path": "\(path)"])
        }
        let processor = configuration.processor
        let outbox = try await Outbox(
            path: outboxPath(configuration),
            policy: .init(maxAttempts: processor.attempts, initialBackoff: processor.backoff, maxBackoff: processor.backoffMax)
        )
        return [AlgorithmService(environment: environment, outbox: outbox)]
    }

    public func run() async throws {
        let configuration = environment.configuration
        let context = environment.context
        // A bound socket that cannot be bound is a configuration error naming its key, before any part runs.
        try await ConfigurationError.binding(ServiceDescription.algorithm.boundEndpoints(configuration.endpoints)) {
            try await context.withSocket(Self.resultsSocket(configuration)) { results in
                try await context.withInbound(Self.acksSocket(configuration)) { acks in
                    try await context.withSocket(Self.controlSocket(configuration)) { control in
                        try await context.withInbound(Self.runsSocket(configuration)) { runs in
                            try await context.withOutbound(Self.reportsSocket(configuration)) { reports in
                                try await runParts(results: results, acks: acks, control: control, runs: runs, reports: reports)
                            }
                        }
                    }
                }
            }
        }
    }

    /// The parts in start order; graceful shutdown stops them in reverse (the worker drains while the sender
    /// still sends), and they have all stopped before the sockets close.
    private func runParts(
        results: SocketChannel,
        acks: SocketInbound,
        control: SocketChannel,
        runs: SocketInbound,
        reports: SocketOutbound
    ) async throws {
        let configuration = environment.configuration
        let processor = configuration.processor
        let doorbell = Doorbell()
        doorbell.ring()
        // The backlog is looked at on each heartbeat, on the status socket's thread, and counted only after a change.
        let backlogChanged = Doorbell()
        environment.publisher.onHeartbeat(BacklogMonitor.ringOnChange(of: outbox, backlogChanged))
        let requests = WorkRequests()
        try await environment.runParts([
            WorkRequestReceiver(
                requests: requests,
                results: results.inbound,
                doorbell: doorbell,
                rejector: environment.rejector(socket: "results")
            ),
            AckReceiver(
                dataDirectory: configuration.dataDirectory,
                outbox: outbox,
                acks: acks,
                doorbell: doorbell,
                lease: processor.lease,
                publisher: environment.publisher,
                logger: environment.logger,
                rejector: environment.rejector(socket: "acks"),
                metrics: environment.metrics
            ),
            ResultSender(
                outbox: outbox,
                results: results.outbound,
                requests: requests,
                doorbell: doorbell,
                lease: processor.lease,
                publisher: environment.publisher,
                logger: environment.logger,
                metrics: environment.metrics,
                maxMessageBytes: configuration.limits.resultBytes
            ),
            RetentionSweeper(configuration: configuration, outbox: outbox, logger: environment.logger),
            AlgorithmControlServer(
                socket: control,
                outbox: outbox,
                ledger: RunLedger(outbox: outbox),
                logger: environment.logger,
                rejector: environment.rejector(socket: "algorithm_control"),
                publisher: environment.publisher,
                doorbell: doorbell
            ),
            BacklogMonitor(
                outbox: outbox,
                publisher: environment.publisher,
                metrics: environment.metrics,
                logger: environment.logger,
                changed: backlogChanged
            ),
            RunWorker(
                configuration: configuration,
                runs: runs,
                reports: reports,
                ledger: RunLedger(outbox: outbox),
                doorbell: doorbell,
                publisher: environment.publisher,
                logger: environment.logger,
                metrics: environment.metrics,
                rejector: environment.rejector(socket: "runs")
            ),
        ])
    }
}
