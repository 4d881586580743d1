import Foundation
import ProcessorService
import PropertyBased
import Testing

/// The JSON-lines check (``JSONLines``): strict RFC 8259 per line, compared with Foundation's `JSONSerialization`
/// (the store's check before) on generated and mutated payloads; they differ only where `JSONLines` documents it.
struct JSONLinesTests {
    // MARK: Examples

    /// Single lines: whether each is one JSON value.
    @Test(arguments: [
        ("-0", true), ("1e5", true), ("1E+5", true), ("0.0e-0", true), ("-12.5e-3", true), ("123456789012345678901234567890", true),
        ("1e400", true), ("01", false), ("-01", false), ("1.", false), (".5", false), ("-", false), ("+1", false), ("1e", false),
        ("1.5e+", false), ("0x1", false), ("NaN", false), ("Infinity", false), ("1 2", false), ("[1 2]", false),
        ("true", true), ("false", true), ("null", true), ("nul", false), ("truex", false), ("fals", false), ("True", false),
        (" 1 ", true), ("\t[ 1 , 2 ]\r", true), ("\u{0C}1", false), ("[]", true), ("{}", true), ("[[],{}]", true),
        ("{\"a\":1,\"a\":2}", true), ("{\"a\" : [1, {\"b\": null}]}", true), ("{1:2}", false), ("{\"a\"}", false), ("{\"a\":}", false),
        ("[1,]", false), ("{\"a\":1,}", false), ("[,]", false), ("[1,,2]", false), ("[", false), ("]", false), ("{\"a\":1", false),
        ("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", true), ("\"\\x\"", false), ("\"\\U0041\"", false), ("\"\\u00G1\"", false), ("\"\\u00e9\"", true),
        ("\"\\u0000\"", true), ("\"\\ud800\"", false), ("\"\\udc00\"", false), ("\"\\ud800\\udc00\"", true), ("\"\\uD83D\\uDE00\"", true),
        ("\"\\ud800x\"", false), ("\"\\ud800\\u0041\"", false), ("\"\\udc00\\ud800\"", false), ("\"a\tb\"", false), ("\"\u{7F}\"", true),
        ("\"é€😀\u{2028}\"", true), ("\"unterminated", false), ("\"\u{FEFF}\"", true), ("\u{FEFF}1", false), ("1\u{FEFF}", false),
    ])
    func aLineIsOneJSONValue(line: String, valid: Bool) {
        #expect((JSONLines.lines(in: Data(line.utf8)) != nil) == valid)
    }

    /// Bytes that are not well-formed UTF-8 (RFC 3629) are refused inside strings; NUL is no whitespace.
    @Test(
        arguments: [
            ([0x22, 0xFF, 0x22], false), ([0x22, 0xC0, 0xAF, 0x22], false), ([0x22, 0xC3, 0x22], false), ([0x22, 0x80, 0x22], false),
            ([0x22, 0xED, 0xA0, 0x80, 0x22], false), ([0x22, 0xE0, 0x80, 0xAF, 0x22], false),
            ([0x22, 0xF0, 0x80, 0x80, 0xAF, 0x22], false),
            ([0x22, 0xF4, 0x90, 0x80, 0x80, 0x22], false), ([0x22, 0xF5, 0x80, 0x80, 0x80, 0x22], false),
            ([0x22, 0xED, 0x9F, 0xBF, 0x22], true), ([0x22, 0xF4, 0x8F, 0xBF, 0xBF, 0x22], true), ([0x22, 0xEF, 0xBF, 0xBE, 0x22], true),
            ([0x31, 0x00], false), ([0x00, 0x31], false), ([0x22, 0x00, 0x22], false), ([0xEF, 0xBB, 0xBF, 0x31], false),
        ] as [([UInt8], Bool)]
    )
    func stringsAreWellFormedUTF8(bytes: [UInt8], valid: Bool) {
        #expect((JSONLines.lines(in: Data(bytes)) != nil) == valid)
    }

    /// Lines end at `\n`; a final `\n` starts no empty line; an empty or blank line, or an empty payload, is
    /// not JSON lines; CR before the `\n` is whitespace of the line.
    @Test(
        arguments: [
            ("1\n2", [0..<1, 2..<3]), ("1\n2\n", [0..<1, 2..<3]), ("1\r\n[2]\r\n", [0..<2, 3..<7]), ("{\"a\":\n1}", nil), ("1\n\n2", nil),
            ("1\n\n", nil), ("\n1", nil), ("\n", nil), ("", nil), ("1\n \n2", nil), ("\"a\nb\"", nil), ("1\n2 3\n", nil),
        ] as [(String, [Range<Int>]?)]
    )
    func payloadsSplitIntoLines(payload: String, lines: [Range<Int>]?) {
        #expect(JSONLines.lines(in: Data(payload.utf8)) == lines)
    }

    /// At most 512 arrays or objects open at once, the innermost empty one counted.
    @Test func nestingStopsAt512() {
        for depth in [1, 511, 512, 513, 100_000] {
            let arrays = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
            let objects = String(repeating: "{\"a\":", count: depth) + "1" + String(repeating: "}", count: depth)
            #expect((JSONLines.lines(in: Data(arrays.utf8)) != nil) == (depth <= 512), "arrays \(depth)")
            #expect((JSONLines.lines(in: Data(objects.utf8)) != nil) == (depth <= 512), "objects \(depth)")
        }
    }

    /// Long strings are scanned eight bytes at a time: whatever needs a look is found at every offset.
    @Test(
        arguments: [
            ([0x01], false), ([0x1F], false), ([0x0A], false), ([0xFF], false), ([0x80], false), ([0xC3, 0xA9], true),
            ([0x5C, 0x6E], true),
            ([0x5C, 0x75, 0x44, 0x38, 0x30, 0x30], false), ([0x7F], true), ([0x20], true),
        ] as [([UInt8], Bool)]
    )
    func everyOffsetOfALongStringIsChecked(inserted: [UInt8], valid: Bool) {
        for offset in 0..<24 {
            let text = [UInt8](repeating: 0x61, count: offset) + inserted + [UInt8](repeating: 0x62, count: 24 - offset)
            let line = Data([0x22] + text + [0x22])
            #expect((JSONLines.lines(in: line) != nil) == valid, "at \(offset)")
            // A quote inside ends the string early: what follows it is not JSON.
            #expect(JSONLines.lines(in: Data([0x22] + text.prefix(offset) + [0x22] + text.dropFirst(offset) + [0x22])) == nil)
        }
    }

    /// A slice of a larger buffer is checked on its own bytes, with ranges from its start.
    @Test func aSliceIsCheckedOnItsOwnBytes() {
        let whole = Data("xx[1]\n2\nyy".utf8)
        #expect(JSONLines.lines(in: whole[2..<8]) == [0..<3, 4..<5])
    }

    // MARK: Against Foundation

    /// Generated JSON lines are accepted with their exact bounds, and Foundation accepts every line too.
    @Test func generatedJSONLinesAreAccepted() async {
        await propertyCheck(count: 2000, input: Gen.int(in: 0...Int.max)) { seed in
            var maker = JSONMaker(seed: UInt64(seed))
            let (payload, bounds) = maker.payload()
            #expect(JSONLines.lines(in: payload) == bounds, "\(String(decoding: payload, as: UTF8.self).debugDescription)")
            #expect(Self.foundationVerdict(payload) == true, "\(String(decoding: payload, as: UTF8.self).debugDescription)")
        }
    }

    /// Mutated JSON lines: accepted exactly when Foundation accepts them, but for what `JSONLines` documents
    /// (trailing commas refused, numbers out of a Double's range accepted); when accepted, the same lines.
    @Test func mutatedPayloadsAreJudgedAsFoundationJudgesThem() async {
        await propertyCheck(count: 4000, input: Gen.int(in: 0...Int.max), Gen.int(in: 1...3)) { seed, mutations in
            var maker = JSONMaker(seed: UInt64(seed))
            var bytes = [UInt8](maker.payload().data)
            for _ in 0..<mutations { maker.mutate(&bytes) }
            let payload = Data(bytes)
            let expected = Self.foundationVerdict(payload)
            let lines = JSONLines.lines(in: payload)
            #expect((lines != nil) == expected, "\(String(decoding: payload, as: UTF8.self).debugDescription) \(bytes)")
            if let lines {
                #expect(lines.map { payload[$0] } == Self.split(payload), "\(bytes)")
            }
        }
    }

    /// The lines of a payload split at every `\n` byte, a final one ending the last line.
    static func split(_ payload: Data) -> [Data] {
        var lines = payload.split(separator: 0x0A, omittingEmptySubsequences: false).map { Data($0) }
        if lines.last?.isEmpty == true { lines.removeLast() }
        return lines
    }

    /// Foundation's verdict as the store judged before (UTF-8 text, every line parsed by `JSONSerialization`,
    /// split at `\n` bytes), moved by the differences `JSONLines` documents: a line with a trailing comma is
    /// refused, a number too large for a Double counts as the number 0.
    static func foundationVerdict(_ payload: Data) -> Bool {
        guard String(data: payload, encoding: .utf8) != nil else { return false }
        let lines = split(payload)
        guard !lines.isEmpty else { return false }
        return lines.allSatisfy { line in
            guard !line.isEmpty, !JSONMaker.hasTrailingComma(line) else { return false }
            let normalized = JSONMaker.zeroingHugeNumbers(line)
            return (try? JSONSerialization.jsonObject(with: normalized, options: [.fragmentsAllowed])) != nil
        }
    }
}
