import Foundation
import Logging
import Messaging
import ZMQ
import ServiceKit
import MetricsHTTP
import Config

// The bus's policy, its rejectors and the logger's disk reports; the wiring is in LoggerService.swift.
extension LoggerService {
    /// The capture's and each subscriber's queue, in events.
    static let queue: Int32 = 10_000
    /// Events waiting for the run history beyond this many are dropped (and counted): the event log keeps them.
    static let historyQueue = 100_000

    /// The rejectors of the logger's three bound sockets.
    struct Rejectors: Sendable {
        let statusIn: MessageRejector
        let statusOut: MessageRejector
        let query: MessageRejector

        init(publisher: StatusPublisher?, logger: Logger, metrics: ServiceMetrics, limits: Configuration.Limits) {
            func make(_ socket: String) -> MessageRejector {
                MessageRejector(
                    socket: socket,
                    publisher: publisher,
                    logger: logger,
                    metrics: metrics,
                    maxPerSecond: limits.rejectionsPerSecond
                )
            }
            statusIn = make("status_in")
            statusOut = make("status_out")
            query = make("query")
        }
    }

    /// What the bus passes: well-formed events downstream; nothing upstream (the XSUB already subscribes to
    /// everything, and subscriptions are kept at the XPUB, bounded in number).
    static func policy(_ rejectors: Rejectors, limits: Configuration.Limits, logger: Logger) -> Proxy.Policy {
        Proxy.Policy(
            forward: { frames in
                do {
                    _ = try StatusEvent.validated(frames: frames)
                    return true
                } catch {
                    rejectors.statusIn.reject(error, frames: frames)
                    return false
                }
            },
            backward: { frames in
                if frames.count == 1, let first = frames[0].first, first <= 1 { return false }
                rejectors.statusOut.reject(.kind, detail: "status_out takes only subscriptions (0x01/0x00 + prefix)", frames: frames)
                return false
            },
            maxSubscriptions: limits.subscriptions,
            onSubscriptionOverflow: { held in
                rejectors.statusOut.reject(
                    .subscriptions,
                    detail: "more than \(limits.subscriptions) distinct subscriptions (\(held)): every subscriber was dropped",
                    frames: []
                )
            }
        )
    }
}
