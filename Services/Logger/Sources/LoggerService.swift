import Foundation
public import Logging
import Metrics
import Messaging
public import Runtime
public import ServiceLifecycle
public import ZMQ

/// The status bus and its log: an XSUB/XPUB proxy that every service publishes into and anyone can
/// subscribe to, plus a capture of every event, written to `<data_dir>/logs/events.jsonl` and folded into
/// the status history that `baton status` asks for on the REP `query` socket.
///
/// ```
/// publishers --XPUB connect--> [XSUB status_in | proxy | XPUB status_out] --SUB--> baton watch
///                                              |
///                                         capture (inproc) --> gap tracking --> events.jsonl
///                                                                          \--> StatusKeeper <-- REP query
/// ```
public struct LoggerService: Service {
    private let context: Context
    private let configuration: Configuration
    private let logger: Logger
    private let metrics: ServiceMetrics

    /// Creates the service.
    /// - Parameters:
    ///   - context: The ZeroMQ context.
    ///   - configuration: Endpoints and data directory.
    ///   - logger: Where the logger's own records go.
    ///   - metrics: Events received (`baton_status_events_total`) and lost (`baton_status_events_lost_total`).
    public init(context: Context, configuration: Configuration, logger: Logger, metrics: ServiceMetrics = .disabled) {
        self.context = context
        self.configuration = configuration
        self.logger = logger
        self.metrics = metrics
    }

    /// The log file's path for a configuration.
    public static func logPath(_ configuration: Configuration) -> String {
        (configuration.dataDirectory as NSString).appendingPathComponent("logs/events.jsonl")
    }

    /// The saved status history's path for a configuration.
    public static func statusPath(_ configuration: Configuration) -> String {
        (configuration.dataDirectory as NSString).appendingPathComponent("logger/status.json")
    }

    public func run() async throws {
        let captureEndpoint = "inproc://status-capture-\(UUID().uuidString)"
        let capture = try await AsyncSocket(
            context: context,
            configuration: .init(type: .pull, options: [.receiveHighWaterMark(100_000)], bind: [captureEndpoint])
        )
        // A socket that cannot be bound is a configuration error naming its key (endpoints.status_in, ...).
        let (proxy, query) = try await ConfigurationError.binding(configuration.boundEndpoints(service: "logger")) {
            let proxy: Proxy
            do {
                proxy = try await Proxy(
                    context: context,
                    frontend: .init(
                        type: .xsubscribe,
                        options: [.receiveHighWaterMark(100_000), .maxMessageSize(1 << 20)],
                        bind: [configuration.endpoints.statusIn],
                        // Subscribe to everything upstream, so publishers send even while nobody watches.
                        initialMessages: [[Data([1])]]
                    ),
                    backend: .init(type: .xpublish, options: [.sendHighWaterMark(100_000)], bind: [configuration.endpoints.statusOut]),
                    capture: .init(type: .push, options: [.sendHighWaterMark(100_000)], connect: [captureEndpoint])
                )
            } catch {
                await capture.close()
                throw error
            }
            let query: AsyncSocket
            do {
                query = try await AsyncSocket(
                    context: context,
                    configuration: .init(type: .reply, options: [.maxMessageSize(64 << 10)], bind: [configuration.endpoints.query])
                )
            } catch {
                await proxy.stop()
                await capture.close()
                throw error
            }
            return (proxy, query)
        }
        logger.info(
            "status bus up",
            metadata: ["status_in": "\(configuration.endpoints.statusIn)", "status_out": "\(configuration.endpoints.statusOut)"]
        )
        let writer = try EventLogWriter(
            path: Self.logPath(configuration),
            maxBytes: configuration.log.maxBytes,
            keep: configuration.log.keep
        )
        let keeper = StatusKeeper(path: Self.statusPath(configuration), logger: logger)
        let received = metrics.counter("baton_status_events_total")
        var gaps = GapTracker()
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                group.addTask { await Self.answerQueries(on: query, keeper: keeper, logger: logger) }
                group.addTask {
                    // Save at most once a second, and only after a change.
                    while await keeper.changed.wait() {
                        guard (try? await Task.sleep(for: .seconds(1))) != nil else { return }
                        keeper.saveIfChanged()
                    }
                }
                while !Task.isShuttingDownGracefully {
                    guard let frames = try? await capture.receive() else { break }
                    // The capture also sees subscriptions travelling upstream: one frame, 0x00/0x01 + prefix
                    // (or an empty frame when a subscriber leaves), and the proxy's own TERMINATE when it stops.
                    if frames.count == 1, frames[0].first.map({ $0 <= 1 }) ?? true || frames[0] == Data("TERMINATE".utf8) { continue }
                    let event: StatusEvent
                    do {
                        event = try StatusEvent(frames: frames)
                    } catch {
                        logger.warning("rejected a malformed status event", metadata: ["error": "\(error)"])
                        continue
                    }
                    received.increment()
                    switch gaps.observe(event) {
                    case .gap(let lost):
                        let publisher = "\(event.source)/\(event.instance)"
                        keeper.recordLoss(publisher: publisher, lost: lost)
                        metrics.counter("baton_status_events_lost_total", [("publisher", publisher)]).increment(by: Int64(lost))
                        logger.warning(
                            "lost status events",
                            metadata: ["from": "\(event.source)/\(event.instance)", "lost": "\(lost)", "total_lost": "\(gaps.totalLost)"]
                        )
                    default:
                        break
                    }
                    keeper.apply(event)
                    do {
                        // As published, unless a foreign publisher spread its JSON over several lines.
                        if frames[2].contains(0x0A) || frames[2].contains(0x0D) {
                            try writer.append(event)
                        } else {
                            try writer.append(json: frames[2])
                        }
                    } catch {
                        logger.error("cannot write the event log", metadata: ["path": "\(writer.path)", "error": "\(error)"])
                    }
                }
                group.cancelAll()
            }
        } onGracefulShutdown: {
            // Stop the proxy before closing the capture: a proxy whose capture peer is gone blocks on it.
            Task {
                await proxy.stop()
                await capture.close()
                await query.close()
            }
        }
        await proxy.stop()
        await capture.close()
        await query.close()
        keeper.saveIfChanged()
    }

    /// Answers `baton status` on the REP socket: every request gets exactly one reply.
    private static func answerQueries(on socket: AsyncSocket, keeper: StatusKeeper, logger: Logger) async {
        while !Task.isCancelled {
            guard let frames = try? await socket.receive() else { return }
            let reply: StatusReport
            do {
                _ = try Wire.decode(StatusQuery.self, from: frames)
                reply = keeper.report()
            } catch {
                logger.warning("rejected a malformed status query", metadata: ["error": "\(error)"])
                reply = StatusReport(time: Date(), error: "\(error)")
            }
            do { try await socket.send(Wire.encode(reply)) } catch { return }
        }
    }
}
