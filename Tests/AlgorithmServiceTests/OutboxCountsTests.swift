import AlgorithmService
import Foundation
import GRDB
import Messaging
import PropertyBased
import TestSupport
import Testing

/// The counts by state that every `baton results` answer carries are kept by triggers, not counted. Oracle: the
/// rows themselves (`COUNT(*) … GROUP BY state`, read through a connection of the test's own), after random
/// sequences of what the hub does to its tasks.
struct OutboxCountsTests {
    static let t0 = Date(timeIntervalSince1970: 1_000_000)

    static func rowCounts(_ path: String) throws -> [DeliveryState: Int] {
        let queue = try DatabaseQueue(path: path)
        return try queue.read { db in
            var counts: [DeliveryState: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT state, COUNT(*) AS n FROM outbox GROUP BY state") {
                if let state = DeliveryState(rawValue: row["state"]) { counts[state] = row["n"] }
            }
            return counts
        }
    }

    /// Each step: 0 add a part, 1 send the oldest due, 2 acknowledge, 3 a failure, 4 dead-letter, 5 requeue a
    /// run's tasks, 6 lease expiry (time moves on); the run and part come from the step's other numbers.
    @Test func theKeptCountsAreTheRowsCountsAfterAnyOperations() async {
        await propertyCheck(count: 60, input: Gen.int(in: 0...6).array(of: 1...60), Gen.int(in: 0...4).array(of: 60...60)) {
            operations,
            picks in
            let scratch = Scratch("counts")
            let path = scratch.path("o.sqlite")
            do {
                let outbox = try await Outbox(
                    path: path,
                    policy: .init(maxAttempts: 2, initialBackoff: .seconds(1), maxBackoff: .seconds(2))
                )
                var now = Self.t0
                for (index, operation) in operations.enumerated() {
                    let run = "j@\(picks[index % picks.count])"
                    let part = picks[(index + 1) % picks.count] % 3
                    switch operation {
                    case 0:
                        let payload = Data("\(run)#\(part)".utf8)
                        try await outbox.add(
                            .init(header: Fixtures.header(payload, run: run, part: part), path: "/x/\(run)/\(part)"),
                            now: now
                        )
                    case 1:
                        if let due = try await outbox.nextDue(now: now).entry {
                            try await outbox.markSent(runID: due.header.runID, part: due.header.part, leaseDeadline: now + 5, now: now)
                        }
                    case 2:
                        _ = try await outbox.markAcked(runID: run, part: part, now: now)
                    case 3:
                        _ = try await outbox.recordFailure(runID: run, part: part, reason: "boom", now: now)
                    case 4:
                        _ = try await outbox.markDead(runID: run, part: part, reason: "unusable")
                    case 5:
                        _ = try await outbox.requeue(runID: run, now: now)
                    default:
                        now += 10
                        _ = try await outbox.nextDue(now: now)
                    }
                }
                #expect(try await outbox.counts() == Self.rowCounts(path), "after \(operations)")
                let counts = try Self.rowCounts(path)
                let backlog = try await outbox.backlog()
                #expect(
                    backlog.pending == counts[.pending] ?? 0 && backlog.sent == counts[.sent] ?? 0 && backlog.dead == counts[.dead] ?? 0
                )
            } catch {
                Issue.record("\(error)")
            }
        }
    }

    /// An outbox made before the counts were kept (its tasks in every state) is counted once when it is opened.
    @Test func anOlderOutboxIsCountedWhenItIsOpened() async throws {
        let scratch = Scratch("counts")
        let path = scratch.path("o.sqlite")
        do {
            let outbox = try await Outbox(path: path)
            for index in 0..<5 {
                try await outbox.add(
                    .init(header: Fixtures.header(Data("\(index)".utf8), run: "j@\(index)"), path: "/x/\(index)"),
                    now: Self.t0
                )
            }
            try await outbox.markSent(runID: "j@0", part: 0, leaseDeadline: Self.t0 + 30, now: Self.t0)
            try await outbox.markSent(runID: "j@1", part: 0, leaseDeadline: Self.t0 + 30, now: Self.t0)
            _ = try await outbox.markAcked(runID: "j@1", part: 0)
            _ = try await outbox.markDead(runID: "j@2", part: 0, reason: "unusable")
        }
        // As the store was before migration "v6 counts by state".
        let queue = try DatabaseQueue(path: path)
        try await queue.write { db in
            try db.execute(
                sql: """
                    DROP TRIGGER outbox_counts_insert; DROP TRIGGER outbox_counts_delete; DROP TRIGGER outbox_counts_update;
                    DROP TABLE outbox_counts; DELETE FROM grdb_migrations WHERE identifier = 'v6 counts by state';
                    """
            )
        }
        try queue.close()
        let reopened = try await Outbox(path: path)
        #expect(try await reopened.counts() == [.pending: 2, .sent: 1, .acked: 1, .dead: 1])
        #expect(try await reopened.counts() == Self.rowCounts(path))
    }
}
