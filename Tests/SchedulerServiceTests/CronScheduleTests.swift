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
        // A star with a step still counts as a star, and keeps its step: the odd days of the month
        // (1, 3, 5, …) that are Mondays. February 2026's Mondays are the 2nd, 9th, 16th and 23rd.
        #expect(
            try Self.fires("0 0 */2 * mon", zone: "UTC", from: "2026-02-01T00:00:00Z", count: 3) == [
                "2026-02-09T00:00:00Z", "2026-02-23T00:00:00Z", "2026-03-09T00:00:00Z",
            ]
        )
    }

    @Test func starredDayOfWeekKeepsItsStep() throws {
        // Vixie cron: */3 in day-of-week is 0, 3, 6 (Sunday, Wednesday, Saturday); day-of-month is `*`.
        // 2026-03-01 is a Sunday.
        #expect(
            try Self.fires("0 9 * * */3", zone: "UTC", from: "2026-03-01T00:00:00Z", count: 9) == [
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
            try Self.fires("0 9 */10 * 1", zone: "UTC", from: "2026-01-01T00:00:00Z", count: 5) == [
                "2026-05-11T09:00:00Z", "2026-06-01T09:00:00Z", "2026-08-31T09:00:00Z",
                "2026-09-21T09:00:00Z", "2026-12-21T09:00:00Z",
            ]
        )
        // A list whose first item is starred counts as starred (Vixie looks at the field's first character).
        #expect(
            try Self.fires("0 9 */10,5 * mon", zone: "UTC", from: "2026-01-01T00:00:00Z", count: 2) == [
                "2026-01-05T09:00:00Z", "2026-05-11T09:00:00Z",
            ]
        )
        // One that does not start with `*` is an OR, even if it contains a star later.
        #expect(
            try Self.fires("0 9 5,*/10 * sun", zone: "UTC", from: "2026-01-01T00:00:00Z", count: 4) == [
                "2026-01-01T09:00:00Z", "2026-01-04T09:00:00Z", "2026-01-05T09:00:00Z", "2026-01-11T09:00:00Z",
            ]
        )
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

    /// A random cron field over `range` and the set of values it stands for, computed here from the item's
    /// meaning (not by the parser): `*`, `*/n`, `a`, `a-b`, `a-b/n`, `a/n` (a to the end, every n), names, lists.
    static func randomField(
        _ range: ClosedRange<Int>,
        names: [String] = [],
        nameBase: Int = 0,
        using rng: inout SplitMix
    ) -> (text: String, values: Set<Int>) {
        func name(_ value: Int) -> String {
            let index = value - nameBase
            return !names.isEmpty && names.indices.contains(index) && Bool.random(using: &rng) ? names[index] : String(value)
        }
        var items: [String] = []
        var values: Set<Int> = []
        for _ in 0..<Int.random(in: 1...3, using: &rng) {
            let a = Int.random(in: range, using: &rng)
            let b = Int.random(in: a...range.upperBound, using: &rng)
            let n = Int.random(in: 1...10, using: &rng)
            switch Int.random(in: 0..<6, using: &rng) {
            case 0: items.append("*"); values.formUnion(range)
            case 1: items.append("*/\(n)"); values.formUnion(stride(from: range.lowerBound, through: range.upperBound, by: n))
            case 2: items.append(name(a)); values.insert(a)
            case 3: items.append("\(name(a))-\(name(b))"); values.formUnion(a...b)
            case 4: items.append("\(name(a))-\(name(b))/\(n)"); values.formUnion(stride(from: a, through: b, by: n))
            default: items.append("\(a)/\(n)"); values.formUnion(stride(from: a, through: range.upperBound, by: n))
            }
        }
        return (items.joined(separator: ","), values)
    }

    @Test func dayFieldsFollowVixieCronOnRandomExpressions() throws {
        var rng = SplitMix(state: 20_260_329)
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = try #require(TimeZone(identifier: "UTC"))
        let start = try #require(Timestamp.parse("2026-01-01T00:00:00Z"))
        let days = 2 * 365 + 1
        let end = start.addingTimeInterval(Double(days) * 86_400)
        let monthChoices: [(String, Set<Int>)] = [
            ("*", Set(1...12)), ("*/2", [1, 3, 5, 7, 9, 11]), ("jan-jun", Set(1...6)), ("mar,aug,feb", [2, 3, 8]),
        ]
        let weekdayNames = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
        for _ in 0..<150 {
            let dom = Self.randomField(1...31, using: &rng)
            var dow = Self.randomField(0...7, names: weekdayNames, using: &rng)
            if dow.values.remove(7) != nil { dow.values.insert(0) }
            let month = monthChoices[Int.random(in: 0..<monthChoices.count, using: &rng)]
            let text = "0 0 \(dom.text) \(month.0) \(dow.text)"
            // The rule, day by day: a starred field (first character `*`) makes it AND, otherwise OR.
            let starred = dom.text.hasPrefix("*") || dow.text.hasPrefix("*")
            var expected: [Date] = []
            for offset in 0..<days {
                let day = start.addingTimeInterval(Double(offset) * 86_400)
                let parts = calendar.dateComponents([.month, .day, .weekday], from: day)
                guard month.1.contains(parts.month!) else { continue }
                let inDom = dom.values.contains(parts.day!)
                let inDow = dow.values.contains(parts.weekday! - 1)
                if starred ? inDom && inDow : inDom || inDow { expected.append(day) }
            }
            let schedule = CronSchedule(try CronExpression(text), timeZone: calendar.timeZone)
            var actual: [Date] = []
            var date = start.addingTimeInterval(-1)
            while let next = schedule.next(after: date), next < end {
                actual.append(next)
                date = next
            }
            let firstDifference = zip(actual, expected).first { $0 != $1 }.map { "\($0) vs \($1)" } ?? "one is a prefix of the other"
            let same = actual == expected
            #expect(same, "\(text): \(actual.count) fire days, expected \(expected.count); first difference \(firstDifference)")
        }
    }

    /// The next `count` fire times after `from`, in UTC.
    static func utcFires(_ expression: String, zone: String, from: String, count: Int) throws -> [String] {
        let timeZone = try #require(TimeZone(identifier: zone))
        let schedule = CronSchedule(try CronExpression(expression), timeZone: timeZone)
        var date = try #require(Timestamp.parse(from))
        var result: [String] = []
        for _ in 0..<count {
            date = try #require(schedule.next(after: date))
            result.append(date.formatted(Date.ISO8601FormatStyle(timeZone: .gmt)))
        }
        return result
    }

    @Test func everyTimeInsideTheBerlinGapFiresShiftedByTheGap() throws {
        // 2026-03-29: 02:00 CET (+01:00) becomes 03:00 CEST (+02:00). 02:mm fires at 03:mm CEST = 01:mm Z.
        #expect(
            try Self.utcFires("*/13 2 * * *", zone: "Europe/Berlin", from: "2026-03-28T12:00:00Z", count: 7) == [
                "2026-03-29T01:00:00Z", "2026-03-29T01:13:00Z", "2026-03-29T01:26:00Z", "2026-03-29T01:39:00Z",
                "2026-03-29T01:52:00Z", "2026-03-30T00:00:00Z", "2026-03-30T00:13:00Z",
            ]
        )
        // Hours 2 and 3: 02:00/02:20/02:40 shifted are the same instants as 03:00/03:20/03:40 CEST; each once.
        #expect(
            try Self.utcFires("*/20 2,3 * * *", zone: "Europe/Berlin", from: "2026-03-28T12:00:00Z", count: 5) == [
                "2026-03-29T01:00:00Z", "2026-03-29T01:20:00Z", "2026-03-29T01:40:00Z",
                "2026-03-30T00:00:00Z", "2026-03-30T00:20:00Z",
            ]
        )
    }

    @Test func everyTimeInsideTheNewYorkGapFiresShiftedByTheGap() throws {
        // 2026-03-08: 02:00 EST (-05:00) becomes 03:00 EDT (-04:00). 02:mm fires at 07:mm Z.
        #expect(
            try Self.utcFires("1,7,36 2 * * *", zone: "America/New_York", from: "2026-03-07T12:00:00Z", count: 5) == [
                "2026-03-08T07:01:00Z", "2026-03-08T07:07:00Z", "2026-03-08T07:36:00Z",
                "2026-03-09T06:01:00Z", "2026-03-09T06:07:00Z",
            ]
        )
    }

    @Test func lordHoweHalfHourGapShiftsByHalfAnHour() throws {
        // 2026-10-04: 02:00 (+10:30) becomes 02:30 (+11:00). 02:05 and 02:20 shift to 02:35 and 02:50 (15:35Z
        // and 15:50Z on the 3rd); 02:45 exists (15:45Z), so it fires between them.
        #expect(
            try Self.utcFires("5,20,45 2 * * *", zone: "Australia/Lord_Howe", from: "2026-10-03T12:00:00Z", count: 4) == [
                "2026-10-03T15:35:00Z", "2026-10-03T15:45:00Z", "2026-10-03T15:50:00Z", "2026-10-04T15:05:00Z",
            ]
        )
        // 2026-10-04: 02:00 (+10:30) becomes 02:30 (+11:00). 02:00, 02:10, 02:20 shift to 02:30, 02:40, 02:50
        // (15:30Z, 15:40Z, 15:50Z on the 3rd), which are also the real 02:30, 02:40, 02:50: each instant once.
        #expect(
            try Self.utcFires("*/10 2 * * *", zone: "Australia/Lord_Howe", from: "2026-10-03T12:00:00Z", count: 4) == [
                "2026-10-03T15:30:00Z", "2026-10-03T15:40:00Z", "2026-10-03T15:50:00Z", "2026-10-04T15:00:00Z",
            ]
        )
    }

    @Test func gapAtMidnight() throws {
        // Havana, 2026-03-08: 00:00 CST (-05:00) becomes 01:00 CDT (-04:00); 00:00 and 00:30 do not exist.
        #expect(
            try Self.utcFires("0,30 0 * * *", zone: "America/Havana", from: "2026-03-07T12:00:00Z", count: 4) == [
                "2026-03-08T05:00:00Z", "2026-03-08T05:30:00Z", "2026-03-09T04:00:00Z", "2026-03-09T04:30:00Z",
            ]
        )
        // Santiago, 2026-09-06: 00:00 (-04:00) becomes 01:00 (-03:00). The gap is on a Sunday: day fields still
        // refer to the local date the time was written for.
        #expect(
            try Self.utcFires("45 0 * * sun", zone: "America/Santiago", from: "2026-09-01T00:00:00Z", count: 2) == [
                "2026-09-06T04:45:00Z", "2026-09-13T03:45:00Z",
            ]
        )
    }

    /// Where each daylight-saving transition in `years` lies: the instant and the offsets before and after,
    /// found by scanning the zone's offset every 15 minutes and narrowing down to the second.
    static func transitions(_ zone: TimeZone, from: Int64, to: Int64) -> [(at: Int64, before: Int64, after: Int64)] {
        func offset(_ t: Int64) -> Int64 { Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(t)))) }
        var result: [(Int64, Int64, Int64)] = []
        var t = from
        while t < to {
            if offset(t) != offset(t + 900) {
                var (low, high) = (t, t + 900)  // offset(low) != offset(high)
                while high - low > 1 {
                    let middle = (low + high) / 2
                    if offset(middle) == offset(low) { low = middle } else { high = middle }
                }
                result.append((high, offset(low), offset(high)))
            }
            t += 900
        }
        return result
    }

    @Test(arguments: ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"])
    func everyMatchedLocalTimeFiresOnceInIncreasingOrder(zoneName: String) throws {
        let zone = try #require(TimeZone(identifier: zoneName))
        func offset(_ t: Int64) -> Int64 { Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(t)))) }
        let year: Int64 = 1_767_225_600  // 2026-01-01T00:00:00Z
        let transitions = Self.transitions(zone, from: year - 3 * 86_400, to: year + 368 * 86_400)
        if zoneName == "Europe/Berlin" || zoneName == "America/New_York" || zoneName == "Australia/Lord_Howe" {
            #expect(transitions.count == 2)
        }
        /// The rule, written out: the instant of local time `local` (seconds since 1970 as if it were UTC).
        func instant(_ local: Int64) -> Int64 {
            for transition in transitions {
                let (low, high) = (
                    transition.at + min(transition.before, transition.after), transition.at + max(transition.before, transition.after)
                )
                // In the gap (before < after) or the repeated hour (before > after): the offset before the change.
                if low <= local && local < high { return local - transition.before }
            }
            let t = local - offset(local - offset(local))
            precondition(offset(t) == local - t)
            return t
        }
        var rng = SplitMix(state: zoneName.utf8.reduce(1_743_210_000) { $0 &* 31 &+ UInt64($1) })
        let minuteChoices = ["*/13", "*/20", "0,30", "15,45", "7", "0-10/5", "59", "1,7,36", "*/30"]
        let hourChoices = ["2", "1-3", "0,2,3", "2,3", "*/5", "0", "22-23,1", "*/8"]
        // Day fields and the days they stand for (month, day of month, weekday with Sunday 0).
        let dayChoices: [(String, (Int, Int, Int) -> Bool)] = [
            ("* * *", { _, _, _ in true }),
            ("* * sun", { _, _, weekday in weekday == 0 }),
            ("*/2 * *", { _, day, _ in day % 2 == 1 }),
            ("1-7 * 0", { _, day, weekday in day <= 7 || weekday == 0 }),
            ("* 3,4,9,10,11 *", { month, _, _ in [3, 4, 9, 10, 11].contains(month) }),
        ]
        let (dayFrom, dayTo) = (year / 86_400, year / 86_400 + 365)
        // Compare instants well inside the year, so that local days at its edges are all covered by the oracle.
        let (windowStart, windowEnd) = (year + 86_400, year + 364 * 86_400)
        for _ in 0..<8 {
            let second = Int.random(in: 0..<4, using: &rng) == 0 ? "30 " : ""
            let days = dayChoices[Int.random(in: 0..<dayChoices.count, using: &rng)]
            let text =
                second + [minuteChoices, hourChoices].map { $0[Int.random(in: 0..<$0.count, using: &rng)] }.joined(separator: " ")
                + " " + days.0
            let expression = try CronExpression(text)
            var expected: Set<Int64> = []
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = .gmt
            for day in dayFrom..<dayTo {
                let parts = calendar.dateComponents([.month, .day, .weekday], from: Date(timeIntervalSince1970: Double(day * 86_400)))
                guard days.1(parts.month!, parts.day!, parts.weekday! - 1) else { continue }
                for hour in expression.hours {
                    for minute in expression.minutes {
                        for second in expression.seconds {
                            let t = instant(day * 86_400 + Int64(hour * 3600 + minute * 60 + second))
                            if windowStart <= t && t < windowEnd { expected.insert(t) }
                        }
                    }
                }
            }
            let schedule = CronSchedule(expression, timeZone: zone)
            var sequence: [Int64] = []
            var date = Date(timeIntervalSince1970: Double(windowStart - 1))
            while let next = schedule.next(after: date), next.timeIntervalSince1970 < Double(windowEnd) {
                #expect(next > date, "\(text) in \(zoneName): \(next) after \(date)")
                if next <= date { break }
                sequence.append(Int64(next.timeIntervalSince1970))
                date = next
            }
            let missing = expected.subtracting(sequence).sorted().prefix(5).map { Date(timeIntervalSince1970: Double($0)) }
            let extra = Set(sequence).subtracting(expected).sorted().prefix(5).map { Date(timeIntervalSince1970: Double($0)) }
            #expect(missing.isEmpty && extra.isEmpty, "\(text) in \(zoneName): missing \(missing), extra \(extra)")
            #expect(sequence.count == expected.count, "\(text) in \(zoneName)")
        }
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
