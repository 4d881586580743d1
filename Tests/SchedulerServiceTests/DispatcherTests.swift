import Foundation
import Logging
import Messaging
import Runtime
import SchedulerService
import Storage
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
        let ledger = try SchedulerState(path: directory.appendingPathComponent("state.sqlite").path)
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
            try await ledger.apply(RunReport(runID: Self.request(60).runID, job: "j", state: .running, askedAt: Date(timeIntervalSince1970: 60)))
            // … the dispatcher asks (sends the request for 60 again, stamped with the time it asks) …
            var question: RunRequest?
            while question == nil {
                question = sink.requests.dropFirst().first { $0.runID == Self.request(60).runID }
                try await Task.sleep(for: .milliseconds(5))
            }
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
}
