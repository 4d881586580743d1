import Foundation
import Scheduling
import Testing

/// Cron schedules across time zones and daylight-saving changes: skipped local times fire shifted by the gap,
/// repeated ones fire once.
struct CronTimeZoneTests {
    @Test func berlinSpringForwardShiftsTheMissingTimeByTheGap() throws {
        #expect(
            try Cron.fires("30 2 * * *", zone: "Europe/Berlin", from: "2026-03-27T00:00:00Z", count: 4) == [
                "2026-03-27T02:30:00+01:00", "2026-03-28T02:30:00+01:00", "2026-03-29T03:30:00+02:00", "2026-03-30T02:30:00+02:00",
            ]
        )
    }

    @Test func berlinFallBackFiresTheRepeatedTimeOnce() throws {
        #expect(
            try Cron.fires("30 2 * * *", zone: "Europe/Berlin", from: "2026-10-24T00:00:00Z", count: 3) == [
                "2026-10-24T02:30:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00",
            ]
        )
        // Every 30 minutes through the night: the repeated hour is not fired a second time.
        #expect(
            try Cron.fires("*/30 * * * *", zone: "Europe/Berlin", from: "2026-10-25T00:10:00Z", count: 3) == [
                "2026-10-25T02:30:00+02:00", "2026-10-25T03:00:00+01:00", "2026-10-25T03:30:00+01:00",
            ]
        )
    }

    @Test func newYorkTransitions() throws {
        #expect(
            try Cron.fires("0 2 * * *", zone: "America/New_York", from: "2026-03-07T12:00:00Z", count: 3) == [
                "2026-03-08T03:00:00-04:00", "2026-03-09T02:00:00-04:00", "2026-03-10T02:00:00-04:00",
            ]
        )
        #expect(
            try Cron.fires("30 1 * * *", zone: "America/New_York", from: "2026-10-31T12:00:00Z", count: 2) == [
                "2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00",
            ]
        )
        // Hourly across the spring gap: 02:00 does not exist and coincides with 03:00; each fires once.
        #expect(
            try Cron.fires("0 * * * *", zone: "America/New_York", from: "2026-03-08T05:30:00Z", count: 3) == [
                "2026-03-08T01:00:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T04:00:00-04:00",
            ]
        )
    }

    @Test func lordHoweHalfHourShift() throws {
        // Lord Howe moves from +11:00 to +10:30 on the first Sunday of April at 02:00 (01:30–02:00 happens twice).
        #expect(
            try Cron.fires("45 1 * * *", zone: "Australia/Lord_Howe", from: "2026-04-04T00:00:00Z", count: 2) == [
                "2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30",
            ]
        )
        // It moves back to +11:00 on the first Sunday of October at 02:00: 02:00–02:30 does not exist.
        #expect(
            try Cron.fires("15 2 * * *", zone: "Australia/Lord_Howe", from: "2026-10-03T00:00:00Z", count: 2) == [
                "2026-10-04T02:45:00+11:00", "2026-10-05T02:15:00+11:00",
            ]
        )
    }

    @Test func shanghaiHasNoDaylightSaving() throws {
        #expect(
            try Cron.fires("0 9 * * mon-fri", zone: "Asia/Shanghai", from: "2026-03-27T00:00:00Z", count: 3) == [
                "2026-03-27T09:00:00+08:00", "2026-03-30T09:00:00+08:00", "2026-03-31T09:00:00+08:00",
            ]
        )
    }

    @Test func everyTimeInsideTheBerlinGapFiresShiftedByTheGap() throws {
        // 2026-03-29: 02:00 CET (+01:00) becomes 03:00 CEST (+02:00). 02:mm fires at 03:mm CEST = 01:mm Z.
        #expect(
            try Cron.utcFires("*/13 2 * * *", zone: "Europe/Berlin", from: "2026-03-28T12:00:00Z", count: 7) == [
                "2026-03-29T01:00:00Z", "2026-03-29T01:13:00Z", "2026-03-29T01:26:00Z", "2026-03-29T01:39:00Z",
                "2026-03-29T01:52:00Z", "2026-03-30T00:00:00Z", "2026-03-30T00:13:00Z",
            ]
        )
        // Hours 2 and 3: 02:00/02:20/02:40 shifted are the same instants as 03:00/03:20/03:40 CEST; each once.
        #expect(
            try Cron.utcFires("*/20 2,3 * * *", zone: "Europe/Berlin", from: "2026-03-28T12:00:00Z", count: 5) == [
                "2026-03-29T01:00:00Z", "2026-03-29T01:20:00Z", "2026-03-29T01:40:00Z",
                "2026-03-30T00:00:00Z", "2026-03-30T00:20:00Z",
            ]
        )
    }

    @Test func everyTimeInsideTheNewYorkGapFiresShiftedByTheGap() throws {
        // 2026-03-08: 02:00 EST (-05:00) becomes 03:00 EDT (-04:00). 02:mm fires at 07:mm Z.
        #expect(
            try Cron.utcFires("1,7,36 2 * * *", zone: "America/New_York", from: "2026-03-07T12:00:00Z", count: 5) == [
                "2026-03-08T07:01:00Z", "2026-03-08T07:07:00Z", "2026-03-08T07:36:00Z",
                "2026-03-09T06:01:00Z", "2026-03-09T06:07:00Z",
            ]
        )
    }

    @Test func lordHoweHalfHourGapShiftsByHalfAnHour() throws {
        // 2026-10-04: 02:00 (+10:30) becomes 02:30 (+11:00). 02:05 and 02:20 shift to 02:35 and 02:50 (15:35Z
        // and 15:50Z on the 3rd); 02:45 exists (15:45Z), so it fires between them.
        #expect(
            try Cron.utcFires("5,20,45 2 * * *", zone: "Australia/Lord_Howe", from: "2026-10-03T12:00:00Z", count: 4) == [
                "2026-10-03T15:35:00Z", "2026-10-03T15:45:00Z", "2026-10-03T15:50:00Z", "2026-10-04T15:05:00Z",
            ]
        )
        // 2026-10-04: 02:00 (+10:30) becomes 02:30 (+11:00). 02:00, 02:10, 02:20 shift to 02:30, 02:40, 02:50
        // (15:30Z, 15:40Z, 15:50Z on the 3rd), which are also the real 02:30, 02:40, 02:50: each instant once.
        #expect(
            try Cron.utcFires("*/10 2 * * *", zone: "Australia/Lord_Howe", from: "2026-10-03T12:00:00Z", count: 4) == [
                "2026-10-03T15:30:00Z", "2026-10-03T15:40:00Z", "2026-10-03T15:50:00Z", "2026-10-04T15:00:00Z",
            ]
        )
    }

    @Test func gapAtMidnight() throws {
        // Havana, 2026-03-08: 00:00 CST (-05:00) becomes 01:00 CDT (-04:00); 00:00 and 00:30 do not exist.
        #expect(
            try Cron.utcFires("0,30 0 * * *", zone: "America/Havana", from: "2026-03-07T12:00:00Z", count: 4) == [
                "2026-03-08T05:00:00Z", "2026-03-08T05:30:00Z", "2026-03-09T04:00:00Z", "2026-03-09T04:30:00Z",
            ]
        )
        // Santiago, 2026-09-06: 00:00 (-04:00) becomes 01:00 (-03:00). The gap is on a Sunday: day fields still
        // refer to the local date the time was written for.
        #expect(
            try Cron.utcFires("45 0 * * sun", zone: "America/Santiago", from: "2026-09-01T00:00:00Z", count: 2) == [
                "2026-09-06T04:45:00Z", "2026-09-13T03:45:00Z",
            ]
        )
    }
}
