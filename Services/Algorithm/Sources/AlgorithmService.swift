import Foundation
import Logging
public import Config
public import ServiceKit
import Commands
public import ServiceLifecycle
import Storage
public import ZMQ

/// Builds the algorithm service's parts: sockets, outbox, run workers, result sender and ack receiver.
public enum AlgorithmService {
    /// The outbox database for a configuration.
    public static func outboxPath(_ configuration: Configuration) -> String {
        (configuration.dataDirectory as NSString).appendingPathComponent("algorithm/outbox.sqlite")
    }

    /// The sockets processors connect to: PUSH `results` (HWM 1, immediate: a result goes only to a
    /// processor ready for it) and PULL `acks`, both bound.
    public static func resultSockets(
        configuration: Configuration,
        context: Context
    ) async throws -> (results: AsyncSocket, acks: AsyncSocket) {
        let heartbeat = SocketOption.peerHeartbeat
        let results = try await AsyncSocket(
            context: context,
            configuration: .init(
                type: .push,
                // HWM 1 bounds the messages queued in libzmq, but small results also pile up in the kernel's TCP
                // buffers (megabytes on loopback): thousands a processor has not started on, and whose leases run
                // out. Small buffers (the kernel doubles them) keep that to about 64 KiB: some 100 small results.
                // A PUSH receives nothing, but libzmq still reads what a peer sends: the small limit bounds that.
                options: [
                    .sendHighWaterMark(1), .immediate(true), .tcpBuffers(send: 16384, receive: 0), heartbeat,
                    .maxMessageSize(configuration.limits.messageBytes),
                ],
                bind: [configuration.endpoints.results]
            )
        )
        do {
            let acks = try await AsyncSocket(
                context: context,
                configuration: .init(
                    type: .pull,
                    // Acknowledgements are small (no payload), so the small limit holds.
                    options: [
                        heartbeat, .maxMessageSize(configuration.limits.messageBytes),
                        .receiveHighWaterMark(configuration.limits.receiveQueue),
                    ],
                    bind: [configuration.endpoints.acks]
                )
            )
            return (results, acks)
        } catch {
            await results.close()
            throw error
        }
    }

    /// The services that make up `baton-algorithm`, in start order.
    public static func make(environment: ServiceEnvironment) async throws -> [any Service] {
        let configuration = environment.configuration
        let processor = configuration.processor
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
        let outbox = try Outbox(
            path: outboxPath(configuration),
            policy: .init(maxAttempts: processor.attempts, initialBackoff: processor.backoff, maxBackoff: processor.backoffMax)
        )
        let heartbeat = SocketOption.peerHeartbeat
        let (results, acks) = try await ConfigurationError.binding(ServiceDescription.algorithm.boundEndpoints(configuration.endpoints)) {
            try await resultSockets(configuration: configuration, context: environment.context)
        }
        let runs = try await AsyncSocket(
            context: environment.context,
            configuration: .init(
                type: .pull,
                options: [
                    .receiveHighWaterMark(1), .maxMessageSize(configuration.limits.messageBytes), heartbeat,
                    .reconnectInterval(.milliseconds(100), max: .seconds(2)),
                ],
                connect: [configuration.endpoints.runs]
            )
        )
        let reports = try await AsyncSocket(
            context: environment.context,
            configuration: .init(
                type: .push,
                options: [heartbeat, .reconnectInterval(.milliseconds(100), max: .seconds(2))],
                connect: [configuration.endpoints.reports],
                lingerOnClose: .seconds(1)
            )
        )
        let doorbell = Doorbell()
        doorbell.ring()
        return [
            SocketCloser(socket: results),
            SocketCloser(socket: acks),
            SocketCloser(socket: runs),
            SocketCloser(socket: reports),
            AckReceiver(
                outbox: outbox,
                acks: acks,
                doorbell: doorbell,
                lease: processor.lease,
                publisher: environment.publisher,
                logger: environment.logger,
                rejector: environment.rejector(socket: "acks")
            ),
            ResultSender(
                outbox: outbox,
                results: results,
                doorbell: doorbell,
                lease: processor.lease,
                publisher: environment.publisher,
                logger: environment.logger
            ),
            RetentionSweeper(configuration: configuration, outbox: outbox, logger: environment.logger),
            BacklogMonitor(outbox: outbox, publisher: environment.publisher, metrics: environment.metrics, logger: environment.logger),
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
        ]
    }
}
