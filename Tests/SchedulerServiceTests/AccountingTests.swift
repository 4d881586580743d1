import Foundation
import Logging
import Messaging
import Config
import SchedulerService

import Synchronization
import TestSupport
import Testing

/// A sink on which time passes: each request sent moves the clock on, as sending a long catch-up does.
final class SlowSink: RunSink {
    private let clock: ManualClock
    private let step: TimeInterval
    private let sent = Mutex<[RunRequest]>([])

    init(clock: ManualClock, step: TimeInterval) {
        self.clock = clock
        self.step = step
    }

    var requests: [RunRequest] { sent.withLock { $0 } }

    func submit(_ request: RunRequest) -> Bool {
        sent.withLock { $0.append(request) }
        clock.advance(to: clock.now().addingTimeInterval(step))
        return true
    }

    func cancel(_ cancel: RunCancel) -> Bool { true }
}

/// The accounting invariant at the scheduler: every slot of the schedule from the first fire is fired or
/// recorded skipped, whatever happens between a restart, a catch-up and the live timer.
struct AccountingTests {
    static let every: TimeInterval = 0.15

    /// Every slot on the 150 ms grid in `(after, through]`: the oracle, from the schedule's definition alone.
    static func grid(after: Date, through: Date) -> [String] {
        var slots: [String] = []
        var ms = (Timestamp.milliseconds(after) / 150 + 1) * 150
        while ms <= Timestamp.milliseconds(through) {
            slots.append(RunID.make(job: "j", logicalTime: Timestamp.date(milliseconds: ms)))
            ms += 150
        }
        return slots
    }

    /// The grid from just after `start` to the job's cursor, and the slots in it with no record.
    static func unrecorded(_ ledger: SchedulerState, after start: Date) async throws -> (expected: [String], missing: [String]) {
        let cursor = try #require(try await ledger.lastSlot(job: "j"))
        let recorded = Set(try await ledger.fires(job: "j").map(\.request.runID))
        let expected = grid(after: start, through: cursor)
        return (expected, expected.filter { !recorded.contains($0) })
    }

    static func withLedger(_ body: (SchedulerState) async throws -> Void) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("bt-accounting-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        try await body(try await SchedulerState(path: directory.appendingPathComponent("state.sqlite").path))
    }

    /// A scheduler of one 150 ms job over a real ledger.
    static func scheduler(
        misfire: Configuration.MisfirePolicy,
        clock: ManualClock,
        sink: any RunSink,
        ledger: SchedulerState,
        control: JobControl? = nil
    ) -> JobScheduler {
        let logger = Logger(label: "test")
        return JobScheduler(
            jobs: [job(misfire: misfire)],
            clock: clock,
            dispatcher: Dispatcher(sink: sink, ledger: ledger, publisher: nil, resend: nil, logger: logger),
            control: control ?? JobControl(ledger: ledger),
            logger: logger
        )
    }

    static func job(misfire: Configuration.MisfirePolicy) -> Configuration.Job {
        var job = Configuration.Job(name: "j", every: .milliseconds(150), algorithm: .demo(duration: .zero, resultSize: 0))
        job.misfire = misfire
        job.overlap = .allow
        return job
    }

    /// Restarted after 3 s down with `misfire: all`, sending the catch-up takes time (each send moves the clock
    /// on by half a slot): the slots that fall due meanwhile are fired too. The old timer resumed from "now" and
    /// dropped them without a record.
    @Test(.timeLimit(.minutes(3)))
    func catchUpLeavesNoHoleBeforeTheLiveTimer() async throws {
        try await Self.withLedger { ledger in
            let start = Timestamp.date(milliseconds: 1_800_000_000_000)
            // Handled before the restart: the slot at `start`.
            try await ledger.recordFire(.scheduled(job: "j", slot: start, firedAt: start))
            let clock = ManualClock(now: start.addingTimeInterval(3.01))
            let sink = SlowSink(clock: clock, step: Self.every / 2)
            let scheduler = Self.scheduler(misfire: .all, clock: clock, sink: sink, ledger: ledger)
            let task = Task { try await scheduler.run() }
            // Let the live timer take over and fire a few more.
            let end = start.addingTimeInterval(9)
            while clock.now() < end {
                await clock.waitForSleeper()
                clock.advance(to: clock.now().addingTimeInterval(0.05))
            }
            while try await ledger.lastSlot(job: "j").map({ $0 < end.addingTimeInterval(-0.2) }) ?? true {
                await clock.waitForSleeper()
                clock.advance(to: clock.now().addingTimeInterval(0.05))
            }
            task.cancel()
            _ = try? await task.value
            let (expected, missing) = try await Self.unrecorded(ledger, after: start)
            #expect(missing.isEmpty, "slots neither fired nor skipped: \(missing.count) of \(expected.count), e.g. \(missing.prefix(3))")
            #expect(try await ledger.fires(job: "j").allSatisfy { $0.state == .fired }, "misfire all fires every slot")
            #expect(Set(sink.requests.map(\.runID)) == Set(expected))
        }
    }

    /// A long downtime of a fine grid is caught up in bounded chunks: with `misfire: latest` after 12,000
    /// missed slots, exactly the newest fires and every other is recorded skipped, with no hole.
    @Test(.timeLimit(.minutes(3)))
    func aLongDowntimeIsCaughtUpInChunksWithoutAHole() async throws {
        try await Self.withLedger { ledger in
            let start = Timestamp.date(milliseconds: 1_800_000_000_000)
            try await ledger.recordFire(.scheduled(job: "j", slot: start, firedAt: start))
            let clock = ManualClock(now: start.addingTimeInterval(12_000 * Self.every + 0.01))
            let sink = CollectingSink()
            let scheduler = Self.scheduler(misfire: .latest, clock: clock, sink: sink, ledger: ledger)
            let task = Task { try await scheduler.run() }
            await clock.waitForSleeper()
            task.cancel()
            _ = try? await task.value
            let fires = try await ledger.fires(job: "j")
            let expected = Self.grid(after: start, through: clock.now())
            #expect(expected.count == 12_000)
            #expect(Set(fires.map(\.request.runID)).isSuperset(of: expected))
            #expect(sink.requests.map(\.runID) == [expected.last])
            #expect(fires.filter { $0.state == .skipped }.count == 11_999)
        }
    }

    /// `resume --catch-up` after a pause: the same, the slots due while the catch-up is sent are not lost.
    @Test(.timeLimit(.minutes(3)))
    func resumeWithCatchUpLeavesNoHole() async throws {
        try await Self.withLedger { ledger in
            let start = Timestamp.date(milliseconds: 1_800_000_000_000)
            let clock = ManualClock(now: start.addingTimeInterval(0.01))
            let sink = SlowSink(clock: clock, step: Self.every / 2)
            let control = JobControl(ledger: ledger)
            let scheduler = Self.scheduler(misfire: .all, clock: clock, sink: sink, ledger: ledger, control: control)
            let task = Task { try await scheduler.run() }
            await clock.waitForSleeper()
            clock.advance(to: start.addingTimeInterval(0.151))
            while try await ledger.lastSlot(job: "j") == nil { await Task.yield() }
            try await control.pause("j")
            clock.advance(to: start.addingTimeInterval(4))
            try await control.resume("j", catchUp: true)
            let end = start.addingTimeInterval(8)
            while try await ledger.lastSlot(job: "j").map({ $0 < end }) ?? true {
                await clock.waitForSleeper()
                clock.advance(to: clock.now().addingTimeInterval(0.05))
            }
            task.cancel()
            _ = try? await task.value
            let (expected, missing) = try await Self.unrecorded(ledger, after: start)
            #expect(missing.isEmpty, "slots neither fired nor skipped: \(missing.count) of \(expected.count), e.g. \(missing.prefix(3))")
        }
    }

    /// A full disk: nothing is sent unrecorded; the slot is held and sent once it can be recorded.
    @Test(.timeLimit(.minutes(3)))
    func aFullDiskHoldsTheSlotUntilItCanBeRecorded() async throws {
        try await Self.withLedger { ledger in
            let sink = CollectingSink()
            let dispatcher = Dispatcher(sink: sink, ledger: ledger, publisher: nil, resend: nil, logger: Logger(label: "test"))
            let job = Self.job(misfire: .all)
            let first = Timestamp.date(milliseconds: 1_800_000_000_000)
            await dispatcher.dispatch(.scheduled(job: "j", slot: first, firedAt: first), job: job, lateness: 0)
            try await ledger.limitSize(pages: 1)
            // A catch-up big enough to need new pages.
            let slots = (1...300).map { first.addingTimeInterval(Double($0) * Self.every) }
            let handling = Task { await dispatcher.handle(job: job, fire: slots, skip: [], firedAt: Date()) }
            try await Wait.deliberately(.milliseconds(500), because: "nothing may be sent while the state cannot be written")
            #expect(sink.requests.count == 1, "a request was sent without being recorded")
            #expect(try await ledger.lastSlot(job: "j") == first)
            try await ledger.limitSize(pages: nil)
            await handling.value
            #expect(sink.requests.count == 301)
            #expect(try await ledger.fires(job: "j").count == 301)
        }
    }
}
