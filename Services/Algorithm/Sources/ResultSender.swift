import Foundation
public import Logging
import Messaging
public import Runtime
public import ServiceLifecycle
public import Storage
public import ZMQ

/// Drains the outbox into the `results` PUSH socket, oldest first, as fast as processors take results.
///
/// The socket keeps at most one message queued per processor (high-water mark 1, immediate), so a result
/// waits in the outbox, on disk, rather than in a busy processor's queue. Between results it sleeps on the
/// ``Doorbell``; it never polls.
public struct ResultSender: Service {
    private let outbox: Outbox
    private let results: AsyncSocket
    private let doorbell: Doorbell
    private let publisher: StatusPublisher
    private let logger: Logger

    /// Creates the sender.
    /// - Parameters:
    ///   - outbox: The durable queue to drain.
    ///   - results: The bound PUSH socket processors connect to.
    ///   - doorbell: Rung when the outbox gets a new entry.
    ///   - publisher: The status bus.
    ///   - logger: The logger.
    public init(outbox: Outbox, results: AsyncSocket, doorbell: Doorbell, publisher: StatusPublisher, logger: Logger) {
        self.outbox = outbox
        self.results = results
        self.doorbell = doorbell
        self.publisher = publisher
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    while let entry = try await outbox.nextPending() {
                        try await send(entry)
                    }
                } catch is CancellationError {
                    return
                } catch let error as ZMQError where error.isClosed || error.isTerminated {
                    return
                } catch {
                    logger.error("cannot read the outbox", metadata: ["error": "\(error)"])
                }
                guard await doorbell.wait() else { return }
            }
        }
    }

    private func send(_ entry: Outbox.Entry) async throws {
        let header = entry.header
        let payload: Data
        do {
            payload = try Data(contentsOf: URL(fileURLWithPath: entry.path))
        } catch {
            logger.error(
                "raw result file is missing or unreadable; not sent",
                metadata: ["run": "\(header.runID)", "path": "\(entry.path)", "error": "\(error)"]
            )
            try await outbox.markSent(runID: header.runID, part: header.part)
            return
        }
        guard payload.count == header.size, SHA256.hex(of: payload) == header.sha256 else {
            logger.error(
                "raw result file does not match its checksum; not sent",
                metadata: ["run": "\(header.runID)", "path": "\(entry.path)"]
            )
            publisher.publish(EventType.resultFailed, job: header.job, run: header.runID, part: header.part, message: "raw file corrupt")
            try await outbox.markSent(runID: header.runID, part: header.part)
            return
        }
        try await results.send(ResultMessage(header: header, payload: payload).frames)
        try await outbox.markSent(runID: header.runID, part: header.part)
        publisher.publish(
            EventType.resultSent,
            job: header.job,
            run: header.runID,
            part: header.part,
            attributes: ["size": "\(header.size)", "attempt": "\(header.attempt)"]
        )
    }
}
