import Foundation
import LoggerService
import Messaging

/// The live progress line `baton watch` keeps at the bottom of a terminal: one bar per run in flight, and one
/// per stage of each run whose pipeline is in flight (parts done of total).
struct ProgressBoard {
    private var runs: [(run: String, percent: Double, message: String?)] = []
    private var pipelines = PipelineBoard()
    /// Widest line drawn.
    var width = 120

    /// Takes an event into account; returns true when the progress line changed.
    mutating func apply(_ event: StatusEvent) -> Bool {
        guard let run = event.run else { return false }
        let staged = pipelines.apply(event)
        switch event.type {
        case EventType.runProgress:
            let percent = event.attributes?["percent"].flatMap(Double.init) ?? 0
            if let index = runs.firstIndex(where: { $0.run == run }) {
                runs[index] = (run, percent, event.message)
            } else {
                runs.append((run, percent, event.message))
            }
            return true
        case EventType.runStarted:
            guard !runs.contains(where: { $0.run == run }) else { return staged }
            runs.append((run, 0, nil))
            return true
        case EventType.runFinished, EventType.runFailed, EventType.runCancelled:
            let before = runs.count
            runs.removeAll { $0.run == run }
            return runs.count != before || staged
        default:
            return staged
        }
    }

    /// A bar of `width` characters, `fraction` (0 to 1) of it filled.
    static func bar(_ fraction: Double, width: Int) -> String {
        let filled = min(max(Int((fraction * Double(width)).rounded()), 0), width)
        return "[" + String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled) + "]"
    }

    /// The line: `demo@…Z [########------------] 42% fitting | scores@…Z score [###-------] 12/64 total [----------] 0/1`,
    /// cut to `width`.
    var line: String {
        let algorithm = runs.map { entry in
            var part = "\(entry.run) \(Self.bar(entry.percent / 100, width: 20)) \(Int(entry.percent))%"
            if let message = entry.message { part += " \(message)" }
            return part
        }
        let stages = pipelines.report().map { pipeline in
            ([pipeline.run] + pipeline.stages.map(Self.stageBar)).joined(separator: " ")
        }
        let text = (algorithm + stages).joined(separator: " | ")
        return text.count > width ? String(text.prefix(width - 1)) + "…" : text
    }

    /// One stage's bar: `score [###-------] 12/64`, and `2 dead` when some are.
    static func stageBar(_ stage: StatusReport.StageProgress) -> String {
        let fraction = stage.parts.map { $0 > 0 ? Double(stage.done) / Double($0) : 1 } ?? 0
        var text = "\(stage.name) \(bar(fraction, width: 10)) \(stage.done)/\(stage.parts.map(String.init) ?? "?")"
        if stage.dead > 0 { text += " \(stage.dead) dead" }
        return text
    }
}
