public import Foundation

/// Fire times of a cron expression in a time zone.
///
/// The schedule is a set of instants: each local wall-clock time the expression matches (on a day it matches)
/// is resolved to one instant, and `next(after:)` returns the earliest of those instants strictly after the
/// given one. Daylight saving:
/// - A local time that does not exist (spring forward) fires shifted forward by the length of the gap, which is
///   the instant it has on the offset in force before the gap: `30 2 * * *` in Europe/Berlin fires at 03:30 CEST
///   (01:30Z) on the last Sunday of March, `*/13 2 * * *` at 03:00, 03:13, 03:26, 03:39 and 03:52 CEST.
/// - A local time that happens twice (fall back) fires once, at its first occurrence (the earlier instant, on
///   the offset in force before the change); the second pass through the repeated times fires nothing.
/// - When two local times resolve to the same instant (a shifted time and a real one, e.g. 02:20 and 03:20 in a
///   one-hour gap), that instant is one slot and fires once.
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
        // Local times resolving after `instant` are above `instant + offset(instant)`, except those of a gap that
        // ended less than a gap's length ago: they resolve on the offset before it (after firing 02:00 → 03:00,
        // 02:13 → 03:13 is still to come). So start at the offset in force one gap's length ago, if smaller.
        let current = offset(instant)
        let gap = current - (-2...2).reduce(current) { lowest, day in min(lowest, offset(instant + Int64(day) * 86_400)) }
        let before = offset(instant - gap)
        let localStart = instant + min(current, before) + 1
        // In that case local times from the gap's end up to `instant + current` resolve to `instant` or earlier:
        // skip them without resolving each (an every-second expression would resolve up to a gap's worth).
        var pastFrom = Int64.max
        if before < current {
            var (low, high) = (instant - gap, instant)  // offset(low) == before, offset(high) == current
            while high - low > 1 {
                let middle = (low + high) / 2
                if offset(middle) == current { high = middle } else { low = middle }
            }
            pastFrom = high + current
        }
        let seconds = expression.seconds.sorted()
        let minutes = expression.minutes.sorted()
        let hours = expression.hours.sorted()
        let firstDay = CivilDate.floorDivide(localStart, 86_400)
        var best: Int64?
        // Once a candidate is found, local times past this bound cannot resolve to an earlier instant.
        var searchEnd = Int64.max
        // 28 years: the Gregorian calendar's weekday/leap-day cycle, so a rare match (Feb 29 on a Monday) is found.
        days: for day in firstDay..<(firstDay + 28 * 366) {
            if day * 86_400 > searchEnd { break }
            let (_, month, dayOfMonth) = CivilDate.date(ofDay: day)
            let weekday = Int(((day % 7) + 11) % 7)  // 1970-01-01 was a Thursday (4)
            guard expression.matches(month: month, day: dayOfMonth, weekday: weekday) else { continue }
            for hour in hours {
                for minute in minutes {
                    for second in seconds {
                        let local = day * 86_400 + Int64(hour * 3600 + minute * 60 + second)
                        if local < localStart || (local >= pastFrom && local <= instant + current) { continue }
                        if local > searchEnd { break days }
                        let candidate = resolve(local)
                        guard candidate > instant, candidate < (best ?? .max) else { continue }
                        best = candidate
                        // A later local time L resolves to at least L - (largest offset near the candidate).
                        let largest = (-1...1).reduce(Int64.min) { highest, day in max(highest, offset(candidate + Int64(day) * 86_400)) }
                        searchEnd = candidate + largest
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
        // Repeated (fall back): the first occurrence.
        if let earliest = candidates.min() { return earliest }
        // In a gap: the instant it has on the offset before the gap, i.e. shifted forward by the gap's length.
        return local - before
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
