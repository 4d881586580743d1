public import Runtime
public import ServiceLifecycle
import ZMQ

/// Builds the scheduler's parts: the `runs` socket and the job timers.
public enum SchedulerService {
    /// The services that make up `baton-scheduler`, in start order.
    public static func make(environment: ServiceEnvironment) async throws -> [any Service] {
        let runs = try await AsyncSocket(
            context: environment.context,
            configuration: .init(
                type: .push,
                options: [.sendHighWaterMark(1000), .heartbeat(interval: .seconds(2), timeout: .seconds(6), ttl: .seconds(6))],
                bind: [environment.configuration.endpoints.runs],
                lingerOnClose: .seconds(2)
            )
        )
        return [
            SocketCloser(socket: runs),
            JobScheduler(
                jobs: environment.configuration.jobs,
                clock: SystemWallClock(),
                sink: SocketRunSink(socket: runs),
                publisher: environment.publisher,
                logger: environment.logger
            ),
        ]
    }
}
