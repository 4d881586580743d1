import Foundation

/// Durations as people write them in configuration: `500ms`, `10s`, `5m`, `1h30m`, `2d`, or a plain number of seconds.
public enum DurationText {
    /// The longest duration accepted: about 100 years (anything longer is a mistake, and would overflow).
    public static let maxMilliseconds: Double = 100 * 365.25 * 86_400_000

    /// Parses a duration; `nil` when the text is not one (or is longer than about 100 years).
    public static func parse(_ text: String) -> Duration? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if let seconds = Double(trimmed), seconds.isFinite, seconds >= 0 {
            guard seconds * 1000 <= maxMilliseconds else { return nil }
            return .milliseconds(Int64((seconds * 1000).rounded()))
        }
        var total: Duration = .zero
        var number = ""
        var unit = ""
        var sawComponent = false
        func flush() -> Bool {
            guard let value = Double(number), value >= 0 else { return false }
            let milliseconds: Double
            switch unit {
            case "ms": milliseconds = value
            case "s": milliseconds = value * 1000
            case "m": milliseconds = value * 60_000
            case "h": milliseconds = value * 3_600_000
            case "d": milliseconds = value * 86_400_000
            default: return false
            }
            // Checked before converting: a huge number would trap in Int64(_:) and in the sum.
            guard milliseconds.isFinite, milliseconds <= maxMilliseconds,
                Double(total.components.seconds) * 1000 + milliseconds <= maxMilliseconds
            else { return false }
            total += .milliseconds(Int64(milliseconds.rounded()))
            number = ""
            unit = ""
            sawComponent = true
            return true
        }
        for character in trimmed {
            if character.isNumber || character == "." {
                if !unit.isEmpty { guard flush() else { return nil } }
                number.append(character)
            } else if character.isLetter {
                guard !number.isEmpty else { return nil }
                unit.append(character)
            } else {
                return nil
            }
        }
        guard !number.isEmpty, flush(), sawComponent else { return nil }
        return total
    }

    /// Formats a duration in the largest whole units, e.g. `1h30m`, `10s`, `250ms`.
    public static func format(_ duration: Duration) -> String {
        var milliseconds = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        if milliseconds == 0 { return "0s" }
        var text = ""
        for (unit, size) in [("d", Int64(86_400_000)), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)] {
            if milliseconds >= size {
                text += "\(milliseconds / size)\(unit)"
                milliseconds %= size
            }
        }
        return text
    }
}
