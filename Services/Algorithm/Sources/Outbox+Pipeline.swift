public import Foundation
import GRDB
public import Messaging
import Persistence
import Synchronization

// The hub's side of pipelines: every task is an outbox row `(run, stage, part)`; a task's outputs are committed
// as the next stage's input in the transaction that settles it, and a stage's tasks are created when the stage
// before it is complete (`stages` rows), so a merge is a task that becomes due when its inputs are complete.
extension Outbox {
    /// One durable file at the hub: an algorithm's part, or a stage's output.
    public struct StoredPart: Sendable, Equatable {
        /// The file.
        public var path: String
        /// Its size and SHA-256.
        public var digest: PartDigest
        /// Its bytes, when they are still in memory (a small part just sealed): sent from here, not read back.
        public var bytes: Data?

        /// Creates a stored part.
        public init(path: String, digest: PartDigest, bytes: Data? = nil) {
            self.path = path
            self.digest = digest
            self.bytes = bytes
        }
    }

    /// What happened to a run's pipeline in a transaction, for events.
    public enum StageProgress: Sendable, Equatable {
        /// The stage's tasks were created: `parts` of them (0 for a per-part stage with no input).
        case ready(runID: String, job: String, stage: Int, name: String, parts: Int)
        /// Every task of the stage succeeded.
        case done(runID: String, job: String, stage: Int, name: String)
        /// The run's last stage is done: the run has been processed and stored.
        case finished(runID: String, job: String, stages: Int)
    }

    /// Tasks created and progress made by completing a stage.
    struct Advance {
        var created: [Entry] = []
        var progress: [StageProgress] = []
    }

    static func migratePipelines(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v4 pipelines") { db in
            // Tasks are keyed (run, stage, part); a run records its pipeline; a stage's outputs are the next
            // stage's input; `stages` says which stages of a run have their tasks and which are done.
            try db.execute(
                sql: """
                    CREATE TABLE outbox_v4 (
                        seq INTEGER PRIMARY KEY AUTOINCREMENT,
                        run_id TEXT NOT NULL,
                        stage INTEGER NOT NULL DEFAULT 0,
                        part INTEGER NOT NULL,
                        parts INTEGER NOT NULL,
                        pipeline TEXT NOT NULL DEFAULT '',
                        job TEXT NOT NULL,
                        logical_time TEXT NOT NULL,
                        path TEXT NOT NULL,
                        size INTEGER NOT NULL,
                        sha256 TEXT NOT NULL,
                        state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'acked', 'dead')),
                        due_at REAL NOT NULL,
                        deliveries INTEGER NOT NULL DEFAULT 0,
                        failures INTEGER NOT NULL DEFAULT 0,
                        started INTEGER NOT NULL DEFAULT 0,
                        processor TEXT,
                        last_error TEXT,
                        created_at TEXT NOT NULL,
                        sent_at TEXT,
                        acked_at TEXT,
                        durable_at REAL,
                        cause TEXT,
                        UNIQUE (run_id, stage, part)
                    );
                    INSERT INTO outbox_v4 (seq, run_id, part, parts, job, logical_time, path, size, sha256, state, due_at,
                        deliveries, failures, started, processor, last_error, created_at, sent_at, acked_at, durable_at, cause)
                    SELECT seq, run_id, part, parts, job, logical_time, path, size, sha256, state, due_at,
                        deliveries, failures, started, processor, last_error, created_at, sent_at, acked_at, durable_at, cause
                    FROM outbox;
                    DROP TABLE outbox;
                    ALTER TABLE outbox_v4 RENAME TO outbox;
                    CREATE INDEX outbox_due ON outbox (state, due_at, seq);
                    CREATE INDEX outbox_job_time ON outbox (job, logical_time);
                    CREATE TABLE pipelines (
                        version TEXT PRIMARY KEY,
                        definition TEXT NOT NULL,
                        recorded_at TEXT NOT NULL
                    );
                    CREATE TABLE stages (
                        run_id TEXT NOT NULL,
                        stage INTEGER NOT NULL,
                        name TEXT NOT NULL,
                        mode TEXT NOT NULL,
                        parts INTEGER NOT NULL,
                        ready_at TEXT NOT NULL,
                        done_at TEXT,
                        PRIMARY KEY (run_id, stage)
                    );
                    CREATE TABLE outputs (
                        run_id TEXT NOT NULL,
                        stage INTEGER NOT NULL,
                        part INTEGER NOT NULL,
                        idx INTEGER NOT NULL,
                        path TEXT NOT NULL,
                        size INTEGER NOT NULL,
                        sha256 TEXT NOT NULL,
                        PRIMARY KEY (run_id, stage, part, idx)
                    );
                    ALTER TABLE runs ADD COLUMN pipeline TEXT NOT NULL DEFAULT '';
                    """
            )
        }
    }

    /// Pipelines by version, decoded once: a version names one definition forever.
    private static let pipelines = Mutex<[String: Pipeline]>([:])

    /// The pipeline recorded under `version` (definition as read with it, when not cached yet).
    static func pipeline(version: String, definition: String?) -> Pipeline? {
        if version.isEmpty { return .default }
        if let known = pipelines.withLock({ $0[version] }) { return known }
        guard let definition, let pipeline = try? Pipeline(version: version, definition: definition) else { return nil }
        pipelines.withLock { $0[version] = pipeline }
        return pipeline
    }

    /// Records a pipeline's definition (once per version), inside a caller's transaction.
    static func record(_ pipeline: Pipeline, in db: Database, now: Date) throws {
        guard !pipeline.isDefault else { return }
        try db.executeCached(
            sql: "INSERT OR IGNORE INTO pipelines (version, definition, recorded_at) VALUES (?, ?, ?)",
            arguments: [pipeline.version, pipeline.definition, Timestamp.format(now)]
        )
    }

    /// The pipeline a run started with.
    static func pipeline(ofRun runID: String, in db: Database) throws -> Pipeline? {
        guard
            let row = try Row.fetchOne(
                db.cachedStatement(
                    sql: "SELECT runs.pipeline AS version, pipelines.definition AS definition FROM runs "
                        + "LEFT JOIN pipelines ON pipelines.version = runs.pipeline WHERE runs.run_id = ?"
                ),
                arguments: [runID]
            )
        else { return nil }
        return pipeline(version: row["version"], definition: row["definition"])
    }

    /// The algorithm's parts of a run become the input of its first stage (inside the transaction that marks
    /// the run finished).
    static func handOff(
        runID: String,
        job: String,
        logicalTime: Date,
        parts: [StoredPart],
        in db: Database,
        now: Date
    ) throws -> Advance {
        for (index, part) in parts.enumerated() {
            try insertOutput(runID: runID, stage: -1, part: index, index: 0, part, in: db)
        }
        guard let pipeline = try pipeline(ofRun: runID, in: db) else {
            throw StorageError("run \(runID) has no recorded pipeline")
        }
        return try advance(runID: runID, job: job, logicalTime: logicalTime, pipeline: pipeline, after: -1, in: db, now: now)
    }

    private static func insertOutput(runID: String, stage: Int, part: Int, index: Int, _ output: StoredPart, in db: Database) throws {
        try db.executeCached(
            sql: "INSERT OR REPLACE INTO outputs (run_id, stage, part, idx, path, size, sha256) VALUES (?, ?, ?, ?, ?, ?, ?)",
            arguments: [runID, stage, part, index, output.path, output.digest.size, output.digest.sha256]
        )
    }

    /// Whether a stage (run, stage) has a task not acknowledged (pending, sent, dead): a lookup in the
    /// `outbox_run_stage_state` index.
    static let openTaskOfStage = "SELECT EXISTS (SELECT 1 FROM outbox WHERE run_id = ? AND stage = ? AND state IN (?, ?, ?))"

    /// A task was just acknowledged: commits its outputs and, if it was its stage's last, moves the pipeline on.
    static func settled(runID: String, stage: Int, part: Int, outputs: [StoredPart], in db: Database, now: Date) throws -> Advance {
        for (index, output) in outputs.enumerated() {
            try insertOutput(runID: runID, stage: stage, part: part, index: index, output, in: db)
        }
        let open = try Bool.fetchOne(
            db.cachedStatement(sql: openTaskOfStage),
            arguments: [runID, stage, DeliveryState.pending, DeliveryState.sent, DeliveryState.dead]
        )
        guard open == false else { return Advance() }
        try db.executeCached(
            sql: "UPDATE stages SET done_at = ? WHERE run_id = ? AND stage = ? AND done_at IS NULL",
            arguments: [Timestamp.format(now), runID, stage]
        )
        // No stage row: a result handed off before pipelines (one stage), or a stage already done.
        guard db.changesCount > 0,
            let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT job, logical_time FROM runs WHERE run_id = ?"), arguments: [runID]),
            let pipeline = try pipeline(ofRun: runID, in: db)
        else { return Advance() }
        let job: String = row["job"]
        let time: String = row["logical_time"]
        var advance = Advance()
        let name = stage < pipeline.stages.count ? pipeline.stages[stage].name : "\(stage)"
        advance.progress.append(.done(runID: runID, job: job, stage: stage, name: name))
        let next = try Self.advance(
            runID: runID,
            job: job,
            logicalTime: Timestamp.parse(time) ?? Date(timeIntervalSince1970: 0),
            pipeline: pipeline,
            after: stage,
            in: db,
            now: now
        )
        advance.created += next.created
        advance.progress += next.progress
        return advance
    }

    /// Stage `completed` (-1: the algorithm) of a run is complete: creates the next stage's tasks from its
    /// outputs in part order (one per output for a per-part stage, one for a merge), moving on past stages
    /// that get no task.
    static func advance(
        runID: String,
        job: String,
        logicalTime: Date,
        pipeline: Pipeline,
        after completed: Int,
        in db: Database,
        now: Date
    ) throws -> Advance {
        var advance = Advance()
        var stage = completed + 1
        while stage < pipeline.stages.count {
            let spec = pipeline.stages[stage]
            let inputs = try outputs(runID: runID, stage: stage - 1, in: db)
            var tasks: [Entry] = []
            func task(part: Int, parts: Int, path: String, digest: PartDigest) -> Entry {
                var header = ResultHeader(
                    runID: runID,
                    job: job,
                    logicalTime: logicalTime,
                    part: part,
                    parts: parts,
                    size: digest.size,
                    sha256: digest.sha256
                )
                if !pipeline.isDefault {
                    header.stageIndex = stage
                    header.stages = pipeline.stages.count
                    header.pipeline = pipeline.version
                    header.stage = spec
                }
                return Entry(header: header, path: path)
            }
            switch spec.mode {
            case .merge:
                let digests = inputs.map(\.digest)
                tasks = [
                    task(
                        part: 0,
                        parts: 1,
                        path: "",
                        digest: PartDigest(size: digests.reduce(0) { $0 + $1.size }, sha256: PartDigest.combined(digests))
                    )
                ]
            case .part:
                tasks = inputs.enumerated().map {
                    task(part: $0.offset, parts: inputs.count, path: $0.element.path, digest: $0.element.digest)
                }
            }
            for entry in tasks { try insert(entry, in: db, now: now) }
            try db.executeCached(
                sql: """
                    INSERT OR IGNORE INTO stages (run_id, stage, name, mode, parts, ready_at, done_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    runID, stage, spec.name, spec.mode.rawValue, tasks.count, Timestamp.format(now),
                    tasks.isEmpty ? Timestamp.format(now) : nil,
                ]
            )
            advance.created += tasks
            advance.progress.append(.ready(runID: runID, job: job, stage: stage, name: spec.name, parts: tasks.count))
            guard tasks.isEmpty else { return advance }
            advance.progress.append(.done(runID: runID, job: job, stage: stage, name: spec.name))
            stage += 1
        }
        advance.progress.append(.finished(runID: runID, job: job, stages: pipeline.stages.count))
        return advance
    }

    /// A stage's outputs (-1: the algorithm's parts), in part order.
    static func outputs(runID: String, stage: Int, in db: Database) throws -> [StoredPart] {
        try Row.fetchAll(
            db,
            sql: "SELECT path, size, sha256 FROM outputs WHERE run_id = ? AND stage = ? ORDER BY part, idx",
            arguments: [runID, stage]
        ).map { StoredPart(path: $0["path"], digest: PartDigest(size: $0["size"], sha256: $0["sha256"])) }
    }

    /// A merge task's inputs: the outputs of the stage before it, in part order.
    public func mergeInputs(runID: String, stage: Int) async throws -> [StoredPart] {
        try await pool.read { db in try Self.outputs(runID: runID, stage: stage - 1, in: db) }
    }

    /// Runs a run's pipeline again from `stage` with its kept input: that stage's and later stages' tasks,
    /// outputs and records are removed, and the stage's tasks created again from the outputs of the stage
    /// before it (the algorithm's parts for the first). Returns the progress (the stage made ready again).
    public func rerun(runID: String, fromStage stage: Int, now: Date = Date()) async throws -> [StageProgress] {
        let advance = try await write { db -> Advance in
            guard let row = try Row.fetchOne(db, sql: "SELECT job, logical_time, state FROM runs WHERE run_id = ?", arguments: [runID])
            else { throw StorageError("no run \(runID) here") }
            guard let pipeline = try Self.pipeline(ofRun: runID, in: db), (0..<pipeline.stages.count).contains(stage) else {
                throw StorageError("run \(runID) has no stage \(stage)")
            }
            // Only from a complete input: made from part of it, the stage would be made again, differently, when
            // the stage before it completes.
            let complete =
                stage == 0
                ? (row["state"] as String) == RunState.finished.rawValue
                : try Int.fetchOne(
                    db,
                    sql: "SELECT COUNT(*) FROM stages WHERE run_id = ? AND stage = ? AND done_at IS NOT NULL",
                    arguments: [runID, stage - 1]
                ) == 1
            guard complete else {
                throw StorageError(
                    "stage \(pipeline.stages[stage].name) of \(runID) has not had its whole input yet: the stage before it is not complete"
                )
            }
            try db.execute(sql: "DELETE FROM outbox WHERE run_id = ? AND stage >= ?", arguments: [runID, stage])
            try db.execute(sql: "DELETE FROM outputs WHERE run_id = ? AND stage >= ?", arguments: [runID, stage])
            try db.execute(sql: "DELETE FROM stages WHERE run_id = ? AND stage >= ?", arguments: [runID, stage])
            let time: String = row["logical_time"]
            return try Self.advance(
                runID: runID,
                job: row["job"],
                logicalTime: Timestamp.parse(time) ?? Date(timeIntervalSince1970: 0),
                pipeline: pipeline,
                after: stage - 1,
                in: db,
                now: now
            )
        }
        noteCommitted(advance.created, micros: Timestamp.microseconds())
        return advance.progress
    }
}
