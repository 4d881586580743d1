import Foundation
import Messaging
import SchedulerService
import TestSupport
import Testing

struct SchedulerStateTests {
    let scratch = Scratch()
    @Test func aSlotIsFiredOnceAndResentUntilAccepted() async throws {
        let state = try await SchedulerState(path: scratch.path("s.sqlite"))
        let t0 = Date(timeIntervalSince1970: 1_000)
        #expect(try await state.recordFire(Fixtures.request("j@1", at: 60), now: t0))
        #expect(try await state.recordFire(Fixtures.request("j@1", at: 60), now: t0) == false)
        #expect(try await state.lastSlot(job: "j") == Date(timeIntervalSince1970: 60))
        #expect(try await state.unaccepted(sentBefore: t0 - 1).isEmpty)
        #expect(try await state.unaccepted(sentBefore: t0 + 5).map(\.runID) == ["j@1"])
        #expect(try await state.apply(RunReport(runID: "j@1", job: "j", state: .accepted)) == .accepted)
        #expect(try await state.unaccepted(sentBefore: t0 + 5).isEmpty)
        #expect(try await state.apply(RunReport(runID: "j@1", job: "j", state: .finished)) == .finished)
        #expect(try await state.apply(RunReport(runID: "j@1", job: "j", state: .accepted)) == nil)
        #expect(try await state.fires(job: "j").map(\.state) == [.finished])
    }

    /// A run is in flight from its fire to its end, whatever it is waiting for (the resender sleeps until the
    /// next fire while none is); a queued one is not yet, a cancelled one no longer.
    @Test func runsAreInFlightFromTheFireToTheEnd() async throws {
        let state = try await SchedulerState(path: scratch.path("s.sqlite"))
        #expect(try await state.anyInFlight() == false)
        try await state.recordFire(Fixtures.request("j@1", at: 60), state: .queued, detail: "waiting")
        #expect(try await state.anyInFlight() == false)
        try await state.recordFire(Fixtures.request("j@2", at: 120))
        #expect(try await state.anyInFlight())
        try await state.apply(RunReport(runID: "j@2", job: "j", state: .accepted))
        #expect(try await state.anyInFlight())
        try await state.apply(RunReport(runID: "j@2", job: "j", state: .running))
        #expect(try await state.anyInFlight())
        try await state.apply(RunReport(runID: "j@2", job: "j", state: .failed))
        #expect(try await state.anyInFlight() == false)
    }

    /// A run whose `finished` report was lost stays `accepted` only until the scheduler asks about it: it is
    /// listed as unsettled once quiet, and not while the algorithm keeps speaking of it.
    @Test func quietAcceptedRunsAreListedForReconciliation() async throws {
        let state = try await SchedulerState(path: scratch.path("s.sqlite"))
        let t0 = Date(timeIntervalSince1970: 1_000)
        try await state.recordFire(Fixtures.request("j@1", at: 60), now: t0)
        try await state.apply(RunReport(runID: "j@1", job: "j", state: .accepted), now: t0 + 1)
        #expect(try await state.unsettled(quietSince: t0).isEmpty)
        #expect(try await state.unsettled(quietSince: t0 + 2).map(\.request.runID) == ["j@1"])
        // A report (even one that is not news) counts as hearing of it.
        try await state.apply(RunReport(runID: "j@1", job: "j", state: .accepted), now: t0 + 10)
        #expect(try await state.unsettled(quietSince: t0 + 5).isEmpty)
        // Asking counts too, so it is not asked again at once.
        try await state.markResent("j@1", now: t0 + 20)
        #expect(try await state.unsettled(quietSince: t0 + 15).isEmpty)
        try await state.apply(RunReport(runID: "j@1", job: "j", state: .finished), now: t0 + 30)
        #expect(try await state.unsettled(quietSince: t0 + 100).isEmpty)
    }

    @Test func cancellingAQueuedFireEndsItAtOnceAndARunningOneIsMarked() async throws {
        let state = try await SchedulerState(path: scratch.path("s.sqlite"))
        try await state.recordFire(Fixtures.request("j@1", at: 60), state: .queued, detail: "waiting")
        #expect(try await state.requestCancel("j@1", reason: "user")?.state == .cancelled)
        try await state.recordFire(Fixtures.request("j@2", at: 120))
        try await state.apply(RunReport(runID: "j@2", job: "j", state: .running))
        let marked = try #require(try await state.requestCancel("j@2", reason: "user"))
        #expect(marked.state == .running && marked.cancelRequested)
        #expect(try await state.cancelsPending().map(\.request.runID) == ["j@2"])
        try await state.apply(RunReport(runID: "j@2", job: "j", state: .cancelled))
        #expect(try await state.cancelsPending().isEmpty)
    }

    /// A full disk refuses the record (nothing is half-written) and the slot can be recorded once space returns.
    @Test func aFullDatabaseRefusesAndRecoversWithoutLosingTheSlot() async throws {
        let state = try await SchedulerState(path: scratch.path("s.sqlite"))
        try await state.recordFire(Fixtures.request("j@1", at: 60))
        try await state.limitSize(pages: 1)
        let padding = (0..<200).map { Fixtures.request("j@pad\($0)", at: Double(1000 + $0)) }
        do {
            _ = try await state.record(padding.map { SchedulerState.Record($0) })
            Issue.record("a full database accepted the records")
        } catch {
            #expect(SchedulerState.isDiskFull(error))
        }
        #expect(try await state.lastSlot(job: "j") == Date(timeIntervalSince1970: 60))
        try await state.limitSize(pages: nil)
        #expect(try await state.record(padding.map { SchedulerState.Record($0) }).allSatisfy { $0 })
    }

    /// Slots are whole milliseconds from end to end: the 150 ms grid's `.800` is stored and read back exactly.
    @Test func slotsAreKeptAsWholeMilliseconds() async throws {
        let state = try await SchedulerState(path: scratch.path("s.sqlite"))
        let slot = Date(timeIntervalSince1970: 1_780_000_006.8)
        let request = RunRequest.scheduled(job: "j", slot: slot, firedAt: slot)
        #expect(request.runID == "j@2026-05-28T20:26:46.800Z")
        try await state.recordFire(request)
        #expect(try await state.lastSlot(job: "j").map(Timestamp.milliseconds) == 1_780_000_006_800)
        #expect(try await state.fires(job: "j").first?.request.runID == request.runID)
        #expect(try await state.fires(job: "j").first.map { Timestamp.format($0.request.logicalTime) } == "2026-05-28T20:26:46.800Z")
    }
}
