import Synchronization

/// The last lines a command wrote on a stream (its standard error), bounded and made safe to show: a failed
/// run or a dead letter carries them as its cause, instead of only "exited with status 1".
///
/// At most ``maxLines`` lines and ``maxBytes`` bytes of them are kept (the newest); control characters
/// (escape sequences, carriage returns, NUL…) become `?`, a tab a space, and a line longer than the budget
/// keeps its beginning.
public final class OutputTail: Sendable {
    /// Lines kept at most.
    public static let maxLines = 20
    /// Bytes (UTF-8, without separators) kept at most.
    public static let maxBytes = 4096

    private let state = Mutex<(lines: [String], bytes: Int)>(([], 0))

    /// Creates an empty tail.
    public init() {}

    /// Adds a line (without its newline), dropping the oldest lines beyond the bounds.
    public func append(_ line: String) {
        var clean = Self.sanitise(line)
        if clean.utf8.count > Self.maxBytes {
            clean = String(decoding: clean.utf8.prefix(Self.maxBytes - 3), as: UTF8.self) + "..."
        }
        state.withLock { state in
            state.lines.append(clean)
            state.bytes += clean.utf8.count
            while state.lines.count > Self.maxLines || state.bytes > Self.maxBytes {
                state.bytes -= state.lines.removeFirst().utf8.count
            }
        }
    }

    /// The lines kept, oldest first.
    public var lines: [String] { state.withLock { $0.lines } }

    /// The lines kept as one line, joined by ` | `; nil when there are none (blank lines are left out).
    public var summary: String? {
        let lines = lines.filter { !$0.allSatisfy(\.isWhitespace) }
        return lines.isEmpty ? nil : lines.joined(separator: " | ")
    }

    /// A failure's reason with the tail appended as `; stderr: …`, when there is one.
    public func reason(_ failure: String) -> String {
        guard let summary else { return failure }
        return "\(failure); stderr: \(summary)"
    }

    /// The line with its control characters replaced: `?` for each, a space for a tab.
    static func sanitise(_ line: String) -> String {
        var result = String.UnicodeScalarView()
        for scalar in line.unicodeScalars {
            switch scalar.value {
            case 0x09: result.append(" ")
            case 0x00..<0x20, 0x7F..<0xA0, 0x2028, 0x2029: result.append("?")
            default: result.append(scalar)
            }
        }
        return String(result)
    }
}
