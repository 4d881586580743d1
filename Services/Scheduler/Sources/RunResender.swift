import Foundation
public import Logging
import Messaging
public import ServiceKit
public import ServiceLifecycle

import ZMQ

/// Keeps the scheduler's fire ledger in step with the algorithm, so every fired run reaches an end:
///
/// - a request the algorithm never accepted is sent again (it can be lost in a dead algorithm's queue, or
///   in the scheduler's own socket if the scheduler died, but never in the ledger);
/// - a run the algorithm accepted but has not spoken of for `quiet` is asked about, by sending its request
///   again: the algorithm answers a request it already has with a report of its current state, so a
///   `finished` report lost when the scheduler was killed as it arrived is made good (at start-up for all);
/// - a cancel a user asked for is sent again until the run has ended.
public struct RunResender: Service {
    private let ledger: SchedulerState
    private let sink: any RunSink
    private let doorbell: Doorbell
    private let interval: Duration
    private let quiet: Duration
    private let logger: Logger

    /// Creates the resender.
    /// - Parameters:
    ///   - ledger: The scheduler's state.
    ///   - sink: Where requests are sent.
    ///   - doorbell: Rung after each new fire.
    ///   - interval: How long a request may go unaccepted before it is sent again.
    ///   - quiet: How long an accepted run may go unheard of before the algorithm is asked about it.
    ///   - logger: The logger.
    public init(
        ledger: SchedulerState,
        sink: any RunSink,
        doorbell: Doorbell,
        interval: Duration = .seconds(5),
        quiet: Duration = .seconds(10),
        logger: Logger
    ) {
        self.ledger = ledger
        self.sink = sink
        self.doorbell = doorbell
        self.interval = interval
        self.quiet = quiet
        self.logger = logger
    }

    public func run() async throws {
        let seconds = interval / .seconds(1)
        let quietSeconds = quiet / .seconds(1)
        await cancelWhenGracefulShutdown {
            // At start-up every unsettled run is asked about: reports may have been lost while we were down.
            var startingUp = true
            var nextReconcile = Date()
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
                    if !backedUp, Date() >= nextReconcile {
                        try await reconcile(quietSince: startingUp ? Date() : Date().addingTimeInterval(-quietSeconds))
                        startingUp = false
                        nextReconcile = Date().addingTimeInterval(min(quietSeconds, 5))
                    }
                    // Sleep until the oldest unaccepted request is due again, the next reconciliation, or a new fire.
                    // With no run in flight there is nothing to reconcile: an idle scheduler waits for the next fire
                    // (which rings the doorbell) without waking every few seconds to query an empty ledger.
                    let oldest = try await ledger.oldestUnacceptedSend().map { $0.addingTimeInterval(seconds) }
                    var idle = false
                    if oldest == nil && !startingUp { idle = try await !ledger.anyInFlight() }
                    guard await doorbell.wait(until: idle ? nil : min(oldest ?? nextReconcile, nextReconcile)) else { return }
                } catch {
                    logger.error("cannot read the scheduler state", metadata: ["error": "\(error)"])
                    guard await doorbell.wait(until: Date().addingTimeInterval(seconds)) else { return }
                }
            }
        }
    }

    /// Asks the algorithm about accepted runs it has been quiet about, and re-sends pending cancels.
    private func reconcile(quietSince before: Date) async throws {
        let quiet = try await ledger.unsettled(quietSince: before)
        for fire in quiet {
            guard sink.submit(fire.request) else { break }
            try await ledger.markResent(fire.request.runID)
        }
        if !quiet.isEmpty {
            logger.info("asked the algorithm about runs it has not reported on", metadata: ["runs": "\(quiet.count)"])
        }
        for fire in try await ledger.cancelsPending() {
            let cancel = RunCancel(runID: fire.request.runID, reason: fire.detail ?? "cancelled", queuedOnly: fire.cancelQueuedOnly)
            guard sink.cancel(cancel) else { break }
        }
    }
}
