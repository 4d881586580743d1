public import Logging

/// Wraps a log handler (the stderr one) so that no record can forge or garble log lines: control characters
/// in the message and in metadata values (newlines, terminal escape sequences) are escaped, and each is cut
/// to a bounded length. Text from the wire reaches log lines through error descriptions and metadata; this is
/// the last line of defence behind ``MessageRejector``'s excerpts.
public struct EscapingLogHandler: LogHandler {
    private var wrapped: any LogHandler
    /// The longest message or metadata value written, in UTF-8 bytes.
    public static let maxBytes = 4096

    /// Wraps `handler`.
    public init(_ handler: any LogHandler) {
        wrapped = handler
    }

    public var metadata: Logger.Metadata {
        get { wrapped.metadata }
        set { wrapped.metadata = newValue }
    }

    public var logLevel: Logger.Level {
        get { wrapped.logLevel }
        set { wrapped.logLevel = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { wrapped[metadataKey: key] }
        set { wrapped[metadataKey: key] = newValue }
    }

    public func log(event: LogEvent) {
        var event = event
        event.message = "\(Self.escape(event.message.description))"
        event.metadata = event.metadata?.mapValues { .string(Self.escape("\($0)")) }
        wrapped.log(event: event)
    }

    /// `text` with control characters escaped (`\n`, `\r`, `\t`, `\u{1b}`) and cut to ``maxBytes``; text
    /// without any is returned unchanged.
    public static func escape(_ text: String) -> String {
        let clean = text.unicodeScalars.allSatisfy { !isControl($0) }
        if clean && text.utf8.count <= maxBytes { return text }
        var out = ""
        var bytes = 0
        for scalar in text.unicodeScalars {
            let piece: String
            switch scalar {
            case "\n": piece = "\\n"
            case "\r": piece = "\\r"
            case "\t": piece = "\\t"
            case _ where isControl(scalar): piece = "\\u{\(String(scalar.value, radix: 16))}"
            default: piece = String(scalar)
            }
            if bytes + piece.utf8.count > maxBytes {
                out += "…(cut)"
                break
            }
            out += piece
            bytes += piece.utf8.count
        }
        return out
    }

    private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar.value == 0x2028 || scalar.value == 0x2029
    }
}
