public import Foundation

/// JSON lines (one JSON value per line), checked byte by byte over the payload's own buffer: the built-in store
/// keeps a payload as records only when every line is one JSON value, and it must decide that at memory speed
/// (no `String` per line, nothing parsed into objects).
///
/// A line is the bytes up to a `\n` (not included); a `\n` at the very end ends the last line and starts no
/// empty one. Every line must hold exactly one JSON value (RFC 8259, strict), with whitespace (space, tab, CR)
/// around it; an empty or blank line makes the payload not JSON lines. Where RFC 8259 leaves a choice, or
/// Foundation's `JSONSerialization` (which the store used before) is more lenient, this is what holds:
/// - trailing commas (`[1,]`, `{"a":1,}`) are refused (Foundation accepts them);
/// - a NUL byte, or a byte order mark, is no whitespace: refused (Foundation ignores what follows a NUL, and a
///   leading byte order mark);
/// - numbers are checked by their grammar only: `1e400` is accepted, as RFC 8259 allows (Foundation refuses a
///   number a `Double` cannot hold); `-0` and `1e5` are numbers, `01`, `1.`, `.5`, `+1` are not;
/// - a `\u` escape must not leave a surrogate alone: `\uD800`–`\uDBFF` must be followed by an escaped
///   `\uDC00`–`\uDFFF`, which is never alone (as Foundation; I-JSON, RFC 7493, forbids them: a lone surrogate
///   decodes to no Unicode text);
/// - strings are well-formed UTF-8 (RFC 3629: no overlong forms, no encoded surrogates, nothing above U+10FFFF);
/// - at most 512 arrays or objects are open at once, empty ones included (as Foundation).
public enum JSONLines {
    /// How many arrays or objects may be open at once.
    public static let maximumDepth = 512

    /// The byte ranges of the payload's lines (without their `\n`) when every line is one JSON value; nil
    /// otherwise, and for an empty payload.
    public static func lines(in data: Data) -> [Range<Int>]? {
        data.withUnsafeBytes { lines(in: $0) }
    }

    /// The byte ranges of the buffer's lines (without their `\n`) when every line is one JSON value; nil
    /// otherwise, and for an empty buffer.
    public static func lines(in buffer: UnsafeRawBufferPointer) -> [Range<Int>]? {
        guard let base = buffer.baseAddress, !buffer.isEmpty else { return nil }
        var scanner = Scanner(bytes: base, count: buffer.count)
        var lines: [Range<Int>] = []
        var start = 0
        while start < buffer.count {
            guard let end = scanner.line(from: start) else { return nil }
            lines.append(start..<end)
            start = end + 1
        }
        return lines
    }

    /// How many bytes `line` takes as a JSON string (``writeString(_:line:to:)``), quotes included.
    public static func stringLength(_ buffer: UnsafeRawBufferPointer, line: Range<Int>) -> Int {
        var length = line.count + 2
        for index in line {
            let byte = buffer[index]
            if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte == 0x09 || byte == 0x0D {
                length += 1
            } else if byte < 0x20 {
                length += 5
            }
        }
        return length
    }

    /// Writes `line`'s bytes as one JSON string at `out`, which has room for `line.count * 6 + 2` bytes, and
    /// returns how many it wrote: `"` and `\` escaped, tab and CR as `\t` and `\r` (the only control bytes a
    /// JSON line may hold outside its strings), any other control byte as `\u00XX`; every other byte, UTF-8
    /// included, as it is. A JSON reader gives back exactly the line's bytes (the result store keeps JSON lines
    /// so, in arrays that SQLite's `json_each` splits into records).
    public static func writeString(_ buffer: UnsafeRawBufferPointer, line: Range<Int>, to out: UnsafeMutableRawPointer) -> Int {
        var written = 0
        @inline(__always) func put(_ byte: UInt8) {
            out.storeBytes(of: byte, toByteOffset: written, as: UInt8.self)
            written += 1
        }
        // The bytes since the last escape, in one copy.
        @inline(__always) func copy(_ range: Range<Int>) {
            guard !range.isEmpty, let source = buffer.baseAddress else { return }
            (out + written).copyMemory(from: source + range.lowerBound, byteCount: range.count)
            written += range.count
        }
        put(UInt8(ascii: "\""))
        var run = line.lowerBound
        var index = line.lowerBound
        while index < line.upperBound {
            // Eight bytes at a time up to the first that needs escaping (most need none).
            if index &+ 8 <= line.upperBound {
                let word = UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: index, as: UInt64.self))
                let flags = Self.needsEscape(word)
                guard flags != 0 else {
                    index += 8
                    continue
                }
                index += flags.trailingZeroBitCount >> 3
            }
            let byte = buffer[index]
            guard byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte < 0x20 else {
                index += 1
                continue
            }
            copy(run..<index)
            put(UInt8(ascii: "\\"))
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"): put(byte)
            case 0x09: put(UInt8(ascii: "t"))
            case 0x0D: put(UInt8(ascii: "r"))
            default:
                let hex: StaticString = "0123456789abcdef"
                for digit in [UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0")] { put(digit) }
                put(hex.utf8Start[Int(byte >> 4)])
                put(hex.utf8Start[Int(byte & 0x0F)])
            }
            index += 1
            run = index
        }
        copy(run..<line.upperBound)
        put(UInt8(ascii: "\""))
        return written
    }

    /// The high bit set in each byte of `word` that is a control character, `"` or `\\`; exact for the lowest
    /// such byte (a borrow only carries upward from a byte that is flagged itself), which is all the caller uses.
    @inline(__always) static func needsEscape(_ word: UInt64) -> UInt64 {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        func zeroBytes(_ x: UInt64) -> UInt64 { (x &- ones) & ~x & highs }
        let control = (word &- ones &* 0x20) & ~word & highs
        return control | zeroBytes(word ^ (ones &* 0x22)) | zeroBytes(word ^ (ones &* 0x5C))
    }
}

/// A JSON array of lines, each one JSON string (``JSONLines/writeString(_:line:to:)``), built in a buffer of its
/// own: how the SQLite store keeps a block of a part's lines.
struct JSONStringArray: ~Copyable {
    private var base: UnsafeMutableRawPointer
    private var capacity: Int
    /// The bytes written, the opening bracket included (not the closing one).
    private(set) var count = 1
    /// How many lines it holds.
    private(set) var elements = 0

    init(capacity: Int) {
        self.capacity = max(capacity, 64)
        base = .allocate(byteCount: self.capacity, alignment: 16)
        base.storeBytes(of: UInt8(ascii: "["), as: UInt8.self)
    }

    deinit { base.deallocate() }

    /// Appends `line` of `buffer`.
    mutating func append(_ buffer: UnsafeRawBufferPointer, line: Range<Int>) {
        // Room for the comma, the line at its longest escaped, and the closing bracket.
        let needed = count + line.count * 6 + 4
        if needed > capacity {
            let grown = max(needed, capacity * 2)
            let moved = UnsafeMutableRawPointer.allocate(byteCount: grown, alignment: 16)
            moved.copyMemory(from: base, byteCount: count)
            base.deallocate()
            base = moved
            capacity = grown
        }
        if elements > 0 {
            base.storeBytes(of: UInt8(ascii: ","), toByteOffset: count, as: UInt8.self)
            count += 1
        }
        count += JSONLines.writeString(buffer, line: line, to: base + count)
        elements += 1
    }

    /// Drops the last line, which began at `count` (the count before it was appended).
    mutating func dropLast(from count: Int) {
        self.count = count
        elements -= 1
    }

    /// Empties the array, keeping its buffer.
    mutating func removeAll() {
        count = 1
        elements = 0
    }

    /// The array's bytes, closing bracket included.
    mutating func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        base.storeBytes(of: UInt8(ascii: "]"), toByteOffset: count, as: UInt8.self)
        return try body(UnsafeRawBufferPointer(start: base, count: count + 1))
    }
}

/// The validator's state: the buffer, and which of the open containers are objects (a bit per depth).
private struct Scanner {
    let bytes: UnsafeRawPointer
    let count: Int
    var objects = [UInt64](repeating: 0, count: (JSONLines.maximumDepth + 63) / 64)

    init(bytes: UnsafeRawPointer, count: Int) {
        self.bytes = bytes
        self.count = count
    }

    /// The byte at `index`, or 0 past the end: NUL is valid nowhere in JSON, so the end needs no check of its own
    /// except where a line may end.
    @inline(__always) func byte(_ index: Int) -> UInt8 {
        index < count ? bytes.load(fromByteOffset: index, as: UInt8.self) : 0
    }

    @inline(__always) func skipSpace(_ index: inout Int) {
        while true {
            switch byte(index) {
            case 0x20, 0x09, 0x0D: index += 1
            default: return
            }
        }
    }

    /// Where the line starting at `start` ends (its `\n`, or the end of the buffer) when it holds one JSON value.
    mutating func line(from start: Int) -> Int? {
        var index = start
        var depth = 0
        skipSpace(&index)
        while true {
            // A value starts at `index` (whitespace is skipped before every value).
            switch byte(index) {
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                guard depth < JSONLines.maximumDepth else { return nil }
                let object = byte(index) == UInt8(ascii: "{")
                index += 1
                skipSpace(&index)
                if byte(index) == (object ? UInt8(ascii: "}") : UInt8(ascii: "]")) {
                    index += 1
                    break
                }
                if object {
                    objects[depth >> 6] |= 1 << UInt64(depth & 63)
                } else {
                    objects[depth >> 6] &= ~(1 << UInt64(depth & 63))
                }
                depth += 1
                if object { guard key(&index) else { return nil } }
                continue
            case UInt8(ascii: "\""):
                guard string(&index) else { return nil }
            case UInt8(ascii: "t"):
                guard literal(&index, 0x74, 0x72, 0x75, 0x65) else { return nil }
            case UInt8(ascii: "f"):
                guard literal(&index, 0x66, 0x61, 0x6C, 0x73) && byte(index) == 0x65 else { return nil }
                index += 1
            case UInt8(ascii: "n"):
                guard literal(&index, 0x6E, 0x75, 0x6C, 0x6C) else { return nil }
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                guard number(&index) else { return nil }
            default:
                return nil
            }
            // After a value: close the containers it ends, or go on after a comma to the next value.
            while true {
                skipSpace(&index)
                guard depth > 0 else { return index == count || byte(index) == UInt8(ascii: "\n") ? index : nil }
                let object = objects[(depth - 1) >> 6] & (1 << UInt64((depth - 1) & 63)) != 0
                let next = byte(index)
                index += 1
                if next == UInt8(ascii: ",") {
                    skipSpace(&index)
                    if object { guard key(&index) else { return nil } }
                    break
                }
                guard next == (object ? UInt8(ascii: "}") : UInt8(ascii: "]")) else { return nil }
                depth -= 1
            }
        }
    }

    /// An object's key, its colon and the whitespace up to its value.
    func key(_ index: inout Int) -> Bool {
        guard byte(index) == UInt8(ascii: "\""), string(&index) else { return false }
        skipSpace(&index)
        guard byte(index) == UInt8(ascii: ":") else { return false }
        index += 1
        skipSpace(&index)
        return true
    }

    /// Four given bytes.
    func literal(_ index: inout Int, _ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) -> Bool {
        guard byte(index) == a, byte(index + 1) == b, byte(index + 2) == c, byte(index + 3) == d else { return false }
        index += 4
        return true
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    func number(_ index: inout Int) -> Bool {
        if byte(index) == UInt8(ascii: "-") { index += 1 }
        let first = byte(index)
        guard isDigit(first) else { return false }
        index += 1
        if first != UInt8(ascii: "0") { skipDigits(&index) }
        if byte(index) == UInt8(ascii: ".") {
            index += 1
            guard isDigit(byte(index)) else { return false }
            skipDigits(&index)
        }
        if byte(index) | 0x20 == UInt8(ascii: "e") {
            index += 1
            if byte(index) == UInt8(ascii: "+") || byte(index) == UInt8(ascii: "-") { index += 1 }
            guard isDigit(byte(index)) else { return false }
            skipDigits(&index)
        }
        return true
    }

    @inline(__always) func isDigit(_ byte: UInt8) -> Bool { byte &- UInt8(ascii: "0") < 10 }

    @inline(__always) func skipDigits(_ index: inout Int) {
        while isDigit(byte(index)) { index += 1 }
    }

    /// A string, from its opening quote past its closing one.
    func string(_ index: inout Int) -> Bool {
        index += 1
        while true {
            // Eight bytes at a time up to the first that needs a look of its own (most text needs none).
            while index &+ 8 <= count {
                let special = Self.special(UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)))
                guard special == 0 else {
                    index += special.trailingZeroBitCount >> 3
                    break
                }
                index += 8
            }
            let lead = byte(index)
            // Printable ASCII but the quote and the backslash: by far the most common, checked first.
            if lead &- 0x20 < 0x60, lead != UInt8(ascii: "\""), lead != UInt8(ascii: "\\") {
                index += 1
                continue
            }
            switch lead {
            case UInt8(ascii: "\""):
                index += 1
                return true
            case UInt8(ascii: "\\"):
                guard escape(&index) else { return false }
            case 0xC2...0xDF:
                guard isContinuation(byte(index + 1)) else { return false }
                index += 2
            case 0xE0...0xEF:
                // E0 needs A0–BF next (no overlong forms), ED needs 80–9F (no encoded surrogates).
                let second = byte(index + 1)
                let low: UInt8 = lead == 0xE0 ? 0xA0 : 0x80
                let high: UInt8 = lead == 0xED ? 0x9F : 0xBF
                guard second >= low, second <= high, isContinuation(byte(index + 2)) else { return false }
                index += 3
            case 0xF0...0xF4:
                // F0 needs 90–BF next (no overlong forms), F4 needs 80–8F (nothing above U+10FFFF).
                let second = byte(index + 1)
                let low: UInt8 = lead == 0xF0 ? 0x90 : 0x80
                let high: UInt8 = lead == 0xF4 ? 0x8F : 0xBF
                guard second >= low, second <= high, isContinuation(byte(index + 2)), isContinuation(byte(index + 3)) else {
                    return false
                }
                index += 4
            default:
                // Control characters (a `\n` among them: a string never spans lines), the end of the buffer,
                // continuation bytes without a lead, C0, C1 and F5–FF.
                return false
            }
        }
    }

    @inline(__always) func isContinuation(_ byte: UInt8) -> Bool { byte & 0xC0 == 0x80 }

    /// The high bit set in each byte of `word` that is a control character, `"`, `\\` or not ASCII; exact for the
    /// lowest such byte (a borrow only carries upward from a byte that is flagged itself), which is all the
    /// caller uses.
    @inline(__always) static func special(_ word: UInt64) -> UInt64 {
        JSONLines.needsEscape(word) | (word & 0x8080_8080_8080_8080)
    }

    /// An escape, from its backslash: a `\u` high surrogate must be followed by an escaped low one.
    func escape(_ index: inout Int) -> Bool {
        switch byte(index + 1) {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"), UInt8(ascii: "n"),
            UInt8(ascii: "r"), UInt8(ascii: "t"):
            index += 2
            return true
        case UInt8(ascii: "u"):
            guard let unit = hex4(index + 2) else { return false }
            index += 6
            switch unit {
            case 0xD800...0xDBFF:
                guard byte(index) == UInt8(ascii: "\\"), byte(index + 1) == UInt8(ascii: "u"), let low = hex4(index + 2),
                    (0xDC00...0xDFFF).contains(low)
                else { return false }
                index += 6
                return true
            case 0xDC00...0xDFFF: return false
            default: return true
            }
        default:
            return false
        }
    }

    /// The four hex digits at `index`, as a UTF-16 code unit.
    func hex4(_ index: Int) -> UInt16? {
        var unit: UInt16 = 0
        for offset in 0..<4 {
            let digit = byte(index + offset)
            let value: UInt8
            switch digit {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = digit - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): value = digit - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): value = digit - UInt8(ascii: "A") + 10
            default: return nil
            }
            unit = unit << 4 | UInt16(value)
        }
        return unit
    }
}
