public import Foundation
import Scheduling

/// A fast decoder for status events in the form Baton's publishers write them, with `JSONDecoder` behind it.
///
/// The logger decodes every event twice (the bus's check, then the capture), and an idle stack sends it little
/// but heartbeats: `JSONDecoder` was a third of an idle logger's CPU. Events as ``StatusEvent/jsonLine`` and
/// ``HeartbeatTemplate`` write them (keys sorted, no whitespace, no escapes, plain integers, the time with three
/// fraction digits in UTC) are read here in one pass over the bytes. Anything else (other spacing, escapes,
/// unknown or repeated keys, nulls, another time form) is left to `JSONDecoder`, which stays the definition.
extension StatusEvent {
    /// The event, if `json` is in the canonical form; nil means "ask `JSONDecoder`", not "invalid".
    public static func canonical(_ json: Data) -> StatusEvent? {
        json.withUnsafeBytes { raw in
            var reader = CanonicalReader(bytes: raw.bindMemory(to: UInt8.self))
            return reader.event()
        }
    }
}

extension StatusEvent {
    /// The event's JSON line written by hand: the bytes `Timestamp.encoder()` writes (keys sorted, no whitespace,
    /// slashes not escaped), with no encoder, no boxing and no sorting of the fixed keys. A hub publishes a few
    /// events per task, and `JSONEncoder` was a tenth of its CPU. A string with a character the encoder escapes
    /// (a quote, a backslash, a control character) is escaped by the encoder itself, so that the bytes stay the
    /// same. `CanonicalEventTests` holds the two to the same bytes.
    var canonicalLine: Data {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(256 + (message?.utf8.count ?? 0))
        bytes.append(UInt8(ascii: "{"))
        func key(_ name: StaticString) {
            if bytes.count > 1 { bytes.append(UInt8(ascii: ",")) }
            bytes.append(UInt8(ascii: "\""))
            bytes.append(contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
            bytes.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
        }
        func string(_ name: StaticString, _ value: String?) {
            guard let value else { return }
            key(name)
            Self.quote(value, into: &bytes)
        }
        if let attributes {
            key("attributes")
            bytes.append(UInt8(ascii: "{"))
            // The encoder sorts keys by their UTF-8 bytes.
            for (index, name) in attributes.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }).enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                Self.quote(name, into: &bytes)
                bytes.append(UInt8(ascii: ":"))
                Self.quote(attributes[name] ?? "", into: &bytes)
            }
            bytes.append(UInt8(ascii: "}"))
        }
        string("boot", boot)
        string("instance", instance)
        string("job", job)
        string("level", level)
        string("message", message)
        if let part {
            key("part")
            bytes.append(contentsOf: String(part).utf8)
        }
        string("run", run)
        key("seq")
        bytes.append(contentsOf: String(seq).utf8)
        string("source", source)
        string("time", Timestamp.format(time))
        string("type", type)
        bytes.append(UInt8(ascii: "}"))
        return Data(bytes)
    }

    /// `text` as a JSON string literal, quotes included.
    private static func quote(_ text: String, into bytes: inout [UInt8]) {
        let plain = text.utf8.allSatisfy { $0 >= 0x20 && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }
        guard plain else {
            // The encoder writes a one-element array as `["…"]`: its string, escaped as the encoder escapes it.
            let array = (try? Timestamp.encoder().encode([text])) ?? Data("[\"\"]".utf8)
            bytes.append(contentsOf: array.dropFirst().dropLast())
            return
        }
        bytes.append(UInt8(ascii: "\""))
        bytes.append(contentsOf: text.utf8)
        bytes.append(UInt8(ascii: "\""))
    }
}

/// One pass over the bytes of a canonical event; every method returns nil at the first thing it does not expect.
private struct CanonicalReader {
    let bytes: UnsafeBufferPointer<UInt8>
    var index = 0

    init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    private static let quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\")

    mutating func event() -> StatusEvent? {
        guard take(UInt8(ascii: "{")) else { return nil }
        var type: String?, source: String?, instance: String?, boot: String?, job: String?, run: String?
        var level: String?, message: String?, seq: UInt64?, part: Int?, time: Date?, attributes: [String: String]?
        var previous = ""
        while true {
            // Keys in increasing order: sorted as the encoder writes them, none repeated.
            guard let key = string(), key > previous, take(UInt8(ascii: ":")) else { return nil }
            previous = key
            switch key {
            case "attributes":
                guard let value = map() else { return nil }
                attributes = value
            case "part":
                guard let (negative, magnitude) = integer(), let value = Int(exactly: magnitude) else { return nil }
                part = negative ? -value : value
            case "seq":
                guard let (negative, magnitude) = integer(), !negative || magnitude == 0 else { return nil }
                seq = magnitude
            case "time":
                guard let value = string().flatMap(Self.time) else { return nil }
                time = value
            case "boot", "instance", "job", "level", "message", "run", "source", "type":
                guard let value = string() else { return nil }
                switch key {
                case "boot": boot = value
                case "instance": instance = value
                case "job": job = value
                case "level": level = value
                case "message": message = value
                case "run": run = value
                case "source": source = value
                default: type = value
                }
            default:
                return nil
            }
            if take(UInt8(ascii: "}")) { break }
            guard take(UInt8(ascii: ",")) else { return nil }
        }
        guard index == bytes.count, let type, let source, let instance, let seq, let time else { return nil }
        return StatusEvent(
            type: type,
            source: source,
            instance: instance,
            boot: boot,
            seq: seq,
            time: time,
            job: job,
            run: run,
            part: part,
            level: level,
            message: message,
            attributes: attributes
        )
    }

    private mutating func take(_ byte: UInt8) -> Bool {
        guard index < bytes.count, bytes[index] == byte else { return false }
        index += 1
        return true
    }

    /// A string with no escapes and valid UTF-8.
    private mutating func string() -> String? {
        guard take(Self.quote) else { return nil }
        let start = index
        while index < bytes.count {
            let byte = bytes[index]
            if byte == Self.quote {
                let text = String(validating: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
                index += 1
                return text
            }
            // Escapes and raw control characters (which JSON forbids): the full decoder's business.
            if byte == Self.backslash || byte < 0x20 { return nil }
            index += 1
        }
        return nil
    }

    /// An integer as JSON writes it (an optional minus, then digits with no leading zero): its sign and magnitude.
    private mutating func integer() -> (negative: Bool, magnitude: UInt64)? {
        let negative = take(UInt8(ascii: "-"))
        let start = index
        var value: UInt64 = 0
        while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
            let (times, overflow) = value.multipliedReportingOverflow(by: 10)
            let (sum, carry) = times.addingReportingOverflow(UInt64(bytes[index] - UInt8(ascii: "0")))
            guard !overflow, !carry else { return nil }
            value = sum
            index += 1
        }
        let count = index - start
        guard count > 0, count == 1 || bytes[start] != UInt8(ascii: "0") else { return nil }
        // A fraction or exponent: not an integer as the encoder writes one.
        if index < bytes.count, [UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E")].contains(bytes[index]) { return nil }
        return (negative, value)
    }

    /// `{"key":"value",…}` with keys in order, or `{}`.
    private mutating func map() -> [String: String]? {
        guard take(UInt8(ascii: "{")) else { return nil }
        var result: [String: String] = [:]
        if take(UInt8(ascii: "}")) { return result }
        var previous: String?
        while true {
            guard let key = string(), previous.map({ key > $0 }) ?? true, take(UInt8(ascii: ":")), let value = string() else { return nil }
            previous = key
            result[key] = value
            if take(UInt8(ascii: "}")) { return result }
            guard take(UInt8(ascii: ",")) else { return nil }
        }
    }

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`, as ``Timestamp/format(_:)`` writes it; nil for any other form.
    private static func time(_ text: String) -> Date? {
        let utf8 = Array(text.utf8)
        guard utf8.count == 24, utf8[4] == UInt8(ascii: "-"), utf8[7] == UInt8(ascii: "-"), utf8[10] == UInt8(ascii: "T"),
            utf8[13] == UInt8(ascii: ":"), utf8[16] == UInt8(ascii: ":"), utf8[19] == UInt8(ascii: "."), utf8[23] == UInt8(ascii: "Z")
        else { return nil }
        func number(_ range: Range<Int>) -> Int64? {
            var value: Int64 = 0
            for index in range {
                let byte = utf8[index]
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
                value = value * 10 + Int64(byte - UInt8(ascii: "0"))
            }
            return value
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10), let hour = number(11..<13),
            let minute = number(14..<16), let second = number(17..<19), let millisecond = number(20..<23),
            hour < 24, minute < 60, second < 60
        else { return nil }
        // Days since 1970 (Howard Hinnant's days_from_civil), checked by the way back: no 30 February.
        let shifted = month <= 2 ? year - 1 : year
        let era = shifted / 400
        let yoe = shifted - era * 400
        let doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        guard CivilDate.date(ofDay: days) == (year, Int(month), Int(day)) else { return nil }
        return Timestamp.date(milliseconds: ((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millisecond)
    }
}
