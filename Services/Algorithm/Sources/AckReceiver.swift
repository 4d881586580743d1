import Foundation
import Synchronization
public import Logging
import Messaging
public import ServiceKit
public import ServiceLifecycle

public import ZMQ

/// Receives what processors say about results on the `acks` PULL socket: acknowledgements (stored),
/// lease renewals (still working) and failure reports, and updates the outbox.
public struct AckReceiver: Service {
    private let outbox: Outbox
    private let acks: SocketInbound
    private let doorbell: Doorbell
    private let lease: Duration
    private let publisher: StatusPublisher
    private let logger: Logger
    private let rejector: MessageRejector

    /// Creates the receiver.
    /// - Parameters:
    ///   - outbox: The outbox to update.
    ///   - acks: The bound PULL socket.
    ///   - doorbell: Rung when a result becomes due again.
    ///   - lease: How far a renewal extends a lease.
    ///   - publisher: The status bus.
    ///   - logger: The logger.
    ///   - rejector: How malformed messages are turned away; by default an `acks` rejector on `publisher`.
    public init(
        outbox: Outbox,
        acks: SocketInbound,
        doorbell: Doorbell,
        lease: Duration,
        publisher: StatusPublisher,
        logger: Logger,
        rejector: MessageRejector? = nil
    ) {
        self.rejector = rejector ?? MessageRejector(socket: "acks", publisher: publisher, logger: logger)
        self.outbox = outbox
        self.acks = acks
        self.doorbell = doorbell
        self.lease = lease
        self.publisher = publisher
        self.logger = logger
    }

    public func run() async throws {
        // Messages are taken off the socket as they come and applied in batches: whatever arrived while one
        // batch committed goes into the next transaction together (group commit), so under load the outbox
        // does one commit for many acknowledgements and renewals.
        let inbox = Inbox()
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask {
                    while !Task.isCancelled {
                        guard let frames = try? await acks.receive() else { break }
                        do {
                            inbox.put(try decode(frames))
                        } catch {
                            rejector.reject(error, frames: frames)
                        }
                    }
                    inbox.close()
                }
                group.addTask {
                    while let batch = await inbox.take() { await apply(batch) }
                }
            }
        }
    }

    private func decode(_ frames: [Data]) throws -> Message {
        switch try Wire.kind(of: frames) {
        case Acknowledgement.kind: .ack(try Wire.decode(Acknowledgement.self, from: frames).message)
        case LeaseRenewal.kind: .renewal(try Wire.decode(LeaseRenewal.self, from: frames).message)
        case FailureReport.kind: .failure(try Wire.decode(FailureReport.self, from: frames).message)
        case let kind: throw ProtocolError(.kind, "expected ack, lease or nack on the acks socket, got \"\(kind)\"")
        }
    }

    /// Applies a batch in order: runs of acknowledgements and renewals in one transaction each, failure
    /// reports one by one.
    private func apply(_ batch: [Message]) async {
        var pending: [(settlement: Outbox.Settlement, ack: Acknowledgement?)] = []
        func flush() async {
            guard !pending.isEmpty else { return }
            do {
                let changed = try await outbox.settle(pending.map(\.settlement))
                for (entry, changed) in zip(pending, changed) where changed {
                    guard let ack = entry.ack else { continue }
                    publisher.publish(
                        EventType.resultAcknowledged,
                        job: RunID.job(of: ack.runID),
                        run: ack.runID,
                        part: ack.part,
                        attributes: ["processor": ack.processor, "duplicate": "\(ack.duplicate)"]
                    )
                }
            } catch is CancellationError {
                // Stopping: not recorded, so the leases run out and the results are sent again, which is safe.
            } catch {
                // Not recorded: the leases run out and the results are sent again, which is safe.
                logger.error("cannot update the outbox", metadata: ["error": "\(error)", "messages": "\(pending.count)"])
            }
            pending.removeAll()
        }
        let deadline = Date().addingTimeInterval(lease / .seconds(1))
        for message in batch {
            switch message {
            case .ack(let ack):
                pending.append((.ack(runID: ack.runID, part: ack.part, processor: ack.processor), ack))
            case .renewal(let renewal):
                pending.append((.renew(runID: renewal.runID, part: renewal.part, processor: renewal.processor, until: deadline), nil))
            case .failure(let report):
                await flush()
                do {
                    try await handle(report)
                } catch {
                    logger.error("cannot update the outbox", metadata: ["error": "\(error)"])
                }
            }
        }
        await flush()
    }

    private func handle(_ report: FailureReport) async throws {
        if report.conflict == true {
            // Permanent: the processors' store holds this key with another sha256, so every retry would be
            // refused the same way. Dead-lettered at once, with cause `conflict`, never acknowledged.
            if try await outbox.markDead(runID: report.runID, part: report.part, reason: report.reason, cause: Outbox.conflictCause) {
                logger.error("result dead-lettered: \(report.reason)", metadata: ["run": "\(report.runID)", "part": "\(report.part)"])
                publisher.publish(
                    EventType.resultDead,
                    run: report.runID,
                    part: report.part,
                    message: report.reason,
                    attributes: ["processor": report.processor, "cause": Outbox.conflictCause]
                )
            }
            doorbell.ring()
            return
        }
        let outcome = try await outbox.recordFailure(
            runID: report.runID,
            part: report.part,
            reason: report.reason,
            countsAsFailure: !report.handBack,
            permanent: report.permanent && !report.handBack
        )
        switch outcome {
        case .retry(let delay):
            publisher.publish(
                EventType.resultRetry,
                job: RunID.job(of: report.runID),
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
                job: RunID.job(of: report.runID),
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

    enum Message: Sendable {
        case ack(Acknowledgement)
        case renewal(LeaseRenewal)
        case failure(FailureReport)
    }

    /// Messages received and not yet applied; `take` waits for some and returns them all.
    final class Inbox: Sendable {
        private let state = Mutex<(messages: [Message], closed: Bool)>(([], false))
        private let bell = Doorbell()

        func put(_ message: Message) {
            state.withLock { $0.messages.append(message) }
            bell.ring()
        }

        func close() {
            state.withLock { $0.closed = true }
            bell.ring()
        }

        /// Everything received so far (waiting for the first message); nil once closed and empty, or cancelled.
        func take() async -> [Message]? {
            while true {
                let (batch, closed) = state.withLock { state -> ([Message], Bool) in
                    defer { state.messages.removeAll() }
                    return (state.messages, state.closed)
                }
                if !batch.isEmpty { return batch }
                if closed { return nil }
                guard await bell.wait() else { return nil }
            }
        }
    }
}
