public import Foundation

/// Fire times of a cron expression in a time zone.
///
/// Daylight-saving rules (each local time fires at most once, and no slot is lost):
/// - A local time that does not exist (spring forward) fires at the instant it would have had, i.e. shifted
///   forward by the size of the gap: `30 2 * * *` in Europe/Berlin fires at 03:30 CEST on the last Sunday of March.
/// - A local time that happens twice (fall back) fires once, at its first occurrence (the earlier instant).
/// - When a shifted time coincides with a real one (e.g. 02:00 → 03:00 in a one-hour gap), they fire once.
public struct CronSchedule: Schedule {
    /// The expression.
    public let expression: CronExpression
    /// The zone the expression's fields are read in.
    public let timeZone: TimeZone

    /// Creates a schedule.
    public init(_ expression: CronExpression, timeZone: TimeZone) {
        self.expression = expression
        self.timeZone = timeZone
    }

    /// The first fire time strictly after `date`, or `nil` if none in the next 28 years.
    public func next(after date: Date) -> Date? {
        let instant = Int64(date.timeIntervalSince1970.rounded(.down))
        let localStart = instant + offset(instant) + 1
        let seconds = expression.seconds.sorted()
        let minutes = expression.minutes.sorted()
        let hours = expression.hours.sorted()
        let firstDay = Self.floorDiv(localStart, 86_400)
        var best: Int64?
        var searchEnd = Int64.max
        // 28 years: the Gregorian calendar's weekday/leap-day cycle, so a rare match (Feb 29 on a Monday) is found.
        for day in firstDay..<(firstDay + 28 * 366) {
            if day * 86_400 > searchEnd { break }
            let (_, month, dayOfMonth) = Self.civil(day)
            let weekday = Int(((day % 7) + 11) % 7)  // 1970-01-01 was a Thursday (4)
            guard expression.matches(month: month, day: dayOfMonth, weekday: weekday) else { continue }
            for hour in hours {
                for minute in minutes {
                    for second in seconds {
                        let local = day * 86_400 + Int64(hour * 3600 + minute * 60 + second)
                        if local < localStart { continue }
                        if local > searchEnd { break }
                        let candidate = resolve(local)
                        guard candidate > instant else { continue }
                        if best == nil || candidate < best! { best = candidate }
                        // Near a transition, a later local time can map to an earlier instant: look one gap further.
                        if searchEnd == .max {
                            let shift = abs(offset(local + 86_400) - offset(local - 86_400))
                            searchEnd = local + shift
                        }
                    }
                }
            }
        }
        return best.map { Date(timeIntervalSince1970: Double($0)) }
    }

    private func offset(_ instant: Int64) -> Int64 {
        Int64(timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(instant))))
    }

    /// The instant of a local wall-clock time (seconds since 1970 as if the local time were UTC).
    func resolve(_ local: Int64) -> Int64 {
        let before = offset(local - 86_400)
        let after = offset(local + 86_400)
        let candidates = Set([local - before, local - after]).filter { offset($0) == local - $0 }
        if let earliest = candidates.min() { return earliest }
        // In a gap: the time it would have had on the old offset, i.e. shifted forward by the gap.
        return local - before
    }

    static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
        a >= 0 ? a / b : -((-a + b - 1) / b)
    }

    /// Year, month and day of a day number (days since 1970-01-01), proleptic Gregorian.
    static func civil(_ days: Int64) -> (year: Int64, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = Int(doy - (153 * mp + 2) / 5 + 1)
        let month = Int(mp < 10 ? mp + 3 : mp - 9)
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}

/// When a job fires.
public protocol Schedule: Sendable {
    /// The first fire time strictly after `date`; `nil` when it never fires again.
    func next(after date: Date) -> Date?
}

extension IntervalSchedule: Schedule {
    public func next(after date: Date) -> Date? { slot(after: date) }
}

/// A single fire at a set time.
public struct OnceSchedule: Schedule {
    /// The time.
    public let date: Date
    /// Creates a one-shot schedule.
    public init(at date: Date) { self.date = date }
    public func next(after date: Date) -> Date? { date < self.date ? self.date : nil }
}
