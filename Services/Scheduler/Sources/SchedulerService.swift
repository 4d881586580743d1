import Foundation
public import Config
public import ServiceKit
public import ServiceLifecycle
import Storage
import ZMQ

/// Builds the scheduler's parts: its state, the `runs` and `reports` sockets, the job timers and the resender.
public enum SchedulerService {
    /// The scheduler's state database for a configuration.
    public static func statePath(_ configuration: Configuration) -> String {
        (configuration.dataDirectory as NSString).appendingPathComponent("scheduler/state.sqlite")
    }

    /// The services that make up `baton-scheduler`, in start order.
    public static func make(environment: ServiceEnvironment) async throws -> [any Service] {
        let configuration = environment.configuration
        let ledger = try SchedulerState(path: statePath(configuration))
        let heartbeat = SocketOption.peerHeartbeat
        let limits = configuration.limits
        // Bound together: a failure names its key (endpoints.runs, .reports or .control).
        let (runs, reports, controlSocket) = try await ConfigurationError.binding(
            ServiceDescription.scheduler.boundEndpoints(configuration.endpoints)
        ) {
            let runs = try await AsyncSocket(
                context: environment.context,
                configuration: .init(
                    type: .push,
                    // A PUSH receives nothing, but libzmq still reads what a peer sends: bound it too.
                    options: [.sendHighWaterMark(1000), heartbeat, .maxMessageSize(limits.messageBytes)],
                    bind: [configuration.endpoints.runs],
                    lingerOnClose: .seconds(2)
                )
            )
            let reports = try await AsyncSocket(
                context: environment.context,
                configuration: .init(
                    type: .pull,
                    options: [heartbeat, .maxMessageSize(limits.messageBytes), .receiveHighWaterMark(limits.receiveQueue)],
                    bind: [configuration.endpoints.reports]
                )
            )
            let controlSocket = try await AsyncSocket(
                context: environment.context,
                configuration: .init(
                    type: .reply,
                    options: [.maxMessageSize(limits.messageBytes), .receiveHighWaterMark(limits.receiveQueue)],
                    bind: [configuration.endpoints.control]
                )
            )
            return (runs, reports, controlSocket)
        }
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
        return [
            SocketCloser(socket: runs),
            SocketCloser(socket: reports),
            SocketCloser(socket: controlSocket),
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
        ]
    }
}
