import Foundation
public import Logging
import Messaging
public import Runtime
public import ServiceLifecycle
public import Storage
public import ZMQ

/// Receives processors' acknowledgements on the `acks` PULL socket and marks the outbox entries done.
public struct AckReceiver: Service {
    private let outbox: Outbox
    private let acks: AsyncSocket
    private let publisher: StatusPublisher
    private let logger: Logger

    /// Creates the receiver.
    /// - Parameters:
    ///   - outbox: The outbox to update.
    ///   - acks: The bound PULL socket.
    ///   - publisher: The status bus.
    ///   - logger: The logger.
    public init(outbox: Outbox, acks: AsyncSocket, publisher: StatusPublisher, logger: Logger) {
        self.outbox = outbox
        self.acks = acks
        self.publisher = publisher
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                guard let frames = try? await acks.receive() else { return }
                let ack: Acknowledgement
                do {
                    ack = try Wire.decode(Acknowledgement.self, from: frames).message
                } catch {
                    logger.warning("rejected a malformed acknowledgement", metadata: ["error": "\(error)"])
                    publisher.publish(EventType.messageRejected, message: "\(error)", attributes: ["socket": "acks"])
                    continue
                }
                do {
                    if try await outbox.markAcked(runID: ack.runID, part: ack.part) {
                        publisher.publish(
                            EventType.resultAcknowledged,
                            run: ack.runID,
                            part: ack.part,
                            attributes: ["processor": ack.processor, "duplicate": "\(ack.duplicate)"]
                        )
                    }
                } catch {
                    logger.error("cannot record an acknowledgement", metadata: ["run": "\(ack.runID)", "error": "\(error)"])
                }
            }
        }
    }
}
