import Foundation
import Messaging
import Storage
import Testing

struct StorageTests {
    let scratch = Scratch()

    static func header(_ payload: Data, run: String = "j@1", part: Int = 0) -> ResultHeader {
        ResultHeader(
            runID: run,
            job: "j",
            logicalTime: Date(timeIntervalSince1970: 60),
            part: part,
            parts: part + 1,
            size: payload.count,
            sha256: SHA256.hex(of: payload)
        )
    }

    @Test func jsonLinesAreStoredOneRowPerLineExactly() async throws {
        let store = try ResultStore(path: scratch.path("r.sqlite"))
        let payload = Data("{\"a\": 1}\n[1,2]\n\"text\"\n".utf8)
        #expect(try await store.store(Self.header(payload), payload: payload, processor: "p") == .stored(records: 3))
        #expect(try await store.records(runID: "j@1") == ["{\"a\": 1}", "[1,2]", "\"text\""])
    }

    @Test func storingTheSamePartTwiceKeepsOneCopy() async throws {
        let store = try ResultStore(path: scratch.path("r.sqlite"))
        let payload = Data("{\"a\":1}\n".utf8)
        #expect(try await store.store(Self.header(payload), payload: payload, processor: "p1") == .stored(records: 1))
        #expect(try await store.store(Self.header(payload), payload: payload, processor: "p2") == .duplicate)
        #expect(try await store.resultCount() == 1)
        #expect(try await store.records(runID: "j@1").count == 1)
    }

    @Test func nonJsonPayloadIsABlob() async throws {
        let store = try ResultStore(path: scratch.path("r.sqlite"))
        let payload = Data([0xff, 0x00, 0x01])
        #expect(try await store.store(Self.header(payload), payload: payload, processor: "p") == .stored(records: 0))
        #expect(try await store.contains(runID: "j@1", part: 0))
    }

    static func request(_ run: String, at seconds: Double = 60) -> RunRequest {
        RunRequest(
            runID: run,
            job: "j",
            logicalTime: Date(timeIntervalSince1970: seconds),
            firedAt: Date(timeIntervalSince1970: seconds),
            trigger: .schedule
        )
    }
}

struct OutboxTests {
    let scratch = Scratch()
    let t0 = Date(timeIntervalSince1970: 1_000_000)

    func outbox(maxAttempts: Int = 3) throws -> Outbox {
        try Outbox(
            path: scratch.path("o.sqlite"),
            policy: .init(maxAttempts: maxAttempts, initialBackoff: .seconds(2), maxBackoff: .seconds(10))
        )
    }

    @Test func deliversOldestFirstAndForgetsAcknowledged() async throws {
        let outbox = try outbox()
        try await outbox.add(.init(header: StorageTests.header(Data("1".utf8), run: "j@1"), path: "/x/1"), now: t0)
        try await outbox.add(.init(header: StorageTests.header(Data("2".utf8), run: "j@2"), path: "/x/2"), now: t0)
        try await outbox.add(.init(header: StorageTests.header(Data("1".utf8), run: "j@1"), path: "/x/1"), now: t0)
        #expect(try await outbox.nextDue(now: t0).entry?.header.runID == "j@1")
        try await outbox.markSent(runID: "j@1", part: 0, leaseDeadline: t0 + 30, now: t0)
        #expect(try await outbox.nextDue(now: t0).entry?.header.runID == "j@2")
        #expect(try await outbox.markAcked(runID: "j@1", part: 0))
        #expect(try await outbox.markAcked(runID: "j@1", part: 0) == false)
        #expect(try await outbox.counts() == ["acked": 1, "pending": 1])
    }

    @Test func unstartedLeaseExpiryResendsWithoutCountingAFailure() async throws {
        let outbox = try outbox()
        try await outbox.add(.init(header: StorageTests.header(Data("1".utf8)), path: "/x"), now: t0)
        try await outbox.markSent(runID: "j@1", part: 0, leaseDeadline: t0 + 30, now: t0)
        #expect(try await outbox.nextDue(now: t0 + 29).entry == nil)
        #expect(try await outbox.nextDeadline() == t0 + 30)
        let due = try #require(try await outbox.nextDue(now: t0 + 31).entry)
        #expect(due.header.attempt == 2)
        #expect(due.failures == 0)
    }

    @Test func renewedLeaseKeepsALongTaskWithItsProcessor() async throws {
        let outbox = try outbox()
        try await outbox.add(.init(header: StorageTests.header(Data("1".utf8)), path: "/x"), now: t0)
        try await outbox.markSent(runID: "j@1", part: 0, leaseDeadline: t0 + 30, now: t0)
        // 50 minutes of work, renewed every 10 s.
        for minute in stride(from: 10.0, through: 3000, by: 10) {
            #expect(try await outbox.renewLease(runID: "j@1", part: 0, processor: "p", until: t0 + minute + 30))
            #expect(try await outbox.nextDue(now: t0 + minute + 1).entry == nil)
        }
        #expect(try await outbox.markAcked(runID: "j@1", part: 0, processor: "p"))
    }

    @Test func processorDyingMidWorkCountsAsAFailureUntilDead() async throws {
        let outbox = try outbox(maxAttempts: 2)
        try await outbox.add(.init(header: StorageTests.header(Data("1".utf8)), path: "/x"), now: t0)
        var now = t0
        for attempt in 1...2 {
            try await outbox.markSent(runID: "j@1", part: 0, leaseDeadline: now + 30, now: now)
            try await outbox.renewLease(runID: "j@1", part: 0, processor: "p", until: now + 30)
            now += 31
            let (entry, dead) = try await outbox.nextDue(now: now)
            if attempt == 1 {
                #expect(entry?.failures == 1)
                #expect(dead.isEmpty)
            } else {
                #expect(entry == nil)
                #expect(dead.map(\.header.runID) == ["j@1"])
            }
        }
        #expect(try await outbox.entries(state: .dead).first?.lastError?.contains("lease expired") == true)
    }

    @Test func reportedFailuresBackOffThenDeadLetterAndRequeueBringsBack() async throws {
        let outbox = try outbox(maxAttempts: 3)
        try await outbox.add(.init(header: StorageTests.header(Data("1".utf8)), path: "/x"), now: t0)
        try await outbox.markSent(runID: "j@1", part: 0, leaseDeadline: t0 + 30, now: t0)
        let first = try await outbox.recordFailure(runID: "j@1", part: 0, reason: "boom", now: t0)
        guard case .retry(let delay) = first else { Issue.record("expected a retry, got \(first)"); return }
        #expect(delay >= .seconds(1) && delay <= .seconds(2))
        #expect(try await outbox.nextDue(now: t0).entry == nil)
        #expect(try await outbox.nextDue(now: t0 + 2.1).entry != nil)
        #expect(try await outbox.recordFailure(runID: "j@1", part: 0, reason: "boom", now: t0) != .dead)
        #expect(try await outbox.recordFailure(runID: "j@1", part: 0, reason: "boom", now: t0) == .dead)
        #expect(try await outbox.recordFailure(runID: "j@1", part: 0, reason: "boom", now: t0) == .ignored)
        #expect(try await outbox.nextDue(now: t0 + 1000).entry == nil)
        #expect(try await outbox.requeue(runID: "j@1") == 1)
        let back = try #require(try await outbox.nextDue(now: Date()).entry)
        #expect(back.failures == 0)
    }

    @Test func handBackIsDueAtOnceAndIsNoFailure() async throws {
        let outbox = try outbox(maxAttempts: 1)
        try await outbox.add(.init(header: StorageTests.header(Data("1".utf8)), path: "/x"), now: t0)
        try await outbox.markSent(runID: "j@1", part: 0, leaseDeadline: t0 + 30, now: t0)
        #expect(
            try await outbox.recordFailure(runID: "j@1", part: 0, reason: "stopping", countsAsFailure: false, now: t0)
                == .retry(after: .zero)
        )
        #expect(try await outbox.nextDue(now: t0).entry?.failures == 0)
    }

    /// A permanent failure (a processor command that is not executable) dead-letters at once, retries left or not.
    @Test func permanentFailureIsDeadAtOnce() async throws {
        let outbox = try outbox(maxAttempts: 5)
        try await outbox.add(.init(header: StorageTests.header(Data("1".utf8)), path: "/x"), now: t0)
        try await outbox.markSent(runID: "j@1", part: 0, leaseDeadline: t0 + 30, now: t0)
        #expect(try await outbox.recordFailure(runID: "j@1", part: 0, reason: "not executable", permanent: true, now: t0) == .dead)
        #expect(try await outbox.nextDue(now: t0 + 1000).entry == nil)
    }

    @Test func backoffDoublesUpToTheMaximum() {
        let policy = Outbox.RetryPolicy(maxAttempts: 10, initialBackoff: .seconds(2), maxBackoff: .seconds(10))
        #expect(policy.backoff(afterFailures: 1, jitter: 1) == .seconds(2))
        #expect(policy.backoff(afterFailures: 2, jitter: 1) == .seconds(4))
        #expect(policy.backoff(afterFailures: 3, jitter: 1) == .seconds(8))
        #expect(policy.backoff(afterFailures: 9, jitter: 1) == .seconds(10))
        #expect(policy.backoff(afterFailures: 2, jitter: 0.5) == .seconds(2))
    }

    @Test func runLedgerRunsEachRequestOnceAndFinishesWithItsResult() async throws {
        let outbox = try outbox()
        let ledger = RunLedger(outbox: outbox)
        #expect(try await ledger.accept(StorageTests.request("j@1")) == nil)
        #expect(try await ledger.accept(StorageTests.request("j@1"))?.state == .accepted)
        try await ledger.markRunning("j@1")
        #expect(try await ledger.unfinished().map(\.request.runID) == ["j@1"])
        try await ledger.finish("j@1", outbox: [.init(header: StorageTests.header(Data("r".utf8)), path: "/x")])
        #expect(try await ledger.unfinished().isEmpty)
        #expect(try await ledger.accept(StorageTests.request("j@1"))?.state == .finished)
        #expect(try await outbox.counts() == ["pending": 1])
    }

    @Test func aCancelledRunNeverStartsAndHandsOffNothing() async throws {
        let outbox = try outbox()
        let ledger = RunLedger(outbox: outbox)
        // Cancelled while waiting in its lane.
        #expect(try await ledger.accept(StorageTests.request("j@1")) == nil)
        #expect(try await ledger.cancel("j@1", reason: "user").state == .cancelled)
        #expect(try await ledger.markRunning("j@1") == false)
        #expect(try await ledger.unfinished().isEmpty)
        // Cancelled while running: its result is refused.
        #expect(try await ledger.accept(StorageTests.request("j@2")) == nil)
        #expect(try await ledger.markRunning("j@2"))
        #expect(try await ledger.cancel("j@2", reason: "user").state == .cancelled)
        await #expect(throws: RunLedgerError.self) {
            try await ledger.finish("j@2", outbox: [.init(header: StorageTests.header(Data("r".utf8)), path: "/x")])
        }
        #expect(try await outbox.counts().isEmpty)
        // Cancelled before its request arrived: the request, when it comes, is answered with the cancel.
        #expect(try await ledger.cancel("j@3", reason: "user").state == .cancelled)
        #expect(try await ledger.accept(StorageTests.request("j@3"))?.state == .cancelled)
        // An ended run keeps its outcome.
        #expect(try await ledger.accept(StorageTests.request("j@4")) == nil)
        try await ledger.fail("j@4", reason: "boom")
        #expect(try await ledger.cancel("j@4", reason: "user").state == .failed)
    }
}

struct SchedulerStateTests {
    let scratch = Scratch()
    @Test func aSlotIsFiredOnceAndResentUntilAccepted() async throws {
        let state = try SchedulerState(path: scratch.path("s.sqlite"))
        let t0 = Date(timeIntervalSince1970: 1_000)
        #expect(try await state.recordFire(StorageTests.request("j@1", at: 60), now: t0))
        #expect(try await state.recordFire(StorageTests.request("j@1", at: 60), now: t0) == false)
        #expect(try await state.lastSlot(job: "j") == Date(timeIntervalSince1970: 60))
        #expect(try await state.unaccepted(sentBefore: t0 - 1).isEmpty)
        #expect(try await state.unaccepted(sentBefore: t0 + 5).map(\.runID) == ["j@1"])
        #expect(try await state.apply(RunReport(runID: "j@1", job: "j", state: .accepted)) == .accepted)
        #expect(try await state.unaccepted(sentBefore: t0 + 5).isEmpty)
        #expect(try await state.apply(RunReport(runID: "j@1", job: "j", state: .finished)) == .finished)
        #expect(try await state.apply(RunReport(runID: "j@1", job: "j", state: .accepted)) == nil)
        #expect(try await state.fires(job: "j").map(\.state) == [.finished])
    }

    /// A run whose `finished` report was lost stays `accepted` only until the scheduler asks about it: it is
    /// listed as unsettled once quiet, and not while the algorithm keeps speaking of it.
    @Test func quietAcceptedRunsAreListedForReconciliation() async throws {
        let state = try SchedulerState(path: scratch.path("s.sqlite"))
        let t0 = Date(timeIntervalSince1970: 1_000)
        try await state.recordFire(StorageTests.request("j@1", at: 60), now: t0)
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
        let state = try SchedulerState(path: scratch.path("s.sqlite"))
        try await state.recordFire(StorageTests.request("j@1", at: 60), state: .queued, detail: "waiting")
        #expect(try await state.requestCancel("j@1", reason: "user")?.state == .cancelled)
        try await state.recordFire(StorageTests.request("j@2", at: 120))
        try await state.apply(RunReport(runID: "j@2", job: "j", state: .running))
        let marked = try #require(try await state.requestCancel("j@2", reason: "user"))
        #expect(marked.state == .running && marked.cancelRequested)
        #expect(try await state.cancelsPending().map(\.request.runID) == ["j@2"])
        try await state.apply(RunReport(runID: "j@2", job: "j", state: .cancelled))
        #expect(try await state.cancelsPending().isEmpty)
    }

    /// A full disk refuses the record (nothing is half-written) and the slot can be recorded once space returns.
    @Test func aFullDatabaseRefusesAndRecoversWithoutLosingTheSlot() async throws {
        let state = try SchedulerState(path: scratch.path("s.sqlite"))
        try await state.recordFire(StorageTests.request("j@1", at: 60))
        try await state.limitSize(pages: 1)
        let padding = (0..<200).map { StorageTests.request("j@pad\($0)", at: Double(1000 + $0)) }
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
        let state = try SchedulerState(path: scratch.path("s.sqlite"))
        let slot = Date(timeIntervalSince1970: 1_780_000_006.8)
        let request = RunRequest.scheduled(job: "j", slot: slot, firedAt: slot)
        #expect(request.runID == "j@2026-05-28T20:26:46.800Z")
        try await state.recordFire(request)
        #expect(try await state.lastSlot(job: "j").map(Timestamp.milliseconds) == 1_780_000_006_800)
        #expect(try await state.fires(job: "j").first?.request.runID == request.runID)
        #expect(try await state.fires(job: "j").first.map { Timestamp.format($0.request.logicalTime) } == "2026-05-28T20:26:46.800Z")
    }
}

/// A directory for one test's files, removed when the test's suite instance goes away.
final class Scratch: Sendable {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("baton-storage-\(UUID().uuidString)").path

    /// A path inside the directory.
    func path(_ name: String) -> String { directory + "/" + name }

    deinit { try? FileManager.default.removeItem(atPath: directory) }
}
