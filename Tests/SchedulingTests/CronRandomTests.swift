import Foundation
import Scheduling
import Testing

/// Cron schedules against oracles written out here, on random expressions: the day fields against Vixie cron's
/// rule, and every matched local time of a year against a rule for daylight-saving changes.
struct CronRandomTests {
    /// A random cron field over `range` and the set of values it stands for, computed here from the item's
    /// meaning (not by the parser): `*`, `*/n`, `a`, `a-b`, `a-b/n`, `a/n` (a to the end, every n), names, lists.
    static func randomField(
        _ range: ClosedRange<Int>,
        names: [String] = [],
        nameBase: Int = 0,
        using rng: inout Cron.SplitMix
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
        var rng = Cron.SplitMix(state: 20_260_329)
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = try #require(TimeZone(identifier: "UTC"))
        let start = try #require(Cron.date("2026-01-01T00:00:00Z"))
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
                let (monthOfDay, dayOfMonth, weekday) = (try #require(parts.month), try #require(parts.day), try #require(parts.weekday))
                guard month.1.contains(monthOfDay) else { continue }
                let inDom = dom.values.contains(dayOfMonth)
                let inDow = dow.values.contains(weekday - 1)
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
        var rng = Cron.SplitMix(state: zoneName.utf8.reduce(1_743_210_000) { $0 &* 31 &+ UInt64($1) })
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
                guard days.1(try #require(parts.month), try #require(parts.day), try #require(parts.weekday) - 1) else { continue }
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
}
