import AlgorithmService
import Foundation
import Messaging
import TestSupport
import Testing

struct OutboxTests {
    let scratch = Scratch()
    let t0 = Date(timeIntervalSince1970: 1_000_000)

    func outbox(maxAttempts: Int = 3) async throws -> Outbox {
        try await Outbox(
            path: scratch.path("o.sqlite"),
            policy: .init(maxAttempts: maxAttempts, initialBackoff: .seconds(2), maxBackoff: .seconds(10))
        )
    }

    @Test func deliversOldestFirstAndForgetsAcknowledged() async throws {
        let outbox = try await outbox()
        try await outbox.add(.init(header: Fixtures.header(Data("1".utf8), run: "j@1"), path: "/x/1"), now: t0)
        try await outbox.add(.init(header: Fixtures.header(Data("2".utf8), run: "j@2"), path: "/x/2"), now: t0)
        try await outbox.add(.init(header: Fixtures.header(Data("1".utf8), run: "j@1"), path: "/x/1"), now: t0)
        #expect(try await outbox.nextDue(now: t0).entry?.header.runID == "j@1")
        try await outbox.markSent(runID: "j@1", part: 0, leaseDeadline: t0 + 30, now: t0)
        #expect(try await outbox.nextDue(now: t0).entry?.header.runID == "j@2")
        #expect(try await outbox.markAcked(runID: "j@1", part: 0))
        #expect(try await outbox.markAcked(runID: "j@1", part: 0) == false)
        #expect(try await outbox.counts() == [.acked: 1, .pending: 1])
    }

    /// A task sent by the fast path can be acknowledged before it is recorded sent (which it then never is): it
    /// still counts one delivery (an outsider saw acknowledged tasks listed with `deliveries: 0`).
    @Test func aTaskAcknowledgedBeforeItIsRecordedSentCountsOneDelivery() async throws {
        let outbox = try await outbox()
        try await outbox.add(.init(header: Fixtures.header(Data("1".utf8)), path: "/x"), now: t0)
        #expect(try await outbox.markAcked(runID: "j@1", part: 0, processor: "p", now: t0))
        try await outbox.markSent(runID: "j@1", part: 0, leaseDeadline: t0 + 30, now: t0)
        let entry = try #require(try await outbox.entries().first)
        #expect(entry.state == .acked && entry.header.attempt == 2, "deliveries = attempt - 1: \(entry.header.attempt)")
    }

    @Test func unstartedLeaseExpiryResendsWithoutCountingAFailure() async throws {
        let outbox = try await outbox()
        try await outbox.add(.init(header: Fixtures.header(Data("1".utf8)), path: "/x"), now: t0)
        try await outbox.markSent(runID: "j@1", part: 0, leaseDeadline: t0 + 30, now: t0)
        #expect(try await outbox.nextDue(now: t0 + 29).entry == nil)
        #expect(try await outbox.nextDeadline() == t0 + 30)
        let due = try #require(try await outbox.nextDue(now: t0 + 31).entry)
        #expect(due.header.attempt == 2)
        #expect(due.failures == 0)
    }

    @Test func renewedLeaseKeepsALongTaskWithItsProcessor() async throws {
        let outbox = try await outbox()
        try await outbox.add(.init(header: Fixtures.header(Data("1".utf8)), path: "/x"), now: t0)
        try await outbox.markSent(runID: "j@1", part: 0, leaseDeadline: t0 + 30, now: t0)
        // 50 minutes of work, renewed every 10 s.
        for minute in stride(from: 10.0, through: 3000, by: 10) {
            #expect(try await outbox.renewLease(runID: "j@1", part: 0, processor: "p", until: t0 + minute + 30))
            #expect(try await outbox.nextDue(now: t0 + minute + 1).entry == nil)
        }
        #expect(try await outbox.markAcked(runID: "j@1", part: 0, processor: "p"))
    }

    @Test func processorDyingMidWorkCountsAsAFailureUntilDead() async throws {
        let outbox = try await outbox(maxAttempts: 2)
        try await outbox.add(.init(header: Fixtures.header(Data("1".utf8)), path: "/x"), now: t0)
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
        let outbox = try await outbox(maxAttempts: 3)
        try await outbox.add(.init(header: Fixtures.header(Data("1".utf8)), path: "/x"), now: t0)
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
        let outbox = try await outbox(maxAttempts: 1)
        try await outbox.add(.init(header: Fixtures.header(Data("1".utf8)), path: "/x"), now: t0)
        try await outbox.markSent(runID: "j@1", part: 0, leaseDeadline: t0 + 30, now: t0)
        #expect(
            try await outbox.recordFailure(runID: "j@1", part: 0, reason: "stopping", countsAsFailure: false, now: t0)
                == .retry(after: .zero)
        )
        #expect(try await outbox.nextDue(now: t0).entry?.failures == 0)
    }

    /// A permanent failure (a processor command that is not executable) dead-letters at once, retries left or not.
    @Test func permanentFailureIsDeadAtOnce() async throws {
        let outbox = try await outbox(maxAttempts: 5)
        try await outbox.add(.init(header: Fixtures.header(Data("1".utf8)), path: "/x"), now: t0)
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
        let outbox = try await outbox()
        let ledger = RunLedger(outbox: outbox)
        #expect(try await ledger.accept(Fixtures.request("j@1")) == nil)
        #expect(try await ledger.accept(Fixtures.request("j@1"))?.state == .accepted)
        try await ledger.markRunning("j@1")
        #expect(try await ledger.unfinished().map(\.request.runID) == ["j@1"])
        try await ledger.finish("j@1", parts: [.init(path: "/x", digest: PartDigest(size: 1, sha256: SHA256.hex(of: Data("r".utf8))))])
        #expect(try await ledger.unfinished().isEmpty)
        #expect(try await ledger.accept(Fixtures.request("j@1"))?.state == .finished)
        #expect(try await outbox.counts() == [.pending: 1])
    }

    @Test func aCancelledRunNeverStartsAndHandsOffNothing() async throws {
        let outbox = try await outbox()
        let ledger = RunLedger(outbox: outbox)
        // Cancelled while waiting in its lane.
        #expect(try await ledger.accept(Fixtures.request("j@1")) == nil)
        #expect(try await ledger.cancel("j@1", reason: "user").state == .cancelled)
        #expect(try await ledger.markRunning("j@1") == false)
        #expect(try await ledger.unfinished().isEmpty)
        // Cancelled while running: its result is refused.
        #expect(try await ledger.accept(Fixtures.request("j@2")) == nil)
        #expect(try await ledger.markRunning("j@2"))
        #expect(try await ledger.cancel("j@2", reason: "user").state == .cancelled)
        await #expect(throws: RunLedgerError.self) {
            try await ledger.finish("j@2", parts: [.init(path: "/x", digest: PartDigest(size: 1, sha256: SHA256.hex(of: Data("r".utf8))))])
        }
        #expect(try await outbox.counts().isEmpty)
        // Cancelled before its request arrived: the request, when it comes, is answered with the cancel.
        #expect(try await ledger.cancel("j@3", reason: "user").state == .cancelled)
        #expect(try await ledger.accept(Fixtures.request("j@3"))?.state == .cancelled)
        // An ended run keeps its outcome.
        #expect(try await ledger.accept(Fixtures.request("j@4")) == nil)
        try await ledger.fail("j@4", reason: "boom")
        #expect(try await ledger.cancel("j@4", reason: "user").state == .failed)
    }
}
