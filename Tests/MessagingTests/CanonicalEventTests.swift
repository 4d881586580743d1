import Foundation
import Messaging
import PropertyBased
import Testing

/// ``StatusEvent/canonical(_:)``, the fast decoder, against `JSONDecoder`: the same event whenever it answers,
/// an answer for everything Baton's publishers write without escapes, and no answer for anything else.
struct CanonicalEventTests {
    /// The event with its time to the whole millisecond (what the wire carries; two parsers of the same text
    /// may differ in the last bit of a `Date`).
    static func normalized(_ event: StatusEvent?) -> StatusEvent? {
        guard var event else { return nil }
        event.time = Timestamp.date(milliseconds: Timestamp.milliseconds(event.time))
        return event
    }

    static func slow(_ json: Data) -> StatusEvent? {
        try? Timestamp.decoder().decode(StatusEvent.self, from: json)
    }

    static let plain = Gen.element(of: Array("abcXYZ019.:-_/ @é🎼")).map { $0 ?? "a" }.array(of: 0...12).map { String($0) }
    static let tricky = Gen.element(of: Array("ab\"\\\n\t\u{1}/é")).map { $0 ?? "a" }.array(of: 0...8).map { String($0) }

    static func event(_ text: String, _ number: Int, milliseconds: Int, full: Bool) -> StatusEvent {
        StatusEvent(
            type: "run.progress",
            source: "processor",
            instance: "host:\(text)",
            boot: full ? "0123456789abcdef" : nil,
            seq: UInt64(number),
            time: Timestamp.date(milliseconds: Int64(milliseconds)),
            job: full ? "job\(text)" : nil,
            run: full ? text : nil,
            part: full ? number % 1000 : nil,
            level: full ? "info" : nil,
            message: full ? "m \(text)" : nil,
            attributes: full ? ["b": text, "a": "1", "k\(text)": "x"] : nil
        )
    }

    /// Events as the publishers write them: read here, equal to what `JSONDecoder` reads.
    @Test func readsWhatPublishersWrite() async {
        await propertyCheck(count: 1000, input: Self.plain, Gen.int(in: 1...Int.max), Gen.int(in: 0...253_402_300_799_999), Gen.bool) {
            text,
            number,
            milliseconds,
            full in
            let line = Self.event(text, number, milliseconds: milliseconds, full: full).jsonLine
            let fast = StatusEvent.canonical(line)
            #expect(fast != nil, "\(String(decoding: line, as: UTF8.self))")
            #expect(Self.normalized(fast) == Self.normalized(Self.slow(line)))
            #expect(fast.map { Timestamp.milliseconds($0.time) } == Int64(milliseconds))
        }
    }

    /// With escapes in its strings, an event is left to `JSONDecoder` (or read identically).
    @Test func leavesEscapesToTheDecoder() async {
        await propertyCheck(count: 500, input: Self.tricky, Gen.int(in: 1...1_000_000), Gen.bool) { text, number, full in
            let line = Self.event(text, number, milliseconds: 1_800_000_000_123, full: full).jsonLine
            if let fast = StatusEvent.canonical(line) {
                #expect(Self.normalized(fast) == Self.normalized(Self.slow(line)))
            }
            let frames = [Data("run.progress".utf8), Data(Wire.protocolID.utf8), line]
            #expect(Self.normalized(try? StatusEvent(frames: frames)) == Self.normalized(Self.slow(line)))
        }
    }

    static let anyText = Gen.element(of: Array("aZ_9-.:/ \"\\\n\t\u{1}\u{7f}é🎼\u{2028}A0")).map { $0 ?? "a" }.array(of: 0...8)
        .map { String($0) }

    /// `jsonLine` is written by hand: byte for byte what `Timestamp.encoder()` writes for the same event, whatever
    /// its strings hold (escapes, control characters, non-ASCII) and however its attribute keys sort.
    @Test func writesWhatTheEncoderWrites() async throws {
        await propertyCheck(count: 1000, input: Self.anyText, Self.anyText, Gen.int(in: -5...Int.max), Gen.bool) {
            text,
            key,
            number,
            full in
            var event = Self.event(text, max(number, 0), milliseconds: 1_800_000_000_123, full: full)
            if full {
                event.part = number
                event.attributes = [
                    key: text, key + "_x": "", "A" + key: "1", "a" + key + "9": "2", "a" + key + "10": "3", "stage_index": text,
                ]
            }
            let encoded = (try? Timestamp.encoder().encode(event)) ?? Data()
            #expect(
                event.jsonLine == encoded,
                "\(String(decoding: event.jsonLine, as: UTF8.self)) ≠ \(String(decoding: encoded, as: UTF8.self))"
            )
        }
    }

    /// Other spellings of JSON, and what is not an event: no answer here; `StatusEvent(frames:)` still decides
    /// as `JSONDecoder` does.
    @Test(arguments: [
        #"{ "seq":1,"source":"logger","instance":"i","time":"2026-12-01T00:00:00.000Z","type":"a.b"}"#,
        #"{"instance":"i","seq":1,"source":"logger","time":"2026-12-01T00:00:00.000Z","type":"a.b","zzz":"1"}"#,
        #"{"instance":"i\u0041","seq":1,"source":"logger","time":"2026-12-01T00:00:00.000Z","type":"a.b"}"#,
        #"{"instance":"i","seq":1.0,"source":"logger","time":"2026-12-01T00:00:00.000Z","type":"a.b"}"#,
        #"{"instance":"i","seq":01,"source":"logger","time":"2026-12-01T00:00:00.000Z","type":"a.b"}"#,
        #"{"instance":"i","seq":-1,"source":"logger","time":"2026-12-01T00:00:00.000Z","type":"a.b"}"#,
        #"{"instance":"i","seq":99999999999999999999,"source":"logger","time":"2026-12-01T00:00:00.000Z","type":"a.b"}"#,
        #"{"instance":"i","job":null,"seq":1,"source":"logger","time":"2026-12-01T00:00:00.000Z","type":"a.b"}"#,
        #"{"seq":1,"instance":"i","source":"logger","time":"2026-12-01T00:00:00.000Z","type":"a.b"}"#,
        #"{"instance":"i","instance":"j","seq":1,"source":"logger","time":"2026-12-01T00:00:00.000Z","type":"a.b"}"#,
        #"{"instance":"i","seq":1,"source":"logger","time":"2026-12-01T00:00:00.000Z","type":"a.b"} "#,
        #"{"instance":"i","seq":1,"source":"logger","time":"2026-02-30T00:00:00.000Z","type":"a.b"}"#,
        #"{"instance":"i","seq":1,"source":"logger","time":"2026-12-01T00:00:00Z","type":"a.b"}"#,
        #"{"instance":"i","seq":1,"source":"logger","time":"2026-12-01T00:00:00.000+01:00","type":"a.b"}"#,
        #"{"instance":"i","seq":1,"source":"logger","type":"a.b"}"#,
        #"{"attributes":{"b":"1","a":"2"},"instance":"i","seq":1,"source":"logger","time":"2026-12-01T00:00:00.000Z","type":"a.b"}"#,
        #"{"attributes":{"a":1},"instance":"i","seq":1,"source":"logger","time":"2026-12-01T00:00:00.000Z","type":"a.b"}"#,
        #"{"instance":"i","part":5,"seq":1,"source":"logger","time":"2026-12-01T00:00:00.000Z","type":"a.b""#,
    ])
    func leavesOtherFormsToTheDecoder(json: String) {
        let data = Data(json.utf8)
        #expect(StatusEvent.canonical(data) == nil)
        let frames = [Data("a.b".utf8), Data(Wire.protocolID.utf8), data]
        #expect(Self.normalized(try? StatusEvent(frames: frames)) == Self.normalized(Self.slow(data)))
    }

    /// The smallest canonical event, and one with every field: read here, as written.
    @Test func readsEveryField() throws {
        let minimal = Data(#"{"instance":"i","seq":1,"source":"logger","time":"2026-12-01T00:00:00.000Z","type":"a.b"}"#.utf8)
        let event = try #require(StatusEvent.canonical(minimal))
        #expect(
            event
                == StatusEvent(type: "a.b", source: "logger", instance: "i", seq: 1, time: Timestamp.date(milliseconds: 1_796_083_200_000))
        )
        let full = Data(
            (#"{"attributes":{"a":"1","b":""},"boot":"00000000000000ff","instance":"i","job":"j","level":"info","message":"m","#
                + #""part":0,"run":"r","seq":18446744073709551615,"source":"logger","time":"1970-01-01T00:00:00.001Z","type":"log.info"}"#)
                .utf8
        )
        let read = try #require(StatusEvent.canonical(full))
        #expect(read.attributes == ["a": "1", "b": ""] && read.boot == "00000000000000ff" && read.job == "j" && read.level == "info")
        #expect(read.message == "m" && read.part == 0 && read.run == "r" && read.seq == UInt64.max && read.type == "log.info")
        #expect(Timestamp.milliseconds(read.time) == 1)
        #expect(Self.normalized(read) == Self.normalized(Self.slow(full)))
    }
}
