import Foundation
public import Messaging

/// Turns status events into one readable line each, for `baton up` and `baton watch`.
public struct EventFormatter: Sendable {
    /// Creates a formatter.
    public init() {}

    private static let clock: Date.FormatStyle = {
        var style = Date.FormatStyle(date: .omitted, time: .standard)
        style.timeZone = TimeZone.current
        return style
    }()

    /// One line, e.g. `08:13:28.506 algorithm   result.sent        demo@2026-…Z  size=2053 attempt=1`.
    public func line(_ event: StatusEvent) -> String {
        let time = Self.timeOfDay(event.time)
        var text = "\(time) \(Self.pad(event.source, 10)) \(Self.pad(event.type, 18))"
        if let run = event.run {
            text += " \(run)"
            if let part = event.part, part > 0 { text += " part \(part)" }
        } else if let job = event.job {
            text += " \(job)"
        }
        if let message = event.message { text += "  \(message)" }
        if let attributes = event.attributes, !attributes.isEmpty {
            let shown = attributes.filter { !Self.hidden.contains($0.key) }.sorted { $0.key < $1.key }
            if !shown.isEmpty { text += "  " + shown.map { "\($0.key)=\($0.value)" }.joined(separator: " ") }
        }
        return text
    }

    /// Attributes too noisy for a one-line view.
    private static let hidden: Set<String> = ["instance", "sha256", "host"]

    static func timeOfDay(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone.current
        let parts = calendar.dateComponents([.hour, .minute, .second, .nanosecond], from: date)
        return String(
            format: "%02d:%02d:%02d.%03d",
            parts.hour ?? 0,
            parts.minute ?? 0,
            parts.second ?? 0,
            (parts.nanosecond ?? 0) / 1_000_000
        )
    }

    static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
    }
}
