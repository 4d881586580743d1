import AlgorithmService
import Foundation
import Logging
import Messaging
import Config
import ServiceKit
import TestSupport
import Testing
import ZMQ
import MetricsHTTP

struct BacklogMonitorTests {
    /// The backlog is published at start and again, on the monitor's clock, once the outbox changed.
    @Test(.timeLimit(.minutes(5)))
    func aChangedBacklogIsPublishedAtTheNextLook() async throws {
        let scratch = Scratch("backlog")
        defer { scratch.remove() }
        let bus = try await Bus(context: Context())
        let outbox = try await Outbox(path: scratch.directory + "/outbox.sqlite")
        _ = try await ResultSenderTests.queue(Data("a".utf8), runID: ResultSenderTests.run(1), in: scratch, outbox: outbox)
        let clock = ManualClock()
        let monitor = BacklogMonitor(
            outbox: outbox,
            publisher: bus.publisher,
            metrics: .disabled,
            logger: Logger(label: "test"),
            interval: .seconds(5),
            clock: clock
        )
        let running = Task { try await monitor.run() }
        defer { running.cancel() }
        #expect(try await bus.next(EventType.resultBacklog).attributes?["pending"] == "1")
        _ = try await ResultSenderTests.queue(Data("b".utf8), runID: ResultSenderTests.run(2), in: scratch, outbox: outbox)
        await clock.waitForSleeper()
        clock.advance(by: .seconds(5))
        #expect(try await bus.next(EventType.resultBacklog).attributes?["pending"] == "2")
        running.cancel()
        _ = try? await running.value
        await bus.close()
    }

    /// Woken by the change watch instead of a clock: a look with the outbox changed rings, and the new backlog
    /// is published.
    @Test(.timeLimit(.minutes(5)))
    func aChangeSeenByTheWatchIsPublished() async throws {
        let scratch = Scratch("backlog-watch")
        defer { scratch.remove() }
        let bus = try await Bus(context: Context())
        let outbox = try await Outbox(path: scratch.directory + "/outbox.sqlite")
        _ = try await ResultSenderTests.queue(Data("a".utf8), runID: ResultSenderTests.run(1), in: scratch, outbox: outbox)
        let changed = Doorbell()
        let look = BacklogMonitor.ringOnChange(of: outbox, changed)
        let monitor = BacklogMonitor(
            outbox: outbox,
            publisher: bus.publisher,
            metrics: .disabled,
            logger: Logger(label: "test"),
            changed: changed
        )
        let running = Task { try await monitor.run() }
        defer { running.cancel() }
        #expect(try await bus.next(EventType.resultBacklog).attributes?["pending"] == "1")
        _ = try await ResultSenderTests.queue(Data("b".utf8), runID: ResultSenderTests.run(2), in: scratch, outbox: outbox)
        look()
        #expect(try await bus.next(EventType.resultBacklog).attributes?["pending"] == "2")
        running.cancel()
        _ = try? await running.value
        await bus.close()
    }
}
