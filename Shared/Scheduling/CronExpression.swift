import Foundation

/// A parsed cron expression with the standard (Vixie) semantics: 5 fields (minute hour day-of-month month
/// day-of-week) or 6 with seconds first; lists, ranges, steps, month and weekday names, `7` for Sunday, and
/// the `@hourly`/`@daily`/`@midnight`/`@weekly`/`@monthly`/`@yearly`/`@annually` macros.
///
/// Day of month and day of week, exactly as Vixie cron: when neither field starts with `*`, a day matches if
/// either field matches it (`0 0 13 * fri` is the 13th and every Friday). When either field starts with `*`
/// (`*`, `*/n`, or a list whose first item is one of those), a day must match both, and a starred field keeps
/// its step: `0 9 * * */3` fires on Sunday, Wednesday and Saturday (0, 3, 6), and `0 9 */10 * 1` on the
/// 1st, 11th, 21st and 31st when it is a Monday. `?` is not accepted.
public struct CronExpression: Sendable, Equatable, CustomStringConvertible {
    /// Allowed seconds (0–59); `[0]` for a 5-field expression.
    public let seconds: Set<Int>
    /// Allowed minutes (0–59).
    public let minutes: Set<Int>
    /// Allowed hours (0–23).
    public let hours: Set<Int>
    /// Allowed days of the month (1–31).
    public let daysOfMonth: Set<Int>
    /// Allowed months (1–12).
    public let months: Set<Int>
    /// Allowed days of the week (0–6, Sunday is 0).
    public let daysOfWeek: Set<Int>
    /// True when the day-of-month field starts with `*`.
    public let dayOfMonthIsStar: Bool
    /// True when the day-of-week field starts with `*`.
    public let dayOfWeekIsStar: Bool
    /// The expression as written.
    public let text: String

    public var description: String { text }

    private static let macros: [String: String] = [
        "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
        "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
    ]
    private static let monthNames = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    private static let dayNames = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]

    /// Parses an expression.
    /// - Throws: ``CronError`` naming the field and what is wrong with it.
    public init(_ text: String) throws(CronError) {
        self.text = text
        var source = text.trimmingCharacters(in: .whitespaces)
        if source.hasPrefix("@") {
            guard let expanded = Self.macros[source.lowercased()] else {
                throw CronError(
                    field: "expression",
                    value: source,
                    problem: "unknown macro; use @hourly, @daily, @weekly, @monthly or @yearly"
                )
            }
            source = expanded
        }
        var fields = source.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count == 5 || fields.count == 6 else {
            throw CronError(
                field: "expression",
                value: text,
                problem: "expected 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first, got \(fields.count)"
            )
        }
        if fields.count == 5 { fields.insert("0", at: 0) }
        seconds = try Self.parse(fields[0], name: "second", range: 0...59)
        minutes = try Self.parse(fields[1], name: "minute", range: 0...59)
        hours = try Self.parse(fields[2], name: "hour", range: 0...23)
        daysOfMonth = try Self.parse(fields[3], name: "day-of-month", range: 1...31)
        months = try Self.parse(fields[4], name: "month", range: 1...12, names: Self.monthNames, nameBase: 1)
        var weekdays = try Self.parse(fields[5], name: "day-of-week", range: 0...7, names: Self.dayNames, nameBase: 0)
        if weekdays.remove(7) != nil { weekdays.insert(0) }
        daysOfWeek = weekdays
        dayOfMonthIsStar = fields[3].hasPrefix("*")
        dayOfWeekIsStar = fields[5].hasPrefix("*")
        if !dayOfMonthIsStar, dayOfWeekIsStar, daysOfMonth.allSatisfy({ day in months.allSatisfy { Self.maxDay(month: $0) < day } }) {
            throw CronError(field: "day-of-month", value: fields[3], problem: "no month in the month field has such a day")
        }
    }

    private static func maxDay(month: Int) -> Int {
        [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
    }

    private static func parse(
        _ field: String,
        name: String,
        range: ClosedRange<Int>,
        names: [String] = [],
        nameBase: Int = 0
    ) throws(CronError) -> Set<Int> {
        var values: Set<Int> = []
        for item in field.split(separator: ",", omittingEmptySubsequences: false).map(String.init) {
            func fail(_ problem: String) -> CronError { CronError(field: name, value: field, problem: problem) }
            guard !item.isEmpty else { throw fail("empty list item") }
            let pieces = item.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            guard pieces.count <= 2 else { throw fail("more than one '/' in \"\(item)\"") }
            var step = 1
            if pieces.count == 2 {
                guard let parsed = Int(pieces[1]), parsed > 0 else { throw fail("step \"\(pieces[1])\" must be a whole number above 0") }
                step = parsed
            }
            let base = pieces[0]
            var low: Int
            var high: Int
            if base == "*" {
                (low, high) = (range.lowerBound, range.upperBound)
            } else {
                let ends = base.split(separator: "-", omittingEmptySubsequences: false).map(String.init)
                guard ends.count <= 2 else { throw fail("bad range \"\(base)\"") }
                func value(_ text: String) throws(CronError) -> Int {
                    if let number = Int(text) {
                        guard range.contains(number) else {
                            throw fail("\(number) is out of range \(range.lowerBound)-\(range.upperBound)")
                        }
                        return number
                    }
                    if let index = names.firstIndex(of: text.lowercased()) { return index + nameBase }
                    throw fail("\"\(text)\" is not a number\(names.isEmpty ? "" : " or a name (\(names.joined(separator: ", ")))")")
                }
                low = try value(ends[0])
                // `a/n` means from a to the end of the range, every n.
                high = ends.count == 2 ? try value(ends[1]) : (pieces.count == 2 ? range.upperBound : low)
                guard low <= high else { throw fail("range \"\(base)\" goes backwards") }
            }
            values.formUnion(stride(from: low, through: high, by: step))
        }
        return values
    }

    /// True when a day (given its month, day of month and weekday) is one the expression fires on.
    func matches(month: Int, day: Int, weekday: Int) -> Bool {
        guard months.contains(month) else { return false }
        let dom = daysOfMonth.contains(day)
        let dow = daysOfWeek.contains(weekday)
        // Vixie cron's rule: a starred field (with its step) must match too; only two unstarred fields are OR-ed.
        return dayOfMonthIsStar || dayOfWeekIsStar ? dom && dow : dom || dow
    }
}

/// A cron expression that cannot be parsed, pointing at the bad field.
public struct CronError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The field: second, minute, hour, day-of-month, month, day-of-week, or expression.
    public var field: String
    /// The field's text.
    public var value: String
    /// What is wrong.
    public var problem: String

    public var description: String { "\(field) field \"\(value)\": \(problem)" }
}
