import AlgorithmService
import Foundation
import Messaging
import TestSupport
import Testing

struct DeadLetterCauseTests {
    let scratch = Scratch()
    let t0 = Date(timeIntervalSince1970: 1_000_000)

    /// A conflict is dead at once, with its cause, and listed by cause; a requeue forgets the cause.
    @Test func aConflictIsDeadAtOnceWithItsCause() async throws {
        let outbox = try await Outbox(path: scratch.path("o.sqlite"), policy: .init(maxAttempts: 5))
        let run = "j@1970-01-01T00:01:00.000Z"
        try await outbox.add(.init(header: Fixtures.header(Data("1".utf8), run: run), path: "/x/1"), now: t0)
        try await outbox.add(.init(header: Fixtures.header(Data("2".utf8), run: "j@1970-01-01T00:02:00.000Z"), path: "/x/2"), now: t0)
        try await outbox.markSent(runID: run, part: 0, leaseDeadline: t0 + 30, now: t0)
        #expect(try await outbox.markDead(runID: run, part: 0, reason: "conflict: stored with another sha256", cause: Outbox.conflictCause))
        let entry = try #require(try await outbox.entry(runID: run, part: 0))
        #expect(entry.state == .dead)
        #expect(entry.cause == "conflict")
        #expect(entry.failures == 0)
        #expect(try await outbox.entries(state: .dead, cause: Outbox.conflictCause).map(\.header.runID) == [run])
        try await outbox.requeue(runID: run)
        #expect(try await outbox.entry(runID: run, part: 0)?.cause == nil)
    }
}
