public import Foundation

/// Text from the wire made safe to quote in a log line or an event: printable ASCII only, every control
/// character, quote and backslash escaped, and bounded in length, so a message can neither forge log lines
/// (newlines, terminal escape sequences) nor make one arbitrarily long.
///
/// ```swift
/// WireText.excerpt(Data("bad\n\u{1B}[31m".utf8))   // "bad\\n\\x1b[31m"
/// ```
public enum WireText {
    /// The first bytes of a message frame, escaped: at most `limit` bytes are shown, and `…(+N bytes)` says
    /// how many more there were.
    /// - Parameters:
    ///   - data: The bytes as received.
    ///   - limit: How many of them to show.
    public static func excerpt(_ data: Data, limit: Int = 64) -> String {
        var out = ""
        for byte in data.prefix(max(limit, 0)) { append(byte, to: &out) }
        if data.count > limit { out += "…(+\(data.count - max(limit, 0)) bytes)" }
        return out
    }

    /// A text that may hold wire bytes (e.g. an error describing a message), escaped the same way and cut
    /// to at most `limit` UTF-8 bytes of input.
    public static func escape(_ text: String, limit: Int = 512) -> String {
        excerpt(Data(text.utf8), limit: limit)
    }

    /// A text for a person, in a JSON reply or on a terminal: its printable characters kept as they are (quotes,
    /// backslashes and letters of any script too: a JSON encoder or the terminal shows them right), every control
    /// or format character (newlines, escape sequences, bidirectional overrides) as `\u{…}`, and cut to at most
    /// `limit` UTF-8 bytes of input, with `…(+N bytes)` saying how many more there were.
    public static func readable(_ text: String, limit: Int = 512) -> String {
        var out = ""
        var used = 0
        for scalar in text.unicodeScalars {
            let size = UTF8.width(scalar)
            guard used + size <= max(limit, 0) else { break }
            used += size
            switch scalar.properties.generalCategory {
            case .control, .format, .lineSeparator, .paragraphSeparator, .surrogate, .privateUse, .unassigned:
                out += "\\u{\(String(scalar.value, radix: 16))}"
            default:
                out.unicodeScalars.append(scalar)
            }
        }
        let total = text.utf8.count
        if total > used { out += "…(+\(total - used) bytes)" }
        return out
    }

    /// True when `text` needs no escaping: printable ASCII without quotes or backslashes.
    public static func isPlain(_ text: Substring) -> Bool {
        text.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F && $0 != 0x22 && $0 != 0x5C }
    }

    private static func append(_ byte: UInt8, to out: inout String) {
        switch byte {
        case 0x0A: out += "\\n"
        case 0x0D: out += "\\r"
        case 0x09: out += "\\t"
        case 0x22: out += "\\\""
        case 0x5C: out += "\\\\"
        case 0x20..<0x7F: out.unicodeScalars.append(Unicode.Scalar(byte))
        default:
            let hex = String(byte, radix: 16)
            out += byte < 0x10 ? "\\x0\(hex)" : "\\x\(hex)"
        }
    }
}
