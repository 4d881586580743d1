import Foundation
import Messaging

/// The live progress line `baton watch` keeps at the bottom of a terminal: one bar per run in flight.
struct ProgressBoard {
    private var runs: [(run: String, percent: Double, message: String?)] = []
    /// Widest line drawn.
    var width = 120

    /// Takes an event into account; returns true when the progress line changed.
    mutating func apply(_ event: StatusEvent) -> Bool {
        guard let run = event.run else { return false }
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
            guard !runs.contains(where: { $0.run == run }) else { return false }
            runs.append((run, 0, nil))
            return true
        case EventType.runFinished, EventType.runFailed, EventType.runCancelled:
            let before = runs.count
            runs.removeAll { $0.run == run }
            return runs.count != before
        default:
            return false
        }
    }

    /// The line: `demo@…Z [########------------] 42% fitting | other@…Z [##…] 90%`, cut to `width`.
    var line: String {
        let text = runs.map { entry in
            let filled = Int((entry.percent / 100 * 20).rounded())
            let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: 20 - filled)
            var part = "\(entry.run) [\(bar)] \(Int(entry.percent))%"
            if let message = entry.message { part += " \(message)" }
            return part
        }.joined(separator: " | ")
        return text.count > width ? String(text.prefix(width - 1)) + "…" : text
    }
}
