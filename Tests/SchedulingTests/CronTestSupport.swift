import Foundation
import Scheduling
import Testing

/// Helpers shared by the cron test suites.
enum Cron {
    /// A time written in ISO 8601 with a zone (`2026-03-28T12:00:00Z`).
    static func date(_ text: String) -> Date? {
        try? Date.ISO8601FormatStyle().parse(text)
    }

    /// The next `count` fire times after `from`, formatted with their offsets in the zone.
    static func fires(_ expression: String, zone: String, from: String, count: Int) throws -> [String] {
        let timeZone = try #require(TimeZone(identifier: zone))
        let schedule = CronSchedule(try CronExpression(expression), timeZone: timeZone)
        var date = try #require(Cron.date(from))
        var result: [String] = []
        for _ in 0..<count {
            date = try #require(schedule.next(after: date))
            var style = Date.ISO8601FormatStyle(timeZone: timeZone)
            style = style.year().month().day().time(includingFractionalSeconds: false).timeZone(separator: .colon)
            result.append(date.formatted(style))
        }
        return result
    }

    /// The next `count` fire times after `from`, in UTC.
    static func utcFires(_ expression: String, zone: String, from: String, count: Int) throws -> [String] {
        let timeZone = try #require(TimeZone(identifier: zone))
        let schedule = CronSchedule(try CronExpression(expression), timeZone: timeZone)
        var date = try #require(Cron.date(from))
        var result: [String] = []
        for _ in 0..<count {
            date = try #require(schedule.next(after: date))
            result.append(date.formatted(Date.ISO8601FormatStyle(timeZone: .gmt)))
        }
        return result
    }

    /// A small deterministic generator (SplitMix64), so a failing case can be reproduced.
    struct SplitMix: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }
}
