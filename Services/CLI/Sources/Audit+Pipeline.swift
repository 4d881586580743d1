import Foundation
import Messaging

extension Baton.Audit {
    /// The accounting invariant for one succeeded run's pipeline, from the hub's stages (one consistent read):
    /// every stage was made once the stage before it was complete, every task is acknowledged (a dead task is a
    /// violation; a pending or sent one means the run is still in flight, listed, not counted), the outbox holds
    /// the tasks each stage was given, and a merge had exactly one task. The store stage's dead tasks are named
    /// part by part with the store check.
    static func check(pipeline stages: [AlgorithmReply.Stage], run: String, into findings: inout Findings) {
        findings.pipelines += 1
        let before = findings.violations.count
        var waiting: AlgorithmReply.Stage?
        for stage in stages.sorted(by: { $0.stage < $1.stage }) {
            let label = "\(run): stage \(stage.name) (\(stage.stage + 1) of \(stage.stages))"
            guard stage.ready else {
                // Made in the transaction that completes the stage before it (the first, in the one that ends the run).
                if waiting == nil {
                    findings.violation("\(label) was never made, though the stage before it is complete")
                    waiting = stage  // the stages after it follow from it: not named again
                }
                continue
            }
            findings.tasks += stage.tasks
            if stage.tasks != stage.parts {
                findings.violation("\(label) was given \(stage.parts) task(s), the outbox holds \(stage.tasks)")
            }
            if stage.mode == .merge, stage.parts != 1 {
                findings.violation("\(label) is a merge with \(stage.parts) task(s), not exactly 1")
            }
            if stage.dead > 0, stage.stage != stage.stages - 1 {
                findings.violation("\(label): \(stage.dead) dead task(s); `baton replay --dead` after a fix")
            }
            if stage.done == stage.tasks, stage.doneAt == nil {
                findings.violation("\(label): every task is done, but the stage was not completed")
            }
            if stage.done + stage.dead < stage.tasks, waiting == nil { waiting = stage }
            if stage.dead > 0, waiting == nil { waiting = stage }
        }
        guard let waiting, findings.violations.count == before, waiting.dead == 0 else { return }
        findings.pipelinesInFlight += 1
        findings.note("\(run): in flight at stage \(waiting.name), \(waiting.done) of \(waiting.tasks) task(s) done")
    }
}
