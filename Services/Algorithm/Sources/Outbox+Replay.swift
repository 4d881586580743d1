public import Foundation
import GRDB
public import Messaging
import Persistence

// What `baton replay` and `baton audit` ask of a run's pipeline at the hub: a stage by name, the dead tasks of a
// stage back in the queue, and every stage of every pipeline with its tasks counted (a stage not yet ready
// included, so that an audit can tell a missing stage from one that never had to exist).
extension Outbox {
    /// One stage of a run's pipeline, ready or not, with its tasks counted by state.
    public struct StageOverview: Sendable, Equatable {
        /// The run.
        public var runID: String
        /// The stage's index and definition, as the run's pipeline recorded it.
        public var stage: Int
        public var spec: StageSpec
        /// How many stages the run's pipeline has.
        public var stages: Int
        /// Whether its tasks were created.
        public var ready: Bool
        /// How many tasks it was given (its `stages` row), and how many the outbox holds, done or dead.
        public var parts: Int
        public var tasks: Int
        public var done: Int
        public var dead: Int
        /// When its last task was acknowledged.
        public var doneAt: Date?
    }

    /// Every stage of the pipelines of runs that have one (all runs, or one), in run and stage order. Runs of
    /// the default pipeline are left out: they have no stages.
    public func stageOverview(runID: String? = nil) async throws -> [StageOverview] {
        try await pool.read { db in
            let runs = try Row.fetchAll(
                db,
                sql: """
                    SELECT runs.run_id AS run_id, runs.pipeline AS version, pipelines.definition AS definition FROM runs
                    LEFT JOIN pipelines ON pipelines.version = runs.pipeline
                    WHERE runs.pipeline != '' \(runID == nil ? "" : "AND runs.run_id = ?") ORDER BY runs.run_id
                    """,
                // One run by its key: `(? IS NULL OR run_id = ?)` made SQLite scan every run kept.
                arguments: StatementArguments(runID.map { [$0] } ?? [])
            )
            var overview: [StageOverview] = []
            for run in runs {
                let id: String = run["run_id"]
                guard let pipeline = Self.pipeline(version: run["version"], definition: run["definition"]) else {
                    throw StorageError("run \(id) names pipeline \(run["version"] as String), which is not recorded")
                }
                var rows: [Int: Row] = [:]
                for row in try Row.fetchAll(
                    db,
                    sql: """
                        SELECT s.stage, s.parts, s.done_at,
                            (SELECT COUNT(*) FROM outbox o WHERE o.run_id = s.run_id AND o.stage = s.stage) AS tasks,
                            (SELECT COUNT(*) FROM outbox o WHERE o.run_id = s.run_id AND o.stage = s.stage AND o.state = ?) AS done,
                            (SELECT COUNT(*) FROM outbox o WHERE o.run_id = s.run_id AND o.stage = s.stage AND o.state = ?) AS dead
                        FROM stages s WHERE s.run_id = ?
                        """,
                    arguments: [DeliveryState.acked, DeliveryState.dead, id]
                ) {
                    rows[row["stage"]] = row
                }
                for (index, spec) in pipeline.stages.enumerated() {
                    let row = rows[index]
                    overview.append(
                        StageOverview(
                            runID: id,
                            stage: index,
                            spec: spec,
                            stages: pipeline.stages.count,
                            ready: row != nil,
                            parts: row?["parts"] ?? 0,
                            tasks: row?["tasks"] ?? 0,
                            done: row?["done"] ?? 0,
                            dead: row?["dead"] ?? 0,
                            doneAt: (row?["done_at"] as String?).flatMap(Timestamp.parse)
                        )
                    )
                }
            }
            return overview
        }
    }

    /// The index of the stage named `name` in a run's pipeline.
    /// - Throws: A `StorageError` naming the run's stages when it has none of that name (or the run is unknown).
    public func stageIndex(runID: String, named name: String) async throws -> Int {
        try await pool.read { db in
            guard try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM runs WHERE run_id = ?", arguments: [runID]) == 1 else {
                throw StorageError("no run \(runID) here")
            }
            guard let pipeline = try Self.pipeline(ofRun: runID, in: db) else {
                throw StorageError("run \(runID) names a pipeline that is not recorded")
            }
            guard !pipeline.isDefault else {
                throw StorageError("run \(runID) has no stages (its job had none when it ran): replay it by run id instead")
            }
            guard let index = pipeline.stages.firstIndex(where: { $0.name == name }) else {
                throw StorageError(
                    "run \(runID) has no stage \"\(name)\"; its stages: \(pipeline.stages.map(\.name).joined(separator: ", "))"
                )
            }
            return index
        }
    }

    /// Puts the dead tasks of one stage of a run (or one of them) back in the queue as new: attempts, failures
    /// and cause forgotten. Tasks in any other state are left as they are, so a task done is never redone.
    /// - Returns: How many tasks were requeued.
    @discardableResult
    public func requeueDead(runID: String, stage: Int, part: Int? = nil, now: Date = Date()) async throws -> Int {
        try await write { db in
            try db.execute(
                sql: """
                    UPDATE outbox SET state = ?, failures = 0, started = 0, last_error = NULL, cause = NULL, due_at = ?
                    WHERE run_id = ? AND stage = ? AND (? IS NULL OR part = ?) AND state = ?
                    """,
                arguments: [
                    Self.target(of: .requeue), now.timeIntervalSince1970, runID, stage, part, part, DeliveryState.dead,
                ]
            )
            return db.changesCount
        }
    }
}
