import Foundation
public import Logging
import Messaging
public import Runtime
public import ServiceLifecycle
public import ZMQ

/// The status bus and its log: an XSUB/XPUB proxy that every service publishes into and anyone can
/// subscribe to, plus a capture of every event, written to `<data_dir>/logs/events.jsonl`.
///
/// ```
/// publishers --XPUB connect--> [XSUB status_in | proxy | XPUB status_out] --SUB--> baton watch
///                                              |
///                                         capture (inproc) --> gap tracking --> events.jsonl
/// ```
public struct LoggerService: Service {
    private let context: Context
    private let configuration: Configuration
    private let logger: Logger

    /// Creates the service.
    /// - Parameters:
    ///   - context: The ZeroMQ context.
    ///   - configuration: Endpoints and data directory.
    ///   - logger: Where the logger's own records go.
    public init(context: Context, configuration: Configuration, logger: Logger) {
        self.context = context
        self.configuration = configuration
        self.logger = logger
    }

    /// The log file's path for a configuration.
    public static func logPath(_ configuration: Configuration) -> String {
        (configuration.dataDirectory as NSString).appendingPathComponent("logs/events.jsonl")
    }

    public func run() async throws {
        let captureEndpoint = "inproc://status-capture-\(UUID().uuidString)"
        let capture = try await AsyncSocket(
            context: context,
            configuration: .init(type: .pull, options: [.receiveHighWaterMark(100_000)], bind: [captureEndpoint])
        )
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
        logger.info(
            "status bus up",
            metadata: ["status_in": "\(configuration.endpoints.statusIn)", "status_out": "\(configuration.endpoints.statusOut)"]
        )
        let writer = try EventLogWriter(
            path: Self.logPath(configuration),
            maxBytes: configuration.log.maxBytes,
            keep: configuration.log.keep
        )
        var gaps = GapTracker()
        await withGracefulShutdownHandler {
            while !Task.isShuttingDownGracefully {
                guard let frames = try? await capture.receive() else { break }
                // The capture also sees subscriptions travelling upstream: one frame, 0x00/0x01 + prefix
                // (or an empty frame when a subscriber leaves).
                if frames.count == 1, frames[0].first.map({ $0 <= 1 }) ?? true { continue }
                let event: StatusEvent
                do {
                    event = try StatusEvent(frames: frames)
                } catch {
                    logger.warning("rejected a malformed status event", metadata: ["error": "\(error)"])
                    continue
                }
                switch gaps.observe(event) {
                case .gap(let lost):
                    logger.warning(
                        "lost status events",
                        metadata: ["from": "\(event.source)/\(event.instance)", "lost": "\(lost)", "total_lost": "\(gaps.totalLost)"]
                    )
                default:
                    break
                }
                do {
                    try writer.append(event)
                } catch {
                    logger.error("cannot write the event log", metadata: ["path": "\(writer.path)", "error": "\(error)"])
                }
            }
        } onGracefulShutdown: {
            // Stop the proxy before closing the capture: a proxy whose capture peer is gone blocks on it.
            Task {
                await proxy.stop()
                await capture.close()
            }
        }
        await proxy.stop()
        await capture.close()
    }
}
