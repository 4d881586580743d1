import Foundation
import Logging
import Messaging
import ServiceKit
import MetricsHTTP
import Synchronization
import Testing
import ZMQ

/// Log records kept in memory, for tests.
final class RecordedLogs: Sendable {
    struct Record: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]
    }

    private let records = Mutex<[Record]>([])

    var all: [Record] { records.withLock { $0 } }

    func logger() -> Logger {
        Logger(label: "test") { _ in Handler(logs: self) }
    }

    fileprivate func append(_ record: Record) { records.withLock { $0.append(record) } }

    struct Handler: LogHandler {
        let logs: RecordedLogs
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            logs.append(
                Record(level: event.level, message: "\(event.message)", metadata: (event.metadata ?? [:]).mapValues { "\($0)" })
            )
        }
    }
}

/// A clock the test moves by hand.
final class ManualClock: Sendable {
    private let instant = Mutex(ContinuousClock.now)
    var now: ContinuousClock.Instant { instant.withLock { $0 } }
    func advance(_ duration: Duration) { instant.withLock { $0 = $0.advanced(by: duration) } }
}

struct MessageRejectorTests {
    /// 25 rejections in one second with a budget of 10: 10 are reported, 15 suppressed; the next second's
    /// first rejection brings one summary with the count 15 and samples of their reasons. Every one is counted.
    @Test func floodsAreReportedUpToTheBudgetThenSummarisedOnce() throws {
        let logs = RecordedLogs()
        let clock = ManualClock()
        let metrics = ServiceMetrics.prometheus()
        let rejector = MessageRejector(
            socket: "reports",
            publisher: nil,
            logger: logs.logger(),
            metrics: metrics,
            maxPerSecond: 10,
            now: { clock.now }
        )
        var outcomes: [MessageRejector.Outcome] = []
        for index in 0..<25 {
            clock.advance(.milliseconds(10))
            outcomes.append(rejector.reject(index % 2 == 0 ? .json : .frames, detail: "bad \(index)", frames: [Data("x".utf8)]))
        }
        #expect(outcomes.filter { $0 == .reported }.count == 10)
        #expect(outcomes.prefix(10).allSatisfy { $0 == .reported })
        #expect(outcomes.filter { $0 == .suppressed }.count == 15)
        #expect(logs.all.count == 10)
        // Nothing more until the window has ended.
        rejector.flush()
        #expect(logs.all.count == 10)
        clock.advance(.seconds(1))
        #expect(rejector.reject(.field, detail: "late", frames: []) == .reported)
        let summaries = logs.all.filter { $0.metadata["suppressed"] != nil }
        #expect(summaries.count == 1)
        #expect(summaries.first?.metadata["suppressed"] == "15")
        // The suppressed ones were rejections 10...24: even indices json, odd frames; the first five sampled.
        let expectedSamples = (10..<15).map { $0 % 2 == 0 ? "json" : "frames" }.joined(separator: ",")
        #expect(summaries.first?.metadata["samples"] == expectedSamples)
        // A summary is never repeated.
        clock.advance(.seconds(5))
        rejector.flush()
        #expect(logs.all.filter { $0.metadata["suppressed"] != nil }.count == 1)
        // Counted per socket and reason, suppressed or not: 13 json (0,2,...,24), 12 frames, 1 field.
        let text = metrics.exposition()
        #expect(text.contains(#"baton_messages_rejected_total{socket="reports",reason="json"} 13"#), "\(text)")
        #expect(text.contains(#"baton_messages_rejected_total{socket="reports",reason="frames"} 12"#), "\(text)")
        #expect(text.contains(#"baton_messages_rejected_total{socket="reports",reason="field"} 1"#), "\(text)")
    }

    /// A flood that stops is still summarised: by ``MessageRejector/flush()`` once the window is over.
    @Test func aFloodThatStopsIsSummarisedByFlush() {
        let logs = RecordedLogs()
        let clock = ManualClock()
        let rejector = MessageRejector(socket: "acks", publisher: nil, logger: logs.logger(), maxPerSecond: 2, now: { clock.now })
        for _ in 0..<7 { rejector.reject(.version, detail: "v", frames: []) }
        clock.advance(.milliseconds(999))
        rejector.flush()
        #expect(logs.all.filter { $0.metadata["suppressed"] != nil }.isEmpty)
        clock.advance(.milliseconds(1))
        rejector.flush()
        #expect(logs.all.filter { $0.metadata["suppressed"] != nil }.map { $0.metadata["suppressed"] } == ["5"])
    }

    /// What a message carries never reaches a log line raw: newlines, escape sequences and quotes are escaped,
    /// and only a bounded excerpt is quoted.
    @Test func excerptsAndDetailsAreSanitised() {
        let logs = RecordedLogs()
        let rejector = MessageRejector(socket: "control", publisher: nil, logger: logs.logger())
        let hostile =
            Data("line\n2024-01-01 forged record\u{1B}[31m\"quoted\"\\".utf8) + Data([0x00, 0xFF]) + Data(repeating: 0x41, count: 500)
        rejector.reject(
            ProtocolError(.version, "expected protocol in frame 0, got \"\(String(decoding: hostile, as: UTF8.self))\""),
            frames: [hostile]
        )
        let record = try! #require(logs.all.first)
        #expect(record.metadata["reason"] == "version")
        #expect(record.metadata["socket"] == "control")
        let excerpt = record.metadata["excerpt"] ?? ""
        #expect(excerpt.hasPrefix(#"line\n2024-01-01 forged record\x1b[31m\"quoted\"\\"#), "\(excerpt)")
        #expect(excerpt.hasSuffix("…(+\(hostile.count - MessageRejector.excerptBytes) bytes)"), "\(excerpt)")
        for value in [excerpt, record.metadata["error"] ?? ""] {
            #expect(value.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value != 0x7F }, "\(value)")
            #expect(value.utf8.count < 1000)
        }
    }

    @Test func wireTextEscapesEverythingButPrintableASCII() {
        #expect(WireText.excerpt(Data("ok".utf8)) == "ok")
        #expect(WireText.excerpt(Data([0x0A, 0x0D, 0x09, 0x22, 0x5C, 0x00, 0x1B, 0x7F, 0xC3, 0xA9])) == #"\n\r\t\"\\\x00\x1b\x7f\xc3\xa9"#)
        #expect(WireText.excerpt(Data(repeating: 0x61, count: 10), limit: 4) == "aaaa…(+6 bytes)")
        #expect(WireText.excerpt(Data()) == "")
    }

    @Test func reasonsFollowTheProtocolErrorCodes() {
        let pairs: [(ProtocolError.Code, String)] = [
            (.frames, "frames"), (.version, "version"), (.kind, "kind"), (.header, "json"), (.field, "field"), (.checksum, "checksum"),
        ]
        for (code, reason) in pairs {
            #expect(MessageRejector.Reason(ProtocolError(code, "x")).rawValue == reason)
        }
        #expect(MessageRejector.Reason(CocoaError(.fileNoSuchFile)) == .other)
    }

    /// The stderr handler's wrapper: a record cannot start a new line or carry a terminal escape.
    @Test func escapingLogHandlerEscapesControlCharacters() {
        #expect(EscapingLogHandler.escape("plain \"text\" é") == "plain \"text\" é")
        #expect(EscapingLogHandler.escape("a\nb\r\u{1B}[2J\u{85}") == #"a\nb\r\u{1b}[2J\u{85}"#)
        let long = EscapingLogHandler.escape(String(repeating: "x", count: 10_000))
        #expect(long.utf8.count <= EscapingLogHandler.maxBytes + 10)
    }
}
