import Foundation
import Glibc
import Logging
import Messaging
import TestSupport
import Testing

@testable import LoggerService

/// The web view's pages as strings: what a run puts on the timeline, and that nothing from the bus can become
/// markup.
struct WebPagesTests {
    static let t0 = Date(timeIntervalSince1970: 1_790_000_000)

    static func span(_ job: String, slot seconds: Int64, state: String, error: String? = nil) -> RunHistory.Span {
        let slot = RunHistory.milliseconds(t0) + seconds * 1000
        return RunHistory.Span(
            run: RunID.make(job: job, logicalTime: Date(timeIntervalSince1970: Double(slot) / 1000)),
            job: job,
            state: state,
            slot: slot,
            scheduled: slot + 5,
            started: slot + 10,
            finished: state == "failed" ? nil : slot + 2000,
            ended: slot + 3000,
            error: error,
            stages: [(0, slot + 2000, slot + 3000)]
        )
    }

    @Test func everyRunIsOneGroupOnItsJobsLaneWithItsState() {
        let spans = [
            Self.span("a", slot: 0, state: "succeeded"), Self.span("b", slot: 60, state: "failed", error: "boom"),
            Self.span("a", slot: 120, state: "dead"),
        ]
        let html = WebPages.timeline(
            spans: spans,
            truncated: false,
            from: Self.t0,
            to: Self.t0.addingTimeInterval(900),
            span: "15m",
            job: nil,
            now: Self.t0.addingTimeInterval(900)
        )
        for span in spans {
            #expect(html.contains("data-run=\"\(span.run)\" data-state=\"\(span.state)\" data-job=\"\(span.job)\""), "\(span.run)")
            #expect(html.contains("href=\"/run/\(WebPages.path(span.run))\""))
        }
        #expect(html.components(separatedBy: "<g class=\"run ").count - 1 == spans.count)
        #expect(html.contains("3 runs"))
    }

    /// A job's error, a run's message or a stage's name cannot open a tag or an attribute.
    @Test func valuesAreEscaped() {
        let hostile = "<script>alert(1)</script>\"' onmouseover=x &amp;\u{1b}[31m"
        let escaped = WebPages.escape(hostile)
        #expect(!escaped.contains("<") && !escaped.contains(">") && !escaped.contains("\"") && !escaped.contains("'"))
        #expect(!escaped.contains("\u{1b}"))
        var run = RunsReport.Run(run: "j@2026-01-01T00:00:00.000Z", job: "j", slot: Self.t0, state: "failed")
        run.error = hostile
        var task = RunsReport.Task(stage: 0, part: 0, state: "dead")
        task.error = hostile
        task.processor = hostile
        run.tasks = [task]
        run.stages = [RunsReport.Stage(index: 0, name: hostile)]
        let page = WebPages.run(run, actions: true)
        #expect(!page.contains("<script>alert"))
        #expect(!page.contains("\" onmouseover"))
        let timeline = WebPages.timeline(
            spans: [Self.span("j", slot: 0, state: "failed", error: hostile)],
            truncated: false,
            from: Self.t0,
            to: Self.t0.addingTimeInterval(900),
            span: "15m",
            job: nil,
            now: Self.t0
        )
        #expect(!timeline.contains("<script>alert"))
    }

    /// The token check: equal only for the same secret, whatever the lengths.
    @Test func tokensAndCookies() {
        #expect(WebView.same("open-sesame-0123456789", "open-sesame-0123456789"))
        #expect(!WebView.same("open-sesame-012345678", "open-sesame-0123456789"))
        #expect(!WebView.same("", "open-sesame-0123456789"))
        #expect(WebView.cookie("baton_token", in: "a=1; baton_token=abc%2Ddef; b=2") == "abc-def")
        #expect(WebView.cookie("baton_token", in: "xbaton_token=1") == nil)
        #expect(WebView.form(Data("job=a+b&run=x%40y".utf8)) == ["job": "a b", "run": "x@y"])
        #expect(WebView.form(Data(#"{"job":"j"}"#.utf8)) == ["job": "j"])
    }
}

/// The budget of wrong tokens: a burst, then one a second, never more than the burst banked; per client address,
/// under a larger budget for all of them.
struct GuessBudgetTests {
    /// A guesser holds up its own address only; many addresses together get no more than the global budget.
    @Test func aGuesserHoldsUpOnlyItself() {
        let start = ContinuousClock.now
        var budget = GuessBudget()
        for _ in 0..<5 { budget.spend(at: start, from: "203.0.113.7") }
        #expect(!budget.allows(at: start, from: "203.0.113.7"))
        #expect(budget.allows(at: start, from: "198.51.100.1"), "another client is not held up")
        // Fifty addresses spend the global burst: then no one is compared for a moment, then ten a second.
        for index in 0..<45 { budget.spend(at: start, from: "192.0.2.\(index)") }
        #expect(!budget.allows(at: start, from: "198.51.100.1"))
        #expect(budget.allows(at: start + .milliseconds(100), from: "198.51.100.1"))
    }

    @Test func aBurstThenOneASecond() {
        let start = ContinuousClock.now
        var budget = GuessBudget()
        for index in 0..<5 {
            #expect(budget.allows(at: start))
            #expect(budget.spend(at: start) == (index == 4), "the fifth wrong token spends the budget")
        }
        #expect(!budget.allows(at: start))
        #expect(!budget.allows(at: start + .milliseconds(999)))
        #expect(budget.allows(at: start + .seconds(1)))
        budget.spend(at: start + .seconds(1))
        #expect(!budget.allows(at: start + .milliseconds(1500)))
        // A long quiet banks the burst, not more.
        let later = start + .seconds(3600)
        for _ in 0..<5 {
            #expect(budget.allows(at: later))
            budget.spend(at: later)
        }
        #expect(!budget.allows(at: later))
    }
}

/// The login cookie's key: made once, kept across restarts in a file only its owner reads, and replaced when the
/// file holds no key.
struct SessionKeyTests {
    @Test func madeOnceKeptAndReplacedWhenBroken() throws {
        let scratch = Scratch("webkey")
        let logger = Logger(label: "test")
        let first = SessionKey.load(dataDirectory: scratch.path("data"), logger: logger)
        #expect(SHA256.isDigest(first), "256 bits as 64 hex digits: \(first)")
        #expect(SessionKey.load(dataDirectory: scratch.path("data"), logger: logger) == first, "a restart keeps the key")
        var status = stat()
        #expect(stat(SessionKey.path(dataDirectory: scratch.path("data")), &status) == 0)
        #expect(status.st_mode & 0o777 == 0o600)
        try "not a key\n".write(toFile: SessionKey.path(dataDirectory: scratch.path("data")), atomically: true, encoding: .utf8)
        let replaced = SessionKey.load(dataDirectory: scratch.path("data"), logger: logger)
        #expect(SHA256.isDigest(replaced) && replaced != first)
        #expect(SessionKey.load(dataDirectory: scratch.path("data"), logger: logger) == replaced)
    }
}
