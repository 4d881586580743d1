import Foundation
public import Config
public import ServiceKit
public import ServiceLifecycle

import ZMQ

/// `baton-scheduler`: binds PUSH `runs` (run requests and cancels), PULL `reports` and REP `control`, and runs
/// the report receiver, resender, control server and job timers on them until graceful shutdown. The sockets
/// are opened in ``run()`` and closed when it returns, after every part has stopped (the timers first).
public struct SchedulerService: Service {
    private let environment: ServiceEnvironment
    private let ledger: SchedulerState

    /// The scheduler's state database for a configuration.
    public static func statePath(_ configuration: Configuration) -> String {
        (configuration.dataDirectory as NSString).appendingPathComponent("scheduler/state.sqlite")
    }

    /// PUSH `runs`, bound; lingers 2 s at stop so requests already queued still leave.
    static func runsSocket(_ configuration: Configuration) -> AsyncSocket.Configuration {
        .init(
            type: .push,
            // A PUSH receives nothing, but libzmq still reads what a peer sends: bound it too.
            options: [.sendHighWaterMark(1000), .peerHeartbeat, .maxMessageSize(configuration.limits.messageBytes)],
            bind: [configuration.endpoints.runs],
            lingerOnClose: .seconds(2)
        )
    }

    /// PULL `reports`, bound: the algorithm's run reports.
    static func reportsSocket(_ configuration: Configuration) -> AsyncSocket.Configuration {
        let limits = configuration.limits
        return .init(
            type: .pull,
            options: [.peerHeartbeat, .maxMessageSize(limits.messageBytes), .receiveHighWaterMark(limits.receiveQueue)],
            bind: [configuration.endpoints.reports]
        )
    }

    /// REP `control`, bound: `baton`'s commands.
    static func controlSocket(_ configuration: Configuration) -> AsyncSocket.Configuration {
        let limits = configuration.limits
        return .init(
            type: .reply,
            options: [.maxMessageSize(limits.messageBytes), .receiveHighWaterMark(limits.receiveQueue)],
            bind: [configuration.endpoints.control]
        )
    }

    /// Prepares `baton-scheduler`: opens its state. Its sockets are opened when it runs.
    public static func make(environment: ServiceEnvironment) async throws -> [any Service] {
        [SchedulerService(environment: environment, ledger: try await SchedulerState(path: statePath(environment.configuration)))]
    }

    public func run() async throws {
        let configuration = environment.configuration
        let context = environment.context
        // A socket that cannot be bound is a configuration error naming its key (endpoints.runs, .reports or
        // .control), before any part runs.
        try await ConfigurationError.binding(ServiceDescription.scheduler.boundEndpoints(configuration.endpoints)) {
            try await context.withOutbound(Self.runsSocket(configuration)) { runs in
                try await context.withInbound(Self.reportsSocket(configuration)) { reports in
                    try await context.withSocket(Self.controlSocket(configuration)) { control in
                        try await runParts(runs: runs, reports: reports, controlSocket: control)
                    }
                }
            }
        }
    }

    /// The parts in start order; graceful shutdown stops them in reverse, and they have all stopped before
    /// the sockets close.
    private func runParts(runs: SocketOutbound, reports: SocketInbound, controlSocket: SocketChannel) async throws {
        let configuration = environment.configuration
        let sink = SocketRunSink(socket: runs)
        let doorbell = Doorbell()
        let dispatcher = Dispatcher(
            sink: sink,
            ledger: ledger,
            publisher: environment.publisher,
            resend: doorbell,
            logger: environment.logger,
            metrics: environment.metrics
        )
        let control = JobControl(ledger: ledger)
        try await environment.runParts([
            ReportReceiver(
                jobs: configuration.jobs,
                ledger: ledger,
                reports: reports,
                dispatcher: dispatcher,
                publisher: environment.publisher,
                logger: environment.logger,
                rejector: environment.rejector(socket: "reports")
            ),
            RunResender(ledger: ledger, sink: sink, doorbell: doorbell, logger: environment.logger),
            ControlServer(
                jobs: configuration.jobs,
                socket: controlSocket,
                ledger: ledger,
                dispatcher: dispatcher,
                control: control,
                logger: environment.logger,
                rejector: environment.rejector(socket: "control")
            ),
            JobScheduler(
                jobs: configuration.jobs,
                clock: SystemWallClock(),
                dispatcher: dispatcher,
                control: control,
                logger: environment.logger
            ),
        ])
    }
}
