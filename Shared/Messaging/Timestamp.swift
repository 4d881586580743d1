public import Foundation

/// The one textual form of time on the wire and in files: ISO 8601 in UTC with milliseconds,
/// e.g. `2026-03-29T01:00:00.000Z`.
public enum Timestamp {
    private static let withFraction = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
    private static let withoutFraction = Date.ISO8601FormatStyle()

    /// Formats a date in UTC with milliseconds.
    public static func format(_ date: Date) -> String {
        date.formatted(withFraction)
    }

    /// A time as whole microseconds since 1970, as `durableAtUs` and `sentAtUs` carry it.
    public static func microseconds(_ date: Date = Date()) -> Int64 {
        microseconds(since1970: date.timeIntervalSince1970)
    }

    /// Seconds since 1970 as whole microseconds.
    public static func microseconds(since1970 seconds: Double) -> Int64 {
        Int64((seconds * 1_000_000).rounded())
    }

    /// Parses an ISO 8601 time with or without fractional seconds, with `Z` or a numeric offset.
    public static func parse(_ text: String) -> Date? {
        if let date = try? withFraction.parse(text) { return date }
        if let date = try? withoutFraction.parse(text) { return date }
        return nil
    }

    /// A JSON encoder that writes dates in this form and sorts keys (stable output).
    public static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(format(date))
        }
        return encoder
    }

    /// A JSON decoder that reads dates in this form.
    public static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            let text = try container.decode(String.self)
            guard let date = parse(text) else {
                throw DecodingError.dataCorruptedError(
                    in: container,
                    debugDescription: "expected an ISO 8601 time such as 2026-01-01T00:00:00Z, got \"\(text)\""
                )
            }
            return date
        }
        return decoder
    }
}
