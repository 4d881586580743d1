import Foundation
import Logging
import Messaging
import Config
import SchedulerService

import TestSupport
import Testing

/// Collects requests and cancels.
final class CollectingSink: RunSink, @unchecked Sendable {
    // `@unchecked`: both arrays are only touched under `lock`.
    private let lock = NSLock()
    private var sentRequests: [RunRequest] = []
    private var sentCancels: [RunCancel] = []

    var requests: [RunRequest] { lock.withLock { sentRequests } }
    var cancels: [RunCancel] { lock.withLock { sentCancels } }

    func submit(_ request: RunRequest) -> Bool {
        lock.withLock { sentRequests.append(request) }
        return true
    }

    func cancel(_ cancel: RunCancel) -> Bool {
        lock.withLock { sentCancels.append(cancel) }
        return true
    }
}

struct DispatcherTests {
    static func request(_ seconds: Double) -> RunRequest {
        let slot = Date(timeIntervalSince1970: seconds)
        return RunRequest(runID: RunID.make(job: "j", logicalTime: slot), job: "j", logicalTime: slot, firedAt: slot, trigger: .schedule)
    }

    /// Runs `body` with a dispatcher over a fresh ledger whose directory is removed afterwards.
    static func withDispatcher(
        _ overlap: Configuration.OverlapPolicy,
        confirmWithin: Duration = .seconds(3600),
        _ body: (Dispatcher, SchedulerState, CollectingSink, Configuration.Job) async throws -> Void
    ) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("bt-dispatch-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let ledger = try await SchedulerState(path: directory.appendingPathComponent("state.sqlite").path)
        let sink = CollectingSink()
        var job = Configuration.Job(name: "j", every: .seconds(60), algorithm: .demo(duration: .zero, resultSize: 0))
        job.overlap = overlap
        let dispatcher = Dispatcher(
            sink: sink,
            ledger: ledger,
            publisher: nil,
            resend: nil,
            logger: Logger(label: "test"),
            confirmWithin: confirmWithin
        )
        try await body(dispatcher, ledger, sink, job)
    }

    @Test func forbidSkipsAndRecordsWhileThePreviousRunRuns() async throws {
        try await Self.withDispatcher(.forbid) { dispatcher, ledger, sink, job in
            await dispatcher.dispatch(Self.request(60), job: job, lateness: 0)
            try await ledger.apply(RunReport(runID: Self.request(60).runID, job: "j", state: .accepted, askedAt: Date()))
            await dispatcher.dispatch(Self.request(120), job: job, lateness: 0)
            #expect(sink.requests.map(\.runID) == [Self.request(60).runID])
            let fires = try await ledger.fires(job: "j")
            #expect(fires.map(\.state) == [.accepted, .skipped])
            #expect(fires[1].detail?.contains("overlap: forbid") == true)
            // Once the first run finished, the next slot fires.
            try await ledger.apply(RunReport(runID: Self.request(60).runID, job: "j", state: .finished))
            await dispatcher.dispatch(Self.request(180), job: job, lateness: 0)
            #expect(sink.requests.count == 2)
        }
    }

    @Test func queueHoldsTheFireUntilReleased() async throws {
        try await Self.withDispatcher(.queue) { dispatcher, ledger, sink, job in
            await dispatcher.dispatch(Self.request(60), job: job, lateness: 0)
            try await ledger.apply(RunReport(runID: Self.request(60).runID, job: "j", state: .running, askedAt: Date()))
            await dispatcher.dispatch(Self.request(120), job: job, lateness: 0)
            #expect(sink.requests.count == 1)
            let queued = try #require(try await ledger.oldestQueued(job: "j"))
            #expect(queued.request.runID == Self.request(120).runID)
        }
    }

    @Test func replaceCancelsTheRunningRunAndFires() async throws {
        try await Self.withDispatcher(.replace) { dispatcher, ledger, sink, job in
            await dispatcher.dispatch(Self.request(60), job: job, lateness: 0)
            try await ledger.apply(RunReport(runID: Self.request(60).runID, job: "j", state: .running, askedAt: Date()))
            await dispatcher.dispatch(Self.request(120), job: job, lateness: 0)
            #expect(sink.cancels.map(\.runID) == [Self.request(60).runID])
            #expect(sink.requests.map(\.runID) == [Self.request(60).runID, Self.request(120).runID])
            // The replaced run stays in flight until the algorithm reports it cancelled; its cancel is kept.
            let fires = try await ledger.fires(job: "j")
            #expect(fires.map(\.state) == [.running, .fired])
            #expect(fires.map(\.cancelRequested) == [true, false])
        }
    }

    @Test func allowRunsBoth() async throws {
        try await Self.withDispatcher(.allow) { dispatcher, _, sink, job in
            await dispatcher.dispatch(Self.request(60), job: job, lateness: 0)
            await dispatcher.dispatch(Self.request(120), job: job, lateness: 0)
            #expect(sink.requests.count == 2)
        }
    }

    @Test func aSlotIsNeverFiredTwice() async throws {
        try await Self.withDispatcher(.allow) { dispatcher, _, sink, job in
            await dispatcher.dispatch(Self.request(60), job: job, lateness: 0)
            await dispatcher.dispatch(Self.request(60), job: job, lateness: 0)
            #expect(sink.requests.count == 1)
        }
    }
    /// Overlap is never decided on a run whose end was reported but lost: the dispatcher asks the algorithm
    /// about a run in flight it has not heard of lately, and waits for the answer.
    @Test(.timeLimit(.minutes(1)))
    func overlapAsksAboutARunNotHeardOfLatelyAndWaitsForTheAnswer() async throws {
        try await Self.withDispatcher(.forbid, confirmWithin: .zero) { dispatcher, ledger, sink, job in
            await dispatcher.dispatch(Self.request(60), job: job, lateness: 0)
            // The run finished at the algorithm, but its reports were lost: the scheduler still has it `fired`.
            let next = Task { await dispatcher.dispatch(Self.request(120), job: job, lateness: 0) }
            // A stale report, sent before the question, does not settle it …
            try await ledger.apply(
                RunReport(runID: Self.request(60).runID, job: "j", state: .running, askedAt: Date(timeIntervalSince1970: 60))
            )
            // … the dispatcher asks (sends the request for 60 again, stamped with the time it asks) …
            let asked = try await Wait.until(timeout: .seconds(60)) {
                sink.requests.dropFirst().contains { $0.runID == Self.request(60).runID }
            }
            try #require(asked, "the dispatcher did not ask about the run in flight")
            let question = sink.requests.dropFirst().first { $0.runID == Self.request(60).runID }
            #expect(try await ledger.fires(job: "j").count == 1, "decided before the answer")
            // … and the algorithm answers from its ledger.
            try await ledger.apply(
                RunReport(runID: Self.request(60).runID, job: "j", state: .finished, askedAt: question?.firedAt)
            )
            await next.value
            let fires = try await ledger.fires(job: "j")
            #expect(fires.map(\.state) == [.finished, .fired], "the slot was skipped for a run that had ended")
            #expect(sink.requests.last?.runID == Self.request(120).runID)
        }
    }

    static func manual(_ seconds: Double) -> RunRequest {
        let now = Date(timeIntervalSince1970: seconds)
        return RunRequest(
            runID: RunID.make(job: "j", logicalTime: now) + "~manual",
            job: "j",
            logicalTime: now,
            firedAt: now,
            trigger: .manual
        )
    }

    /// Fires the slot at 60 and has the algorithm report it running.
    static func runningAt60(_ dispatcher: Dispatcher, _ ledger: SchedulerState, _ job: Configuration.Job) async throws {
        await dispatcher.dispatch(Self.request(60), job: job, lateness: 0)
        try await ledger.apply(RunReport(runID: Self.request(60).runID, job: "j", state: .running, askedAt: Date()))
    }

    /// `baton trigger` follows overlap `forbid`: refused with the run in flight named, and neither recorded nor sent.
    @Test func aTriggerIsRefusedUnderForbidWhileARunIsInFlight() async throws {
        try await Self.withDispatcher(.forbid) { dispatcher, ledger, sink, job in
            try await Self.runningAt60(dispatcher, ledger, job)
            let outcome = await dispatcher.trigger(Self.manual(90), job: job)
            guard case .refused(let reason) = outcome else {
                Issue.record("expected a refusal, got \(outcome)")
                return
            }
            #expect(reason.contains(Self.request(60).runID))
            #expect(reason.contains("forbid"))
            #expect(sink.requests.map(\.runID) == [Self.request(60).runID])
            #expect(try await ledger.fires(job: "j").map(\.request.runID) == [Self.request(60).runID])
            // Once the run ended, a trigger runs.
            try await ledger.apply(RunReport(runID: Self.request(60).runID, job: "j", state: .finished))
            #expect(await dispatcher.trigger(Self.manual(100), job: job) == .fired(replacing: []))
            #expect(sink.requests.last?.runID == Self.manual(100).runID)
        }
    }

    /// `queue`: the triggered run is recorded queued behind the run in flight, not sent.
    @Test func aTriggerIsQueuedUnderQueueWhileARunIsInFlight() async throws {
        try await Self.withDispatcher(.queue) { dispatcher, ledger, sink, job in
            try await Self.runningAt60(dispatcher, ledger, job)
            let outcome = await dispatcher.trigger(Self.manual(90), job: job)
            guard case .queued(let behind) = outcome else {
                Issue.record("expected it queued, got \(outcome)")
                return
            }
            #expect(behind.contains(Self.request(60).runID))
            #expect(sink.requests.count == 1)
            #expect(try await ledger.oldestQueued(job: "j")?.request.runID == Self.manual(90).runID)
        }
    }

    /// `replace`: the run in flight is cancelled and the triggered one sent.
    @Test func aTriggerReplacesTheRunInFlightUnderReplace() async throws {
        try await Self.withDispatcher(.replace) { dispatcher, ledger, sink, job in
            try await Self.runningAt60(dispatcher, ledger, job)
            #expect(await dispatcher.trigger(Self.manual(90), job: job) == .fired(replacing: [Self.request(60).runID]))
            #expect(sink.cancels.map(\.runID) == [Self.request(60).runID])
            #expect(sink.requests.map(\.runID) == [Self.request(60).runID, Self.manual(90).runID])
        }
    }

    /// `allow`: the triggered run goes alongside.
    @Test func aTriggerRunsAlongsideUnderAllow() async throws {
        try await Self.withDispatcher(.allow) { dispatcher, ledger, sink, job in
            try await Self.runningAt60(dispatcher, ledger, job)
            #expect(await dispatcher.trigger(Self.manual(90), job: job) == .fired(replacing: []))
            #expect(sink.requests.map(\.runID) == [Self.request(60).runID, Self.manual(90).runID])
            #expect(await dispatcher.trigger(Self.manual(90), job: job) == .duplicate)
        }
    }

    /// The control socket answers one request at a time: a trigger whose runs in flight the algorithm does not
    /// confirm gives up after its limit, refused, instead of holding the socket.
    @Test(.timeLimit(.minutes(1)))
    func aTriggerGivesUpWhenTheRunsInFlightAreNotConfirmed() async throws {
        try await Self.withDispatcher(.forbid, confirmWithin: .zero) { dispatcher, _, sink, job in
            await dispatcher.dispatch(Self.request(60), job: job, lateness: 0)
            let outcome = await dispatcher.trigger(Self.manual(90), job: job, confirmWithin: .milliseconds(50))
            guard case .refused(let reason) = outcome else {
                Issue.record("expected a refusal, got \(outcome)")
                return
            }
            #expect(reason.contains("did not confirm"))
            #expect(!sink.requests.contains { $0.runID == Self.manual(90).runID })
        }
    }
}
