import Foundation
import Scheduling
import Testing

/// Cron fields: steps, ranges, names, seconds, month ends, day-of-month and day-of-week together, errors.
struct CronFieldTests {
    @Test func leapDayAndMonthEnds() throws {
        #expect(
            try Cron.fires("0 0 29 2 *", zone: "UTC", from: "2026-01-01T00:00:00Z", count: 2) == [
                "2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z",
            ]
        )
        #expect(
            try Cron.fires("0 12 31 * *", zone: "UTC", from: "2026-01-31T13:00:00Z", count: 3) == [
                "2026-03-31T12:00:00Z", "2026-05-31T12:00:00Z", "2026-07-31T12:00:00Z",
            ]
        )
        #expect(
            try Cron.fires("@monthly", zone: "UTC", from: "2026-12-15T00:00:00Z", count: 2) == [
                "2027-01-01T00:00:00Z", "2027-02-01T00:00:00Z",
            ]
        )
    }

    @Test func stepsRangesNamesAndSeconds() throws {
        #expect(
            try Cron.fires("*/7 * * * *", zone: "UTC", from: "2026-01-01T00:50:00Z", count: 3) == [
                "2026-01-01T00:56:00Z", "2026-01-01T01:00:00Z", "2026-01-01T01:07:00Z",
            ]
        )
        #expect(
            try Cron.fires("0 8-18/5 * jan,jul sun", zone: "UTC", from: "2026-01-01T00:00:00Z", count: 4) == [
                "2026-01-04T08:00:00Z", "2026-01-04T13:00:00Z", "2026-01-04T18:00:00Z", "2026-01-11T08:00:00Z",
            ]
        )
        #expect(
            try Cron.fires("*/15 * * * * *", zone: "UTC", from: "2026-01-01T00:00:50Z", count: 2) == [
                "2026-01-01T00:01:00Z", "2026-01-01T00:01:15Z",
            ]
        )
        // 7 is Sunday too.
        #expect(try CronExpression("0 0 * * 7").daysOfWeek == [0])
    }

    @Test func dayOfMonthOrDayOfWeekWhenBothAreRestricted() throws {
        // Vixie cron: the 13th of the month, or any Friday.
        #expect(
            try Cron.fires("0 0 13 * fri", zone: "UTC", from: "2026-02-01T00:00:00Z", count: 4) == [
                "2026-02-06T00:00:00Z", "2026-02-13T00:00:00Z", "2026-02-20T00:00:00Z", "2026-02-27T00:00:00Z",
            ]
        )
        // A star with a step still counts as a star, and keeps its step: the odd days of the month
        // (1, 3, 5, …) that are Mondays. February 2026's Mondays are the 2nd, 9th, 16th and 23rd.
        #expect(
            try Cron.fires("0 0 */2 * mon", zone: "UTC", from: "2026-02-01T00:00:00Z", count: 3) == [
                "2026-02-09T00:00:00Z", "2026-02-23T00:00:00Z", "2026-03-09T00:00:00Z",
            ]
        )
    }

    @Test func starredDayOfWeekKeepsItsStep() throws {
        // Vixie cron: */3 in day-of-week is 0, 3, 6 (Sunday, Wednesday, Saturday); day-of-month is `*`.
        // 2026-03-01 is a Sunday.
        #expect(
            try Cron.fires("0 9 * * */3", zone: "UTC", from: "2026-03-01T00:00:00Z", count: 9) == [
                "2026-03-01T09:00:00Z", "2026-03-04T09:00:00Z", "2026-03-07T09:00:00Z",
                "2026-03-08T09:00:00Z", "2026-03-11T09:00:00Z", "2026-03-14T09:00:00Z",
                "2026-03-15T09:00:00Z", "2026-03-18T09:00:00Z", "2026-03-21T09:00:00Z",
            ]
        )
    }

    @Test func starredDayOfMonthMustMatchTogetherWithTheWeekday() throws {
        // Vixie cron: */10 in day-of-month is 1, 11, 21, 31, and because it starts with `*` the day must also
        // be a Monday: no Monday at all in the first four months of 2026.
        #expect(
            try Cron.fires("0 9 */10 * 1", zone: "UTC", from: "2026-01-01T00:00:00Z", count: 5) == [
                "2026-05-11T09:00:00Z", "2026-06-01T09:00:00Z", "2026-08-31T09:00:00Z",
                "2026-09-21T09:00:00Z", "2026-12-21T09:00:00Z",
            ]
        )
        // A list whose first item is starred counts as starred (Vixie looks at the field's first character).
        #expect(
            try Cron.fires("0 9 */10,5 * mon", zone: "UTC", from: "2026-01-01T00:00:00Z", count: 2) == [
                "2026-01-05T09:00:00Z", "2026-05-11T09:00:00Z",
            ]
        )
        // One that does not start with `*` is an OR, even if it contains a star later.
        #expect(
            try Cron.fires("0 9 5,*/10 * sun", zone: "UTC", from: "2026-01-01T00:00:00Z", count: 4) == [
                "2026-01-01T09:00:00Z", "2026-01-04T09:00:00Z", "2026-01-05T09:00:00Z", "2026-01-11T09:00:00Z",
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
