public import Foundation

/// Fire times `anchor + n × every`, computed in whole milliseconds, so that no error ever accumulates:
/// the millionth slot is exactly as precise as the first.
public struct IntervalSchedule: Sendable, Equatable {
    /// The reference slot; every slot is this plus a whole number of intervals.
    public let anchorMilliseconds: Int64
    /// The interval in milliseconds (at least 1).
    public let everyMilliseconds: Int64

    /// Creates a schedule.
    /// - Parameters:
    ///   - every: The interval.
    ///   - anchor: A time that is a slot; others are whole intervals before or after it.
    public init(every: Duration, anchor: Date = Date(timeIntervalSince1970: 0)) {
        let (seconds, attoseconds) = every.components
        everyMilliseconds = max(1, seconds * 1000 + attoseconds / 1_000_000_000_000_000)
        anchorMilliseconds = Int64((anchor.timeIntervalSince1970 * 1000).rounded())
    }

    /// The first slot strictly after `date`.
    public func slot(after date: Date) -> Date {
        let now = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        let elapsed = now - anchorMilliseconds
        // Floor division that is right for times before the anchor too.
        var index = elapsed / everyMilliseconds
        if elapsed < 0 && elapsed % everyMilliseconds != 0 { index -= 1 }
        return Self.date(anchorMilliseconds + (index + 1) * everyMilliseconds)
    }

    /// The slot with index `n` (slot 0 is the anchor).
    public func slot(_ n: Int64) -> Date {
        Self.date(anchorMilliseconds + n * everyMilliseconds)
    }

    private static func date(_ milliseconds: Int64) -> Date {
        Date(timeIntervalSince1970: Double(milliseconds) / 1000)
    }
}
