import Foundation
import Logging
import Messaging
import Config
import SchedulerService
import Scheduling
import ServiceLifecycleTestKit
import Synchronization
import Testing

/// Collects fired requests and reports each one on a stream.
final class RecordingSink: RunSink {
    let requests: AsyncStream<RunRequest>
    private let continuation: AsyncStream<RunRequest>.Continuation

    init() {
        (requests, continuation) = AsyncStream.makeStream()
    }

    func submit(_ request: RunRequest) -> Bool {
        continuation.yield(request)
        return true
    }

    func cancel(_ cancel: RunCancel) -> Bool { true }
}

struct JobSchedulerTests {
    static func scheduler(
        _ jobs: [Configuration.Job],
        clock: ManualClock,
        sink: RecordingSink,
        control: JobControl = JobControl(ledger: nil)
    ) -> JobScheduler {
        let logger = Logger(label: "test")
        let dispatcher = Dispatcher(sink: sink, ledger: nil, publisher: nil, resend: nil, logger: logger)
        return JobScheduler(jobs: jobs, clock: clock, dispatcher: dispatcher, control: control, logger: logger)
    }

    /// A wall-clock jump forward past several slots fires the newest one (misfire policy `latest`, the default)
    /// and records the others; a jump backward fires nothing twice.
    @Test func clockJumpsForwardAndBackward() async throws {
        let clock = ManualClock(now: Date(timeIntervalSince1970: 1_000.5))
        let sink = RecordingSink()
        let job = Configuration.Job(name: "j", every: .seconds(10), algorithm: .demo(duration: .zero, resultSize: 0))
        let task = Task { try await Self.scheduler([job], clock: clock, sink: sink).run() }
        var iterator = sink.requests.makeAsyncIterator()
        await clock.waitForSleeper()
        clock.advance(to: Date(timeIntervalSince1970: 1_010.001))
        #expect(await iterator.next()?.logicalTime == Date(timeIntervalSince1970: 1_010))
        // Jump forward 35 s: slots 1020, 1030 and 1040 passed; only 1040 fires.
        await clock.waitForSleeper()
        clock.advance(to: Date(timeIntervalSince1970: 1_045))
        #expect(await iterator.next()?.logicalTime == Date(timeIntervalSince1970: 1_040))
        // Jump backward 30 s: the next fire is still 1050, not a repeat of 1020–1040.
        await clock.waitForSleeper()
        clock.advance(to: Date(timeIntervalSince1970: 1_015))
        await clock.waitForSleeper()
        clock.advance(to: Date(timeIntervalSince1970: 1_050.002))
        #expect(await iterator.next()?.logicalTime == Date(timeIntervalSince1970: 1_050))
        task.cancel()
        _ = try? await task.value
    }

    /// Jitter delays a fire by up to its amount; the logical time stays the slot.
    @Test func jitterDelaysTheFireButNotTheLogicalTime() async throws {
        let clock = ManualClock(now: Date(timeIntervalSince1970: 1_000.5))
        let sink = RecordingSink()
        var job = Configuration.Job(name: "j", every: .seconds(10), algorithm: .demo(duration: .zero, resultSize: 0))
        job.jitter = .seconds(5)
        let task = Task { try await Self.scheduler([job], clock: clock, sink: sink).run() }
        var iterator = sink.requests.makeAsyncIterator()
        await clock.waitForSleeper()
        clock.advance(to: Date(timeIntervalSince1970: 1_015.001))
        let request = try #require(await iterator.next())
        #expect(request.logicalTime == Date(timeIntervalSince1970: 1_010))
        #expect(request.firedAt >= Date(timeIntervalSince1970: 1_010))
        task.cancel()
        _ = try? await task.value
    }

    /// A paused job does not fire; resumed without catch-up it continues with the next slot.
    @Test func pausedJobDoesNotFire() async throws {
        let clock = ManualClock(now: Date(timeIntervalSince1970: 1_000.5))
        let sink = RecordingSink()
        let control = JobControl(ledger: nil)
        let job = Configuration.Job(name: "j", every: .seconds(10), algorithm: .demo(duration: .zero, resultSize: 0))
        let task = Task { try await Self.scheduler([job], clock: clock, sink: sink, control: control).run() }
        var iterator = sink.requests.makeAsyncIterator()
        await clock.waitForSleeper()
        try await control.pause("j")
        clock.advance(to: Date(timeIntervalSince1970: 1_035))
        try await control.resume("j", catchUp: false)
        await clock.waitForSleeper()
        clock.advance(to: Date(timeIntervalSince1970: 1_040.001))
        let got = await iterator.next()
        #expect(got?.logicalTime == Date(timeIntervalSince1970: 1_040), "\(String(describing: got))")
        task.cancel()
        _ = try? await task.value
    }

    @Test func firesEachSlotWithItsLogicalTime() async throws {
        let clock = ManualClock(now: Date(timeIntervalSince1970: 1_000.5))
        let sink = RecordingSink()
        let job = Configuration.Job(name: "j", every: .seconds(10), algorithm: .demo(duration: .zero, resultSize: 0))
        let scheduler = Self.scheduler([job], clock: clock, sink: sink)
        let task = Task { try await scheduler.run() }
        var iterator = sink.requests.makeAsyncIterator()
        for slot in [1_010.0, 1_020, 1_030] {
            await clock.waitForSleeper()
            clock.advance(to: Date(timeIntervalSince1970: slot + 0.002))
            let request = try #require(await iterator.next())
            #expect(request.logicalTime == Date(timeIntervalSince1970: slot))
            #expect(request.runID == RunID.make(job: "j", logicalTime: Date(timeIntervalSince1970: slot)))
            #expect(request.trigger == .schedule)
        }
        task.cancel()
        _ = try? await task.value
    }
}

struct JobSchedulerShutdownTests {
    /// With no job left to fire (none configured, or a one-shot job done), the scheduler keeps running until
    /// it is stopped: a service that returned would take the whole process down.
    @Test(.timeLimit(.minutes(1)))
    func runsUntilStoppedWhenNoJobIsLeft() async throws {
        let clock = ManualClock(now: Date(timeIntervalSince1970: 2_000))
        let done = Configuration.Job(
            name: "once",
            trigger: .once(Date(timeIntervalSince1970: 1_000)),
            algorithm: .demo(duration: .zero, resultSize: 0)
        )
        for jobs in [[], [done]] {
            let scheduler = JobSchedulerTests.scheduler(jobs, clock: clock, sink: RecordingSink())
            let stopped = Flag()
            try await testGracefulShutdown { trigger in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        try await scheduler.run()
                        #expect(stopped.isSet, "the scheduler returned before it was stopped")
                    }
                    for _ in 0..<200 { await Task.yield() }
                    stopped.set()
                    trigger.triggerGracefulShutdown()
                    try await group.waitForAll()
                }
            }
        }
    }

    /// A scheduler waiting for a far-off slot stops at once on graceful shutdown (SIGTERM).
    @Test(.timeLimit(.minutes(1)))
    func gracefulShutdownEndsTheWait() async throws {
        let clock = ManualClock(now: Date(timeIntervalSince1970: 0))
        let job = Configuration.Job(name: "daily", every: .seconds(86_400), algorithm: .demo(duration: .zero, resultSize: 0))
        let scheduler = JobSchedulerTests.scheduler([job], clock: clock, sink: RecordingSink())
        try await testGracefulShutdown { trigger in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await scheduler.run() }
                await clock.waitForSleeper()
                trigger.triggerGracefulShutdown()
                try await group.waitForAll()
            }
        }
        #expect(clock.sleeperCount == 0)
    }
}

/// A flag one task sets and another reads.
final class Flag: Sendable {
    private let value = Mutex(false)
    var isSet: Bool { value.withLock { $0 } }
    func set() { value.withLock { $0 = true } }
}
