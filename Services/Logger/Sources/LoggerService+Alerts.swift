import Config
import Foundation
import Logging
import Messaging
import MetricsHTTP
import ServiceKit
import Synchronization

/// The logger's side of alerts: every captured event goes through the ``AlertWatch`` (under a lock, as the
/// silence check runs on its own task), and what it raises is queued for the ``AlertSender``, never waited for.
final class AlertDispatch: Sendable {
    let watch: Mutex<AlertWatch>
    let inbox = BatchInbox<Alert>()
    let sender: AlertSender
    private let logger: Logger

    init(settings: Configuration.Alerts, dataDirectory: String, logger: Logger, metrics: ServiceMetrics) {
        watch = Mutex(AlertWatch(settings: settings))
        sender = AlertSender(
            settings: settings,
            directory: (dataDirectory as NSString).appendingPathComponent("logger/alerts"),
            logger: logger,
            metrics: metrics
        )
        self.logger = logger
    }

    /// Folds an event in and queues what it raises.
    func observe(_ event: StatusEvent, received: Date) {
        queue(watch.withLock { $0.observe(event, received: received) })
    }

    /// Delivers alerts until cancelled, and looks for services gone silent twice a second.
    func run() async {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.sender.run(self.inbox) }
            if watch.withLock({ $0.watchesServices }) {
                group.addTask {
                    while (try? await Task.sleep(for: .milliseconds(500))) != nil {
                        self.queue(self.watch.withLock { $0.check(now: Date()) })
                    }
                }
            }
        }
    }

    private func queue(_ alerts: [Alert]) {
        for alert in alerts where !inbox.put(alert, limit: AlertSender.queueLimit) {
            logger.error(
                "alert dropped: \(AlertSender.queueLimit) alerts are waiting to be delivered",
                metadata: ["kind": "\(alert.kind)", "summary": "\(alert.summary)"]
            )
        }
    }
}
