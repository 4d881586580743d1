import Foundation
import CoreMetrics
import GRDB
import Messaging
import MetricsHTTP
import Synchronization

/// Counts the tasks the hub settles or fails, per job and stage: `baton_tasks_total{job,stage,outcome}` with
/// `outcome` `succeeded` (acknowledged), `retry` (a processor's failure, to be tried again) or `dead`
/// (dead-lettered). The stage is labelled by name, as the run's pipeline recorded it.
struct TaskTally: Sendable {
    /// What became of a task.
    enum Outcome: String, Sendable {
        case succeeded, retry, dead
    }

    private let metrics: ServiceMetrics
    private let outbox: Outbox
    private let names = StageNames()

    init(metrics: ServiceMetrics, outbox: Outbox) {
        self.metrics = metrics
        self.outbox = outbox
    }

    /// Counts one task of a stage named `stage`.
    func count(_ outcome: Outcome, job: String, stage: String) {
        metrics.counter("baton_tasks_total", job: job, [("stage", stage), ("outcome", outcome.rawValue)]).increment()
    }

    /// Remembers the names of the stages that pipeline progress names (a stage made ready or done), so that
    /// counting their tasks needs no lookup: a run of one part is a stage of its own, and its ack used to cost a
    /// read of the outbox for the name.
    func learn(_ progress: [Outbox.StageProgress]) {
        for step in progress {
            switch step {
            case .ready(let runID, _, let stage, let name, _), .done(let runID, _, let stage, let name):
                names.remember(name, runID: runID, stage: stage)
            case .finished: break
            }
        }
    }

    /// Counts one task of `runID`'s stage `stage`, its name looked up once per stage.
    func count(_ outcome: Outcome, job: String, runID: String, stage: Int) async {
        let label: String
        if let known = names.name(runID: runID, stage: stage) {
            label = known
        } else {
            let found = (try? await outbox.stageName(runID: runID, stage: stage)) ?? nil
            label = found ?? "\(stage)"
            if found != nil { names.remember(label, runID: runID, stage: stage) }
        }
        count(outcome, job: job, stage: label)
    }

    /// Stage names of recent runs, so that a stage's tasks cost one lookup, not one each.
    final class StageNames: Sendable {
        /// Beyond this many stages remembered, they are forgotten all at once (a cache, not a record).
        static let limit = 4096
        private let names = Mutex<[String: String]>([:])

        func name(runID: String, stage: Int) -> String? {
            names.withLock { $0["\(stage) \(runID)"] }
        }

        func remember(_ name: String, runID: String, stage: Int) {
            names.withLock {
                if $0.count >= Self.limit { $0.removeAll() }
                $0["\(stage) \(runID)"] = name
            }
        }
    }
}

extension Outbox {
    /// The name of a run's stage, from its recorded pipeline (`store` for a run without stages); nil when the
    /// run is not known here.
    func stageName(runID: String, stage: Int) async throws -> String? {
        try await pool.read { db in
            if let name = try String.fetchOne(
                db.cachedStatement(sql: "SELECT name FROM stages WHERE run_id = ? AND stage = ?"),
                arguments: [runID, stage]
            ) {
                return name
            }
            guard let pipeline = try Self.pipeline(ofRun: runID, in: db), stage >= 0, stage < pipeline.stages.count else { return nil }
            return pipeline.stages[stage].name
        }
    }
}
