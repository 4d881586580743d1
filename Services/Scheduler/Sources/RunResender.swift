import Foundation
public import Logging
import Messaging
public import Runtime
public import ServiceLifecycle
public import Storage
import ZMQ

/// Sends run requests again until the algorithm reports it accepted them: a request can be lost in a
/// dead algorithm's queue, or in the scheduler's own socket if the scheduler died, but never in the ledger.
public struct RunResender: Service {
    private let ledger: SchedulerState
    private let sink: any RunSink
    private let doorbell: Doorbell
    private let interval: Duration
    private let logger: Logger

    /// Creates the resender.
    /// - Parameters:
    ///   - ledger: The scheduler's state.
    ///   - sink: Where requests are sent.
    ///   - doorbell: Rung after each new fire.
    ///   - interval: How long a request may go unaccepted before it is sent again.
    ///   - logger: The logger.
    public init(ledger: SchedulerState, sink: any RunSink, doorbell: Doorbell, interval: Duration = .seconds(5), logger: Logger) {
        self.ledger = ledger
        self.sink = sink
        self.doorbell = doorbell
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        let seconds = Double(interval.components.seconds) + Double(interval.components.attoseconds) / 1e18
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    // Requests still waiting in the socket were never delivered: sending them again would only
                    // pile up copies. Re-send only once the socket has handed everything to an algorithm.
                    let backedUp = sink.backlog > 0
                    for request in backedUp ? [] : try await ledger.unaccepted(sentBefore: Date().addingTimeInterval(-seconds)) {
                        guard sink.submit(request) else { break }
                        try await ledger.markResent(request.runID)
                        logger.info(
                            "sent a run request again: not accepted yet",
                            metadata: ["job": "\(request.job)", "run": "\(request.runID)"]
                        )
                    }
                    // Sleep until the oldest unaccepted request is due again, or a new fire comes.
                    let oldest = try await ledger.oldestUnacceptedSend()
                    guard await doorbell.wait(until: oldest.map { $0.addingTimeInterval(seconds) }) else { return }
                } catch {
                    logger.error("cannot read the scheduler state", metadata: ["error": "\(error)"])
                    guard await doorbell.wait(until: Date().addingTimeInterval(seconds)) else { return }
                }
            }
        }
    }
}
