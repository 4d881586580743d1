import Metrics
import Foundation
import Synchronization
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
/// acknowledged parts) only if something was written. In the service the look is made by the status
/// publisher's heartbeat, on its socket's thread (``ringOnChange(of:_:)``), and the monitor waits for a
/// doorbell rung only when the counter moved: an idle algorithm wakes no timer or pool thread here.
public struct BacklogMonitor: Service {
    private let outbox: Outbox
    private let publisher: StatusPublisher
    private let metrics: ServiceMetrics
    private let logger: Logger
    private let interval: Duration
    private let clock: any Clock<Duration>
    private let changed: Doorbell?

    /// Creates the monitor.
    /// - Parameters:
    ///   - outbox: The outbox counted.
    ///   - publisher: Where `result.backlog` goes.
    ///   - metrics: Where the gauges go.
    ///   - logger: The logger.
    ///   - interval: How often to count.
    ///   - clock: What the interval is waited on.
    ///   - changed: Rung when the outbox may have changed; when given, it is waited on instead of the clock.
    public init(
        outbox: Outbox,
        publisher: StatusPublisher,
        metrics: ServiceMetrics,
        logger: Logger,
        interval: Duration = .seconds(5),
        clock: any Clock<Duration> = ContinuousClock(),
        changed: Doorbell? = nil
    ) {
        self.clock = clock
        self.changed = changed
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
                if let changed {
                    guard await changed.wait() else { return }
                } else {
                    do { try await clock.sleep(for: interval) } catch { return }
                }
            }
        }
    }

    /// A look at the outbox's change counter that rings `doorbell` when it moved since the last look (one
    /// atomic read; for ``StatusPublisher/onHeartbeat(_:)``).
    public static func ringOnChange(of outbox: Outbox, _ doorbell: Doorbell) -> @Sendable () -> Void {
        let last = LastCount(outbox.changeCount)
        return {
            let now = outbox.changeCount
            if last.value.exchange(now, ordering: .relaxed) != now { doorbell.ring() }
        }
    }
}

/// The change count seen at the last look.
private final class LastCount: Sendable {
    let value: Atomic<Int>
    init(_ value: Int) { self.value = Atomic(value) }
}
