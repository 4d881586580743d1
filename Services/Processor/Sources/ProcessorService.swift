import Foundation
import Logging
import Config
import Messaging
import Metrics
import MetricsHTTP
public import ServiceKit
import Commands
public import ServiceLifecycle

import ZMQ

/// One `baton-processor`: connects DEALER to the algorithm's `results` (where it asks for work) and PUSH to its `acks`, and runs
/// the result processor on them until graceful shutdown. The sockets are opened in ``run()`` and closed
/// when it returns, after the processor has stopped.
public struct ProcessorService: Service {
    private let environment: ServiceEnvironment
    private let store: ResultStore

    /// DEALER connected to `results`: asks for work there and receives what it asked for. Its routing id is
    /// fixed for the process, so the algorithm recognises an ask repeated over a new connection as the same ask.
    static func resultsSocket(_ configuration: Configuration) -> AsyncSocket.Configuration {
        var socket = AsyncSocket.Configuration(
            type: .dealer,
            options: [
                .routingID(Array(UUID().uuidString.utf8)), .maxMessageSize(configuration.limits.resultBytes), .peerHeartbeat,
                .reconnectInterval(.milliseconds(100), max: .seconds(2)),
            ],
            connect: [configuration.endpoints.results]
        )
        // The open ask is sent again on every new connection (ResultProcessor).
        socket.watchConnections = true
        return socket
    }

    /// PUSH connected to `acks`; lingers 2 s at stop so the last acknowledgement leaves.
    static func acksSocket(_ configuration: Configuration) -> AsyncSocket.Configuration {
        .init(
            type: .push,
            options: [.immediate(false), .peerHeartbeat, .reconnectInterval(.milliseconds(100), max: .seconds(2))],
            connect: [configuration.endpoints.acks],
            lingerOnClose: .seconds(2)
        )
    }

    /// Prepares one `baton-processor`: kills what a dead processor left and opens the store. Its sockets are
    /// opened when it runs.
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
        let store = try await ResultStore.open(
            configuration,
            name: "baton-processor \(environment.instance)",
            waitThroughOutages: true,
            health: storeHealth(environment)
        )
        return [ProcessorService(environment: environment, store: store)]
    }

    /// A store that cannot be reached holds the task (its lease renewed) and the work after it: said once as
    /// `store.down` and one log line, and once as `store.up` when it is back; every failed attempt is counted.
    static func storeHealth(_ environment: ServiceEnvironment) -> @Sendable (ResultStore.Health) -> Void {
        let publisher = environment.publisher
        let logger = environment.logger
        let errors = environment.metrics.counter("baton_store_errors_total")
        let location = Configuration.Store.redacted(environment.configuration.store.url)
        return { health in
            switch health {
            case .failed:
                errors.increment()
            case .down(let error):
                logger.error("the result store cannot be reached; holding the task and retrying", metadata: ["error": "\(error)"])
                publisher.publish(
                    EventType.storeDown,
                    level: "error",
                    message: "the result store cannot be reached: \(error)",
                    attributes: ["store": location, "error": error]
                )
            case .up:
                logger.notice("the result store is reachable again")
                publisher.publish(
                    EventType.storeUp,
                    level: "notice",
                    message: "the result store is reachable again",
                    attributes: ["store": location]
                )
            }
        }
    }

    public func run() async throws {
        let configuration = environment.configuration
        let context = environment.context
        try await context.withOutbound(Self.acksSocket(configuration)) { acks in
            try await context.withSocket(Self.resultsSocket(configuration)) { results in
                try await environment.runParts([
                    ResultProcessor(
                        handler: ResultHandler(configuration: configuration, store: store, instance: environment.instance),
                        results: results.inbound,
                        asks: results.outbound,
                        acks: acks,
                        instance: environment.instance,
                        publisher: environment.publisher,
                        logger: environment.logger,
                        metrics: environment.metrics,
                        rejector: environment.rejector(socket: "results"),
                        maxAckBytes: configuration.limits.resultBytes
                    )
                ])
            }
        }
    }
}
