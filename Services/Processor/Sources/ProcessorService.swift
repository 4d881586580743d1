import Logging
import Config
public import ServiceKit
import Commands
public import ServiceLifecycle
import Storage
import ZMQ

/// Builds a processor's parts: its sockets, the store and the processing loop.
public enum ProcessorService {
    /// The services that make up one `baton-processor`, in start order.
    public static func make(environment: ServiceEnvironment) async throws -> [any Service] {
        let configuration = environment.configuration
        // Commands a dead processor left running (its guard normally kills them); another live processor's
        // commands sharing the data directory are never touched: only markers of dead owners match.
        for leftover in CommandOwner.killLeftovers(service: "processor", dataDirectory: configuration.dataDirectory) {
            environment.logger.warning(
                "killed a command left by a dead processor",
                metadata: ["pid": "\(leftover.pid)", "owner": "\(leftover.owner)", "command": "\(leftover.commandLine)"]
            )
        }
        let store = try ResultStore(path: configuration.storePath)
        let heartbeat = SocketOption.peerHeartbeat
        let reconnect = SocketOption.reconnectInterval(.milliseconds(100), max: .seconds(2))
        let results = try await AsyncSocket(
            context: environment.context,
            configuration: .init(
                type: .pull,
                options: [
                    .receiveHighWaterMark(1), .tcpBuffers(send: 0, receive: 16384), .maxMessageSize(configuration.limits.resultBytes),
                    heartbeat, reconnect,
                ],
                connect: [configuration.endpoints.results]
            )
        )
        let acks = try await AsyncSocket(
            context: environment.context,
            configuration: .init(
                type: .push,
                options: [.immediate(false), heartbeat, reconnect],
                connect: [configuration.endpoints.acks],
                lingerOnClose: .seconds(2)
            )
        )
        return [
            SocketCloser(socket: acks),
            SocketCloser(socket: results),
            ResultProcessor(
                handler: ResultHandler(configuration: configuration, store: store, instance: environment.instance),
                results: results,
                acks: acks,
                instance: environment.instance,
                publisher: environment.publisher,
                logger: environment.logger,
                metrics: environment.metrics,
                rejector: environment.rejector(socket: "results")
            ),
        ]
    }
}
