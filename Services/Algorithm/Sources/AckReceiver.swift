import Foundation
public import Logging
import Messaging
public import Runtime
public import ServiceLifecycle
public import Storage
public import ZMQ

/// Receives what processors say about results on the `acks` PULL socket: acknowledgements (stored),
/// lease renewals (still working) and failure reports, and updates the outbox.
public struct AckReceiver: Service {
    private let outbox: Outbox
    private let acks: AsyncSocket
    private let doorbell: Doorbell
    private let lease: Duration
    private let publisher: StatusPublisher
    private let logger: Logger

    /// Creates the receiver.
    /// - Parameters:
    ///   - outbox: The outbox to update.
    ///   - acks: The bound PULL socket.
    ///   - doorbell: Rung when a result becomes due again.
    ///   - lease: How far a renewal extends a lease.
    ///   - publisher: The status bus.
    ///   - logger: The logger.
    public init(outbox: Outbox, acks: AsyncSocket, doorbell: Doorbell, lease: Duration, publisher: StatusPublisher, logger: Logger) {
        self.outbox = outbox
        self.acks = acks
        self.doorbell = doorbell
        self.lease = lease
        self.publisher = publisher
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                guard let frames = try? await acks.receive() else { return }
                do {
                    switch try Wire.kind(of: frames) {
                    case Acknowledgement.kind:
                        try await handle(Wire.decode(Acknowledgement.self, from: frames).message)
                    case LeaseRenewal.kind:
                        let renewal = try Wire.decode(LeaseRenewal.self, from: frames).message
                        try await outbox.renewLease(
                            runID: renewal.runID,
                            part: renewal.part,
                            processor: renewal.processor,
                            until: Date().addingTimeInterval(lease / .seconds(1))
                        )
                    case FailureReport.kind:
                        try await handle(Wire.decode(FailureReport.self, from: frames).message)
                    case let kind:
                        throw ProtocolError(.kind, "expected ack, lease or nack on the acks socket, got \"\(kind)\"")
                    }
                } catch let error as ProtocolError {
                    logger.warning("rejected a malformed message", metadata: ["socket": "acks", "error": "\(error)"])
                    publisher.publish(EventType.messageRejected, message: "\(error)", attributes: ["socket": "acks"])
                } catch {
                    logger.error("cannot update the outbox", metadata: ["error": "\(error)"])
                }
            }
        }
    }

    private func handle(_ ack: Acknowledgement) async throws {
        if try await outbox.markAcked(runID: ack.runID, part: ack.part, processor: ack.processor) {
            publisher.publish(
                EventType.resultAcknowledged,
                run: ack.runID,
                part: ack.part,
                attributes: ["processor": ack.processor, "duplicate": "\(ack.duplicate)"]
            )
        }
    }

    private func handle(_ report: FailureReport) async throws {
        let outcome = try await outbox.recordFailure(
            runID: report.runID,
            part: report.part,
            reason: report.reason,
            countsAsFailure: !report.handBack
        )
        switch outcome {
        case .retry(let delay):
            publisher.publish(
                EventType.resultRetry,
                run: report.runID,
                part: report.part,
                message: report.reason,
                attributes: [
                    "processor": report.processor, "retry_in_ms": "\(Int(delay / .milliseconds(1)))", "hand_back": "\(report.handBack)",
                ]
            )
        case .dead:
            logger.error("result dead-lettered: \(report.reason)", metadata: ["run": "\(report.runID)", "part": "\(report.part)"])
            publisher.publish(
                EventType.resultDead,
                run: report.runID,
                part: report.part,
                message: report.reason,
                attributes: ["processor": report.processor]
            )
        case .ignored:
            break
        }
        doorbell.ring()
    }
}
