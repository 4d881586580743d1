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
}
