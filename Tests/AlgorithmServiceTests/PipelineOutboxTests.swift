import AlgorithmService
import Foundation
import GRDB
import Messaging
import TestSupport
import Testing

/// The hub's pipeline bookkeeping through the outbox's public operations: tasks per (run, stage, part), outputs
/// committed with the ack that settles a task, a stage's tasks created once when the stage before it is done.
/// Expected task sets are derived from the pipeline and the parts handed off, never read back from the tables.
struct PipelineOutboxTests {
    let scratch = Scratch("pipeline")
    let t0 = Date(timeIntervalSince1970: 1_000_000)

    /// score (per part) → total (merge) → store.
    let pipeline = Pipeline(stages: [
        StageSpec(name: "score", command: ["true"]),
        StageSpec(name: "total", mode: .merge, command: ["true"]),
    ])

    func hub(maxAttempts: Int = 3) async throws -> (Outbox, RunLedger) {
        let outbox = try await Outbox(
            path: scratch.path("o.sqlite"),
            policy: .init(maxAttempts: maxAttempts, initialBackoff: .seconds(1), maxBackoff: .seconds(1))
        )
        return (outbox, RunLedger(outbox: outbox))
    }

    func part(_ text: String) -> Outbox.StoredPart {
        Outbox.StoredPart(path: scratch.path(text), digest: PartDigest(size: text.utf8.count, sha256: SHA256.hex(of: Data(text.utf8))))
    }

    /// Accepts, runs and hands off `run` with `parts` parts.
    func handOff(_ ledger: RunLedger, run: String, parts: Int, pipeline: Pipeline? = nil) async throws -> [Outbox.StageProgress] {
        #expect(try await ledger.accept(Fixtures.request(run), pipeline: pipeline ?? self.pipeline, now: t0) == nil)
        try await ledger.markRunning(run, now: t0)
        return try await ledger.finish(run, parts: (0..<parts).map { part("\(run)-\($0)") }, now: t0)
    }

    func keys(_ entries: [Outbox.Entry]) -> Set<String> {
        Set(entries.map { "\($0.header.stageNumber)/\($0.header.part)" })
    }

    func ack(_ outbox: Outbox, _ run: String, stage: Int, part: Int, outputs: [Outbox.StoredPart] = []) async throws -> Outbox.Settled {
        try #require(try await outbox.settle([.ack(runID: run, stage: stage, part: part, processor: "p", outputs: outputs)], now: t0).first)
    }

    @Test func aHandOffMakesOneTaskPerPartOfTheFirstStageCarryingItsStage() async throws {
        let (outbox, ledger) = try await hub()
        let progress = try await handOff(ledger, run: "j@1", parts: 3)
        #expect(progress == [.ready(runID: "j@1", job: "j", stage: 0, name: "score", parts: 3)])
        let tasks = try await outbox.entries()
        #expect(keys(tasks) == ["0/0", "0/1", "0/2"])
        for task in tasks {
            #expect(task.header.stage?.name == "score")
            #expect(task.header.stages == 3)
            #expect(task.header.pipeline == pipeline.version)
            #expect(task.header.parts == 3)
        }
    }

    @Test func theMergeIsCreatedOnceWhenTheLastPartIsDoneWithEveryOutputInPartOrder() async throws {
        let (outbox, ledger) = try await hub()
        _ = try await handOff(ledger, run: "j@1", parts: 3)
        // Parts finish out of order; the merge appears only with the last, and only once.
        #expect(try await ack(outbox, "j@1", stage: 0, part: 2, outputs: [part("c")]).progress.isEmpty)
        #expect(try await ack(outbox, "j@1", stage: 0, part: 0, outputs: [part("a1"), part("a2")]).progress.isEmpty)
        let last = try await ack(outbox, "j@1", stage: 0, part: 1, outputs: [part("b")])
        #expect(
            last.progress == [
                .done(runID: "j@1", job: "j", stage: 0, name: "score"),
                .ready(runID: "j@1", job: "j", stage: 1, name: "total", parts: 1),
            ]
        )
        // A late duplicate ack of a settled task changes nothing and creates nothing.
        let duplicate = try await ack(outbox, "j@1", stage: 0, part: 1, outputs: [part("other")])
        #expect(!duplicate.changed && duplicate.progress.isEmpty)
        let merges = try await outbox.entries().filter { $0.header.stageNumber == 1 }
        #expect(merges.count == 1)
        let inputs = try await outbox.mergeInputs(runID: "j@1", stage: 1)
        #expect(inputs == [part("a1"), part("a2"), part("b"), part("c")])
        let merge = try #require(merges.first)
        #expect(merge.header.sha256 == PartDigest.combined(inputs.map(\.digest)))
        #expect(merge.header.size == inputs.reduce(0) { $0 + $1.digest.size })
    }

    @Test func theMergesOutputGoesToTheStoreAndTheRunFinishes() async throws {
        let (outbox, ledger) = try await hub()
        _ = try await handOff(ledger, run: "j@1", parts: 2)
        _ = try await ack(outbox, "j@1", stage: 0, part: 0, outputs: [part("a")])
        _ = try await ack(outbox, "j@1", stage: 0, part: 1, outputs: [part("b")])
        let merged = try await ack(outbox, "j@1", stage: 1, part: 0, outputs: [part("sum")])
        #expect(merged.progress.last == .ready(runID: "j@1", job: "j", stage: 2, name: "store", parts: 1))
        let store = try #require(try await outbox.entry(runID: "j@1", stage: 2, part: 0))
        #expect(store.header.sha256 == part("sum").digest.sha256)
        #expect(store.header.stage?.builtin == .store)
        let stored = try await ack(outbox, "j@1", stage: 2, part: 0)
        #expect(stored.progress.last == .finished(runID: "j@1", job: "j", stages: 3))
        #expect(try await outbox.counts() == [.acked: 4])
    }

    @Test func aFailedPartIsRetriedAloneAndHoldsTheMergeUntilItSucceeds() async throws {
        let (outbox, ledger) = try await hub(maxAttempts: 2)
        _ = try await handOff(ledger, run: "j@1", parts: 3)
        _ = try await ack(outbox, "j@1", stage: 0, part: 0, outputs: [part("a")])
        _ = try await ack(outbox, "j@1", stage: 0, part: 2, outputs: [part("c")])
        let first = try await outbox.recordFailure(runID: "j@1", stage: 0, part: 1, reason: "boom", now: t0)
        guard case .retry = first else {
            Issue.record("a first failure of three allowed attempts is retried, got \(first)")
            return
        }
        // Only that part is due again; nothing of stage 1 exists.
        #expect(keys(try await outbox.entries(state: .pending)) == ["0/1"])
        #expect(try await outbox.recordFailure(runID: "j@1", stage: 0, part: 1, reason: "boom", now: t0) == .dead)
        #expect(try await outbox.entries().allSatisfy { $0.header.stageNumber == 0 })
        // Fixed and requeued: it succeeds, and the merge is created once.
        #expect(try await outbox.requeue(runID: "j@1", stage: 0, part: 1, now: t0) == 1)
        let last = try await ack(outbox, "j@1", stage: 0, part: 1, outputs: [part("b")])
        #expect(last.progress.contains(.ready(runID: "j@1", job: "j", stage: 1, name: "total", parts: 1)))
        #expect(try await outbox.entries().filter { $0.header.stageNumber == 1 }.count == 1)
        // The other parts were settled once each, and never failed.
        for settled in [0, 2] {
            let entry = try #require(try await outbox.entry(runID: "j@1", stage: 0, part: settled))
            #expect(entry.state == .acked && entry.failures == 0)
        }
    }

    @Test func aTaskWhoseProcessorDiedOnItIsAFailedAttemptAnnouncedOnce() async throws {
        let (outbox, ledger) = try await hub()
        _ = try await handOff(ledger, run: "j@1", parts: 1)
        try await outbox.markSent(runID: "j@1", stage: 0, part: 0, leaseDeadline: t0 + 30, now: t0)
        #expect(try await outbox.renewLease(runID: "j@1", stage: 0, part: 0, processor: "p", until: t0 + 30))
        #expect(try await outbox.nextDue(now: t0 + 10).entry == nil)
        #expect(outbox.takeLeaseRetries().isEmpty)
        // The processor stopped renewing: the lease runs out, the attempt counts, the task is due again.
        let due = try #require(try await outbox.nextDue(now: t0 + 31).entry)
        #expect(due.failures == 1 && due.header.stage?.name == "score")
        let retried = outbox.takeLeaseRetries()
        #expect(retried.map(\.header.runID) == ["j@1"] && retried.first?.lastError?.contains("lease expired") == true)
        #expect(outbox.takeLeaseRetries().isEmpty)
    }

    @Test func aStageWithNoInputIsDoneAtOnceAndAMergeStillRunsOnNothing() async throws {
        let (outbox, ledger) = try await hub()
        _ = try await handOff(ledger, run: "j@1", parts: 1)
        // The per-part stage hands on nothing: the merge still runs, once, with no input.
        let settled = try await ack(outbox, "j@1", stage: 0, part: 0)
        #expect(settled.progress.last == .ready(runID: "j@1", job: "j", stage: 1, name: "total", parts: 1))
        #expect(try await outbox.mergeInputs(runID: "j@1", stage: 1).isEmpty)
        // A merge that writes nothing leaves the store stage without tasks: the run is finished.
        let merged = try await ack(outbox, "j@1", stage: 1, part: 0)
        #expect(
            merged.progress.suffix(3) == [
                .ready(runID: "j@1", job: "j", stage: 2, name: "store", parts: 0),
                .done(runID: "j@1", job: "j", stage: 2, name: "store"),
                .finished(runID: "j@1", job: "j", stages: 3),
            ]
        )
    }

    @Test func aRunKeepsThePipelineItWasAcceptedWith() async throws {
        let (outbox, ledger) = try await hub()
        _ = try await handOff(ledger, run: "j@1", parts: 1)
        let longer = Pipeline(stages: [StageSpec(name: "clean", command: ["true"])] + pipeline.stages)
        _ = try await handOff(ledger, run: "j@2", parts: 1, pipeline: longer)
        #expect(try await outbox.entry(runID: "j@1", stage: 0, part: 0)?.header.stage?.name == "score")
        #expect(try await outbox.entry(runID: "j@2", stage: 0, part: 0)?.header.stage?.name == "clean")
        #expect(longer.version != pipeline.version)
    }

    @Test func theDefaultPipelineSendsItsPartsAsBeforePipelines() async throws {
        let (outbox, ledger) = try await hub()
        _ = try await handOff(ledger, run: "j@1", parts: 2, pipeline: .default)
        for task in try await outbox.entries() {
            #expect(task.header.stage == nil && task.header.stageIndex == nil && task.header.pipeline == nil)
        }
        _ = try await ack(outbox, "j@1", stage: 0, part: 0)
        let last = try await ack(outbox, "j@1", stage: 0, part: 1)
        #expect(last.progress.last == .finished(runID: "j@1", job: "j", stages: 1))
    }

    @Test func rerunFromAStageRecreatesItFromTheKeptInput() async throws {
        let (outbox, ledger) = try await hub()
        _ = try await handOff(ledger, run: "j@1", parts: 2)
        _ = try await ack(outbox, "j@1", stage: 0, part: 0, outputs: [part("a")])
        _ = try await ack(outbox, "j@1", stage: 0, part: 1, outputs: [part("b")])
        _ = try await ack(outbox, "j@1", stage: 1, part: 0, outputs: [part("sum")])
        let progress = try await outbox.rerun(runID: "j@1", fromStage: 1, now: t0)
        #expect(progress == [.ready(runID: "j@1", job: "j", stage: 1, name: "total", parts: 1)])
        #expect(keys(try await outbox.entries(state: .pending)) == ["1/0"])
        #expect(try await outbox.mergeInputs(runID: "j@1", stage: 1) == [part("a"), part("b")])
        await #expect(throws: (any Error).self) { _ = try await outbox.rerun(runID: "j@1", fromStage: 7) }
    }
}

/// An outbox written before pipelines opens with its parts intact: stage 0 of the default pipeline.
struct PipelineMigrationTests {
    let scratch = Scratch("migration")

    @Test func partsFromBeforePipelinesAreStageZeroOfTheDefaultPipeline() async throws {
        let path = scratch.path("old.sqlite")
        let payload = Data("old".utf8)
        // The schema as migrations v1 to v3 left it, with one part handed off and not yet delivered.
        try Self.sqlite(
            path,
            """
            CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY);
            INSERT INTO grdb_migrations VALUES ('v1'), ('runs-v1'), ('runs-v2'), ('v2 durable_at'), ('v3 cause');
            CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, part INTEGER NOT NULL,
                parts INTEGER NOT NULL, job TEXT NOT NULL, logical_time TEXT NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL,
                sha256 TEXT NOT NULL, state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'acked', 'dead')), due_at REAL NOT NULL,
                deliveries INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0, started INTEGER NOT NULL DEFAULT 0,
                processor TEXT, last_error TEXT, created_at TEXT NOT NULL, sent_at TEXT, acked_at TEXT, durable_at REAL, cause TEXT,
                UNIQUE (run_id, part));
            CREATE TABLE runs (run_id TEXT PRIMARY KEY, job TEXT NOT NULL, logical_time TEXT NOT NULL, fired_at TEXT NOT NULL,
                trigger TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, error TEXT, updated_at TEXT NOT NULL);
            INSERT INTO runs VALUES ('j@1970-01-01T00:01:00.000Z', 'j', '1970-01-01T00:01:00.000Z', '1970-01-01T00:01:00.000Z',
                'schedule', 'finished', 1, NULL, '1970-01-01T00:01:00.000Z');
            INSERT INTO outbox (run_id, part, parts, job, logical_time, path, size, sha256, state, due_at, created_at)
                VALUES ('j@1970-01-01T00:01:00.000Z', 0, 1, 'j', '1970-01-01T00:01:00.000Z', '/raw/old.result', 3,
                '\(SHA256.hex(of: payload))', 'pending', 0, '1970-01-01T00:01:00.000Z');
            """
        )
        let outbox = try await Outbox(path: path)
        let due = try #require(try await outbox.nextDue(now: Date()).entry)
        #expect(due.header.runID == "j@1970-01-01T00:01:00.000Z" && due.header.stageNumber == 0 && due.header.stage == nil)
        #expect(due.header.sha256 == SHA256.hex(of: payload) && due.path == "/raw/old.result")
        let settled = try await outbox.settle([.ack(runID: due.header.runID, part: 0, processor: "p")])
        #expect(settled.first?.changed == true)
        #expect(try await outbox.counts() == [.acked: 1])
    }

    static func sqlite(_ path: String, _ sql: String) throws {
        let queue = try DatabaseQueue(path: path)
        try queue.write { db in try db.execute(sql: sql) }
    }
}
