import Foundation
import Messaging
import SchedulerService
import Scheduling
import Testing

struct CronScheduleTests {
    /// The next `count` fire times after `from`, formatted with their offsets in the zone.
    static func fires(_ expression: String, zone: String, from: String, count: Int) throws -> [String] {
        let timeZone = try #require(TimeZone(identifier: zone))
        let schedule = CronSchedule(try CronExpression(expression), timeZone: timeZone)
        var date = try #require(Timestamp.parse(from))
        var result: [String] = []
        for _ in 0..<count {
            date = try #require(schedule.next(after: date))
            var style = Date.ISO8601FormatStyle(timeZone: timeZone)
            style = style.year().month().day().time(includingFractionalSeconds: false).timeZone(separator: .colon)
            result.append(date.formatted(style))
        }
        return result
    }

    @Test func berlinSpringForwardShiftsTheMissingTimeByTheGap() throws {
        #expect(
            try Self.fires("30 2 * * *", zone: "Europe/Berlin", from: "2026-03-27T00:00:00Z", count: 4) == [
                "2026-03-27T02:30:00+01:00", "2026-03-28T02:30:00+01:00", "2026-03-29T03:30:00+02:00", "2026-03-30T02:30:00+02:00",
            ]
        )
    }

    @Test func berlinFallBackFiresTheRepeatedTimeOnce() throws {
        #expect(
            try Self.fires("30 2 * * *", zone: "Europe/Berlin", from: "2026-10-24T00:00:00Z", count: 3) == [
                "2026-10-24T02:30:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00",
            ]
        )
        // Every 30 minutes through the night: the repeated hour is not fired a second time.
        #expect(
            try Self.fires("*/30 * * * *", zone: "Europe/Berlin", from: "2026-10-25T00:10:00Z", count: 3) == [
                "2026-10-25T02:30:00+02:00", "2026-10-25T03:00:00+01:00", "2026-10-25T03:30:00+01:00",
            ]
        )
    }

    @Test func newYorkTransitions() throws {
        #expect(
            try Self.fires("0 2 * * *", zone: "America/New_York", from: "2026-03-07T12:00:00Z", count: 3) == [
                "2026-03-08T03:00:00-04:00", "2026-03-09T02:00:00-04:00", "2026-03-10T02:00:00-04:00",
            ]
        )
        #expect(
            try Self.fires("30 1 * * *", zone: "America/New_York", from: "2026-10-31T12:00:00Z", count: 2) == [
                "2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00",
            ]
        )
        // Hourly across the spring gap: 02:00 does not exist and coincides with 03:00; each fires once.
        #expect(
            try Self.fires("0 * * * *", zone: "America/New_York", from: "2026-03-08T05:30:00Z", count: 3) == [
                "2026-03-08T01:00:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T04:00:00-04:00",
            ]
        )
    }

    @Test func lordHoweHalfHourShift() throws {
        // Lord Howe moves from +11:00 to +10:30 on the first Sunday of April at 02:00 (01:30–02:00 happens twice).
        #expect(
            try Self.fires("45 1 * * *", zone: "Australia/Lord_Howe", from: "2026-04-04T00:00:00Z", count: 2) == [
                "2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30",
            ]
        )
        // It moves back to +11:00 on the first Sunday of October at 02:00: 02:00–02:30 does not exist.
        #expect(
            try Self.fires("15 2 * * *", zone: "Australia/Lord_Howe", from: "2026-10-03T00:00:00Z", count: 2) == [
                "2026-10-04T02:45:00+11:00", "2026-10-05T02:15:00+11:00",
            ]
        )
    }

    @Test func shanghaiHasNoDaylightSaving() throws {
        #expect(
            try Self.fires("0 9 * * mon-fri", zone: "Asia/Shanghai", from: "2026-03-27T00:00:00Z", count: 3) == [
                "2026-03-27T09:00:00+08:00", "2026-03-30T09:00:00+08:00", "2026-03-31T09:00:00+08:00",
            ]
        )
    }

    @Test func leapDayAndMonthEnds() throws {
        #expect(
            try Self.fires("0 0 29 2 *", zone: "UTC", from: "2026-01-01T00:00:00Z", count: 2) == [
                "2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z",
            ]
        )
        #expect(
            try Self.fires("0 12 31 * *", zone: "UTC", from: "2026-01-31T13:00:00Z", count: 3) == [
                "2026-03-31T12:00:00Z", "2026-05-31T12:00:00Z", "2026-07-31T12:00:00Z",
            ]
        )
        #expect(
            try Self.fires("@monthly", zone: "UTC", from: "2026-12-15T00:00:00Z", count: 2) == [
                "2027-01-01T00:00:00Z", "2027-02-01T00:00:00Z",
            ]
        )
    }

    @Test func stepsRangesNamesAndSeconds() throws {
        #expect(
            try Self.fires("*/7 * * * *", zone: "UTC", from: "2026-01-01T00:50:00Z", count: 3) == [
                "2026-01-01T00:56:00Z", "2026-01-01T01:00:00Z", "2026-01-01T01:07:00Z",
            ]
        )
        #expect(
            try Self.fires("0 8-18/5 * jan,jul sun", zone: "UTC", from: "2026-01-01T00:00:00Z", count: 4) == [
                "2026-01-04T08:00:00Z", "2026-01-04T13:00:00Z", "2026-01-04T18:00:00Z", "2026-01-11T08:00:00Z",
            ]
        )
        #expect(
            try Self.fires("*/15 * * * * *", zone: "UTC", from: "2026-01-01T00:00:50Z", count: 2) == [
                "2026-01-01T00:01:00Z", "2026-01-01T00:01:15Z",
            ]
        )
        // 7 is Sunday too.
        #expect(try CronExpression("0 0 * * 7").daysOfWeek == [0])
    }

    @Test func dayOfMonthOrDayOfWeekWhenBothAreRestricted() throws {
        // Vixie cron: the 13th of the month, or any Friday.
        #expect(
            try Self.fires("0 0 13 * fri", zone: "UTC", from: "2026-02-01T00:00:00Z", count: 4) == [
                "2026-02-06T00:00:00Z", "2026-02-13T00:00:00Z", "2026-02-20T00:00:00Z", "2026-02-27T00:00:00Z",
            ]
        )
        // A star with a step still counts as a star: every other day of the month, only on Mondays.
        #expect(
            try Self.fires("0 0 */2 * mon", zone: "UTC", from: "2026-02-01T00:00:00Z", count: 2) == [
                "2026-02-02T00:00:00Z", "2026-02-09T00:00:00Z",
            ]
        )
    }

    @Test(arguments: [
        ("61 * * * *", "minute"),
        ("* 24 * * *", "hour"),
        ("* * 0 * *", "day-of-month"),
        ("* * * 13 *", "month"),
        ("* * * * funday", "day-of-week"),
        ("*/0 * * * *", "minute"),
        ("5-1 * * * *", "minute"),
        ("* * *", "expression"),
        ("@fortnightly", "expression"),
        ("0 0 30 2 *", "day-of-month"),
    ])
    func badExpressionsPointAtTheField(expression: String, field: String) {
        let error = #expect(throws: CronError.self) { try CronExpression(expression) }
        #expect(error?.field == field, "\(String(describing: error))")
    }
}
