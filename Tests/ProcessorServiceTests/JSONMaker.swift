import Foundation

/// Random JSON lines from a seed, their mutations, and the two documented differences from Foundation, for
/// ``JSONLinesTests``.
struct JSONMaker {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    /// A number in `0..<bound` (SplitMix64).
    mutating func next(_ bound: Int) -> Int {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return Int((z ^ (z >> 31)) % UInt64(bound))
    }

    mutating func pick(_ choices: [String]) -> [UInt8] { Array(choices[next(choices.count)].utf8) }

    /// One to five lines, each one value with whitespace around its tokens, with or without a final newline;
    /// and the lines' bounds.
    mutating func payload() -> (data: Data, bounds: [Range<Int>]) {
        var bytes: [UInt8] = []
        var bounds: [Range<Int>] = []
        for index in 0..<(1 + next(5)) {
            if index > 0 { bytes.append(0x0A) }
            let start = bytes.count
            bytes += space() + value(depth: 0) + space()
            bounds.append(start..<bytes.count)
        }
        if next(2) == 0 { bytes.append(0x0A) }
        return (Data(bytes), bounds)
    }

    mutating func space() -> [UInt8] { next(3) == 0 ? pick([" ", "\t", "\r", "  ", " \t"]) : [] }

    mutating func value(depth: Int) -> [UInt8] {
        switch next(depth < 4 ? 7 : 5) {
        case 0: return number()
        case 1, 2: return string()
        case 3: return pick(["true", "false", "null"])
        case 4: return next(4) == 0 ? pick(["[]", "{}", "[ ]", "{ }"]) : number()
        case 5:
            var bytes: [UInt8] = [0x5B]
            for index in 0..<(1 + next(4)) {
                if index > 0 { bytes += space() + [0x2C] }
                bytes += space() + value(depth: depth + 1) + space()
            }
            return bytes + [0x5D]
        default:
            var bytes: [UInt8] = [0x7B]
            for index in 0..<(1 + next(4)) {
                if index > 0 { bytes += [0x2C] }
                bytes += space() + string() + space() + [0x3A] + space() + value(depth: depth + 1) + space()
            }
            return bytes + [0x7D]
        }
    }

    /// `-? int frac? exp?`, with a one-digit exponent so that one inserted digit cannot leave a Double's range.
    mutating func number() -> [UInt8] {
        var text = next(3) == 0 ? "-" : ""
        text += next(4) == 0 ? "0" : String(1 + next(9)) + String(repeating: "7", count: next(4))
        if next(3) == 0 { text += "." + String(next(1000)) }
        if next(4) == 0 { text += (next(2) == 0 ? "e" : "E") + ["", "+", "-"][next(3)] + String(next(10)) }
        return Array(text.utf8)
    }

    mutating func string() -> [UInt8] {
        var bytes: [UInt8] = [0x22]
        for _ in 0..<next(8) {
            bytes += pick([
                "a", "Z", " ", "0", "é", "€", "😀", "\u{2028}", "\u{7F}", "\\\"", "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t",
                "\\u0041", "\\u00e9", "\\uFFFF", "\\ud83d\\ude00", "\\u0000",
            ])
        }
        return bytes + [0x22]
    }

    /// Deletes, inserts, replaces or duplicates bytes, from JSON's own alphabet and a few bytes that break UTF-8.
    mutating func mutate(_ bytes: inout [UInt8]) {
        let alphabet =
            Array("{}[]\",:\\-+.0123456789eEtrufalsnu \t\r\n".utf8) + [
                0x01, 0x1F, 0x7F, 0x80, 0xBF, 0xC0, 0xC3, 0xED, 0xA0, 0xF4, 0x90, 0xFF,
            ]
        let at = next(bytes.count + 1)
        switch next(4) {
        case 0 where at < bytes.count: bytes.remove(at: at)
        case 1 where at < bytes.count: bytes[at] = alphabet[next(alphabet.count)]
        case 2 where at < bytes.count:
            let end = min(bytes.count, at + 1 + next(6))
            bytes.insert(contentsOf: bytes[at..<end], at: at)
        default: bytes.insert(alphabet[next(alphabet.count)], at: at)
        }
    }

    /// Whether a `,` is followed, after whitespace, by `]` or `}`, outside strings.
    static func hasTrailingComma(_ line: Data) -> Bool {
        var inString = false
        var escaped = false
        var comma = false
        for byte in line {
            if inString {
                if escaped { escaped = false } else if byte == 0x5C { escaped = true } else if byte == 0x22 { inString = false }
                continue
            }
            switch byte {
            case 0x22:
                inString = true
                comma = false
            case 0x2C: comma = true
            case 0x20, 0x09, 0x0D, 0x0A: break
            case 0x5D, 0x7D:
                if comma { return true }
            default: comma = false
            }
        }
        return false
    }

    /// The line with every number (outside strings, by JSON's grammar) that a Double cannot hold replaced by `0`.
    static func zeroingHugeNumbers(_ line: Data) -> Data {
        var result: [UInt8] = []
        let bytes = [UInt8](line)
        var index = 0
        var inString = false
        var escaped = false
        while index < bytes.count {
            let byte = bytes[index]
            if inString {
                if escaped { escaped = false } else if byte == 0x5C { escaped = true } else if byte == 0x22 { inString = false }
            } else if byte == 0x22 {
                inString = true
            } else if byte == 0x2D || (0x30...0x39).contains(byte) {
                var end = index
                while end < bytes.count, Array("0123456789+-.eE".utf8).contains(bytes[end]) { end += 1 }
                let token = String(decoding: bytes[index..<end], as: UTF8.self)
                let number = token.wholeMatch(of: /-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/) != nil
                result += number && Double(token).map { $0.isInfinite } == true ? [0x30] : Array(bytes[index..<end])
                index = end
                continue
            }
            result.append(byte)
            index += 1
        }
        return Data(result)
    }
}
