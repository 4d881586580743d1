import Commands
import Testing

struct OutputTailTests {
    /// Only the newest 20 lines are kept, in order.
    @Test func keepsTheLastLines() {
        let tail = OutputTail()
        for index in 1...30 { tail.append("line-\(index)") }
        #expect(tail.lines == (11...30).map { "line-\($0)" })
        #expect(tail.summary == (11...30).map { "line-\($0)" }.joined(separator: " | "))
        #expect(tail.reason("the command exited with status 1").hasPrefix("the command exited with status 1; stderr: line-11 | "))
    }

    /// At most 4 KiB are kept, however long the lines.
    @Test func keepsAtMostFourKiB() {
        let tail = OutputTail()
        for index in 0..<10 { tail.append("\(index)" + String(repeating: "x", count: 1000)) }
        let bytes = tail.lines.reduce(0) { $0 + $1.utf8.count }
        #expect(bytes <= OutputTail.maxBytes)
        #expect(tail.lines.last?.hasPrefix("9") == true)
        #expect(tail.lines.count == 4)
        let huge = OutputTail()
        huge.append(String(repeating: "y", count: 100_000))
        #expect(huge.lines.count == 1 && huge.lines[0].utf8.count <= OutputTail.maxBytes)
    }

    /// Control characters (terminal escapes, carriage returns, NUL) cannot reach a terminal or a log line.
    @Test func sanitisesControlCharacters() {
        let tail = OutputTail()
        tail.append("\u{1b}[31mred\u{1b}[0m\rover\u{0}\tend")
        #expect(tail.lines == ["?[31mred?[0m?over? end"])
    }

    @Test func noOutputLeavesTheReasonAlone() {
        let tail = OutputTail()
        tail.append("   ")
        #expect(tail.summary == nil)
        #expect(tail.reason("failed") == "failed")
    }
}
