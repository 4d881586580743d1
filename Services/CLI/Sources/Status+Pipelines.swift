import Foundation
import Messaging

extension Baton.Status {
    /// The runs whose pipeline is in flight, one line each: `scores@…  score 12/64  total 0/1` (a stage whose
    /// announcement was lost shows `?` for its total), with failed attempts and dead letters when there are any.
    static func renderPipelines(_ pipelines: [StatusReport.PipelineRun], now: Date) -> String {
        var text = "\nPIPELINES IN FLIGHT\n"
        if pipelines.isEmpty { text += "  none\n" }
        for pipeline in pipelines {
            var line = "  \(pipeline.run)"
            for stage in pipeline.stages { line += "  \(stageText(stage))" }
            line += "  (since \(span(now.timeIntervalSince(pipeline.since))) ago)"
            text += line + "\n"
        }
        return text
    }

    /// One stage: `score 12/64`, `score 60/64 (2 dead, 3 retried)`.
    static func stageText(_ stage: StatusReport.StageProgress) -> String {
        var text = "\(stage.name) \(stage.done)/\(stage.parts.map(String.init) ?? "?")"
        var trouble: [String] = []
        if stage.dead > 0 { trouble.append("\(stage.dead) dead") }
        if stage.failed > 0 { trouble.append("\(stage.failed) retried") }
        if !trouble.isEmpty { text += " (\(trouble.joined(separator: ", ")))" }
        return text
    }
}
