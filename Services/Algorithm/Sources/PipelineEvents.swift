import Messaging
import ServiceKit

extension StatusPublisher {
    /// Announces what a transaction did to runs' pipelines: `stage.ready` (with its `parts`), `stage.done` and
    /// `pipeline.finished`.
    func publish(progress: [Outbox.StageProgress]) {
        for step in progress {
            switch step {
            case .ready(let runID, let job, let stage, let name, let parts):
                publish(
                    EventType.stageReady,
                    job: job,
                    run: runID,
                    attributes: ["stage": name, "stage_index": "\(stage)", "parts": "\(parts)"]
                )
            case .done(let runID, let job, let stage, let name):
                publish(EventType.stageDone, job: job, run: runID, attributes: ["stage": name, "stage_index": "\(stage)"])
            case .finished(let runID, let job, let stages):
                publish(EventType.pipelineFinished, job: job, run: runID, attributes: ["stages": "\(stages)"])
            }
        }
    }
}
