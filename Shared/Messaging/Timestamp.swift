public import Foundation
import Scheduling

/// The one textual form of time on the wire and in files: ISO 8601 in UTC with milliseconds,
/// e.g. `2026-03-29T01:00:00.000Z`.
public enum Timestamp {
    private static let withFraction = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
    private static let withoutFraction = Date.ISO8601FormatStyle()

    /// Formats a date in UTC with milliseconds, rounded to the nearest millisecond.
    ///
    /// Slots are whole milliseconds, but a `Date` holds them as binary seconds: `…:06.800` is stored as
    /// `…:06.79999…`, which Foundation's formatter truncates to `.799`. Rounding here, from the integer
    /// millisecond, makes a slot's text (its run id, `BATON_LOGICAL_TIME`, stored times) the slot itself.
    public static func format(_ date: Date) -> String {
        format(milliseconds: milliseconds(date))
    }

    /// Formats whole milliseconds since 1970 as `YYYY-MM-DDTHH:MM:SS.mmmZ` (proleptic Gregorian, UTC).
    public static func format(milliseconds: Int64) -> String {
        let days = CivilDate.floorDivide(milliseconds, 86_400_000)
        let msOfDay = milliseconds - days * 86_400_000
        let (year, month, day) = CivilDate.date(ofDay: days)
        let hour = msOfDay / 3_600_000
        let minute = msOfDay / 60_000 % 60
        let second = msOfDay / 1000 % 60
        let millisecond = msOfDay % 1000
        func pad(_ value: Int64, _ width: Int) -> String {
            let text = String(value)
            return text.count >= width ? text : String(repeating: "0", count: width - text.count) + text
        }
        return
            "\(pad(year, 4))-\(pad(Int64(month), 2))-\(pad(Int64(day), 2))T\(pad(hour, 2)):\(pad(minute, 2)):\(pad(second, 2)).\(pad(millisecond, 3))Z"
    }

    /// A time as whole milliseconds since 1970, rounded to the nearest: the integer every slot is.
    public static func milliseconds(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1000).rounded())
    }

    /// The date of whole milliseconds since 1970.
    public static func date(milliseconds: Int64) -> Date {
        Date(timeIntervalSince1970: Double(milliseconds) / 1000)
    }

    /// A date rounded to the nearest whole millisecond (a manual run's logical time, so that its id and
    /// `BATON_LOGICAL_TIME` name the same instant).
    public static func wholeMilliseconds(_ date: Date) -> Date {
        self.date(milliseconds: milliseconds(date))
    }

    /// A time as whole microseconds since 1970, as `durableAtUs` and `sentAtUs` carry it.
    public static func microseconds(_ date: Date = Date()) -> Int64 {
        microseconds(since1970: date.timeIntervalSince1970)
    }

    /// Seconds since 1970 as whole microseconds.
    public static func microseconds(since1970 seconds: Double) -> Int64 {
        Int64((seconds * 1_000_000).rounded())
    }

    /// Parses an ISO 8601 time with or without fractional seconds, with `Z` or a numeric offset. A date or time
    /// that is not a real one (`2026-02-30`, `24:00:00`, a 60th second) is refused: Foundation's parser would roll
    /// it over into the next month, day or minute.
    public static func parse(_ text: String) -> Date? {
        guard let date = (try? withFraction.parse(text)) ?? (try? withoutFraction.parse(text)), fieldsAreReal(text) else {
            return nil
        }
        return date
    }

    /// Whether the `YYYY-MM-DDTHH:MM:SS` that every form the parser takes begins with names a real day and time.
    static func fieldsAreReal(_ text: String) -> Bool {
        let bytes = Array(text.utf8.prefix(19))
        guard bytes.count == 19 else { return false }
        func number(_ range: Range<Int>) -> Int? {
            var value = 0
            for index in range {
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) else { return nil }
                value = value * 10 + Int(bytes[index] - UInt8(ascii: "0"))
            }
            return value
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10), let hour = number(11..<13),
            let minute = number(14..<16), let second = number(17..<19), (1...12).contains(month), hour < 24, minute < 60, second < 60
        else { return false }
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
        return (1...days).contains(day)
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
