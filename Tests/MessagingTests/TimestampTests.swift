import Foundation
import Messaging
import Testing

/// Times from the wire, the command line and the web view: every form Foundation's ISO 8601 parser takes, but
/// only real days and times. The expected instants are written out by hand, not formatted by the code.
struct TimestampTests {
    @Test(arguments: [
        ("2026-02-28T23:59:59Z", 1_772_323_199.0),
        ("2028-02-29T00:00:00.000Z", 1_835_395_200.0),
        ("2026-01-01T00:00:00+02:00", 1_767_218_400.0),
        ("2026-12-31T12:30:00.250Z", 1_798_720_200.25),
        ("2000-02-29T00:00:00Z", 951_782_400.0),
    ])
    func realTimesAreRead(text: String, seconds: Double) throws {
        let date = try #require(Timestamp.parse(text))
        #expect(abs(date.timeIntervalSince1970 - seconds) < 0.0005, "\(text): \(date.timeIntervalSince1970)")
    }

    /// Foundation rolls these over (`2026-02-30` is 2 March, a 60th second the next minute); Baton refuses them.
    @Test(arguments: [
        "2026-02-30T00:00:00Z", "2026-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2026-11-31T00:00:00Z", "2026-12-02T11:53:60Z",
        "2026-01-01T24:00:00Z", "2026-01-01T00:60:00Z", "2026-00-10T00:00:00Z", "2026-01-00T00:00:00Z", "2026-13-01T00:00:00Z",
        "2026-01-01", "2026-01-01T00:00Z", "", "２０２６-01-01T00:00:00Z",
    ])
    func impossibleTimesAreRefused(text: String) {
        #expect(Timestamp.parse(text) == nil, "\(text)")
    }
}

/// Error texts for a person (a JSON reply, `baton runs`): printable characters of any script kept, quotes too
/// (JSON or the terminal shows them), controls and format characters made visible, long texts cut.
struct ReadableTextTests {
    @Test func printableTextIsKeptAndControlsAreShown() {
        #expect(WireText.readable(#"no stage "nosuch": C:\tmp, café, 数据"#) == #"no stage "nosuch": C:\tmp, café, 数据"#)
        #expect(WireText.readable("a\nb\u{1B}[31mc\u{202E}d") == #"a\u{a}b\u{1b}[31mc\u{202e}d"#)
        #expect(WireText.readable("éé", limit: 3) == "é…(+2 bytes)")
        #expect(WireText.readable(String(repeating: "x", count: 10), limit: 4) == "xxxx…(+6 bytes)")
    }
}
