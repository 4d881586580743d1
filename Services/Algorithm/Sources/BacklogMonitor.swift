import Metrics
import Foundation
public import Logging
import Messaging
public import ServiceKit
public import MetricsHTTP
public import ServiceLifecycle

/// Watches the outbox and tells what is waiting: results pending (not yet sent or due for a retry), sent
/// (with a processor, not yet acknowledged) and dead-lettered. It sets the `baton_results_backlog{state}`
/// gauges and, whenever the numbers change, publishes `result.backlog`, from which `baton status` shows
/// the backlog.
///
/// Every `interval` it looks at the outbox's change counter and counts (on the state index, skipping
/// acknowledged parts) only if something was written, so an idle algorithm costs nothing here.
public struct BacklogMonitor: Service {
    private let outbox: Outbox
    private let publisher: StatusPublisher
    private let metrics: ServiceMetrics
    private let logger: Logger
    private let interval: Duration
    private let clock: any Clock<Duration>

    /// Creates the monitor.
    /// - Parameters:
    ///   - outbox: The outbox counted.
    ///   - publisher: Where `result.backlog` goes.
    ///   - metrics: Where the gauges go.
    ///   - logger: The logger.
    ///   - interval: How often to count.
    ///   - clock: What the interval is waited on.
    public init(
        outbox: Outbox,
        publisher: StatusPublisher,
        metrics: ServiceMetrics,
        logger: Logger,
        interval: Duration = .seconds(5),
        clock: any Clock<Duration> = ContinuousClock()
    ) {
        self.clock = clock
        self.outbox = outbox
        self.publisher = publisher
        self.metrics = metrics
        self.logger = logger
        self.interval = interval
    }

    public func run() async throws {
        let gauges = [DeliveryState.pending, .sent, .dead].map { metrics.gauge("baton_results_backlog", [("state", $0.rawValue)]) }
        await cancelWhenGracefulShutdown {
            var last: [Int] = []
            var seen = -1
            while !Task.isCancelled {
                let changes = outbox.changeCount
                if changes != seen {
                    do {
                        let backlog = try await outbox.backlog()
                        let now = [backlog.pending, backlog.sent, backlog.dead]
                        for (gauge, value) in zip(gauges, now) { gauge.record(value) }
                        if now != last {
                            publisher.publish(
                                EventType.resultBacklog,
                                attributes: [
                                    DeliveryState.pending.rawValue: "\(now[0])", DeliveryState.sent.rawValue: "\(now[1])",
                                    DeliveryState.dead.rawValue: "\(now[2])",
                                ]
                            )
                            last = now
                        }
                        seen = changes
                    } catch {
                        logger.warning("cannot count the outbox backlog", metadata: ["error": "\(error)"])
                    }
                }
                do { try await clock.sleep(for: interval) } catch { return }
            }
        }
    }
}
