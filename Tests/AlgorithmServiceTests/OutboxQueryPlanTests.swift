import Foundation
import GRDB
import Messaging
import TestSupport
import Testing

@testable import AlgorithmService

/// Queries the hub makes per task stay lookups as the outbox grows: SQLite's own plan says which index it uses.
struct OutboxQueryPlanTests {
    /// Whether a stage has a task left (asked at every acknowledgement) uses the (run, stage, state) index, not a
    /// walk over every task of the stage.
    @Test
    func whetherAStageHasATaskLeftIsALookup() async throws {
        let scratch = Scratch("plan")
        defer { scratch.remove() }
        let outbox = try await Outbox(path: scratch.directory + "/outbox.sqlite")
        let plan = try await outbox.pool.read { db in
            try Row.fetchAll(
                db,
                sql: "EXPLAIN QUERY PLAN " + Outbox.openTaskOfStage,
                arguments: ["j@1", 0, "pending", "sent", "dead"]
            ).map { $0["detail"] as String }
        }
        #expect(plan.contains { $0.contains("USING COVERING INDEX outbox_run_stage_state") }, "\(plan)")
    }

    /// The fast path's list never offers a task the query's path sent, in either order of the two: the note of a
    /// commit may come after the sender's query found and sent the task (a race seen once in CI, as a task sent
    /// twice).
    @Test
    func aTaskTheQuerySentIsNeverOfferedByTheFastPath() async throws {
        let scratch = Scratch("fresh")
        defer { scratch.remove() }
        let outbox = try await Outbox(path: scratch.directory + "/outbox.sqlite")
        func entry(_ minute: Int) -> Outbox.Entry {
            let time = Date(timeIntervalSince1970: Double(60 * minute))
            let header = ResultHeader(
                runID: RunID.make(job: "j", logicalTime: time),
                job: "j",
                logicalTime: time,
                size: 1,
                sha256: String(repeating: "a", count: 64)
            )
            return Outbox.Entry(header: header, path: "/nowhere")
        }
        // Sent by the query before its note came.
        outbox.claimFresh(entry(1).header)
        outbox.noteCommitted([entry(1)], micros: 1)
        // Noted, then sent by the query.
        outbox.noteCommitted([entry(2)], micros: 2)
        outbox.claimFresh(entry(2).header)
        // Noted only: offered.
        outbox.noteCommitted([entry(3)], micros: 3)
        #expect(outbox.takeFresh()?.map(\.entry.header.runID) == [entry(3).header.runID])
        #expect(outbox.takeFresh()?.isEmpty == true)
    }
}
