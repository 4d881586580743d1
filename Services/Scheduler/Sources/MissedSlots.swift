public import Foundation
public import Config
public import Scheduling

/// What to do with slots that passed without being fired (the scheduler was down, the job was paused,
/// or the timer woke late): a pure decision, so that tests drive it without clocks or sockets.
public enum MissedSlots {
    /// The decision: slots to fire now, oldest first, and slots to record as skipped, with the reason.
    public struct Decision: Equatable, Sendable {
        /// Slots to fire.
        public var fire: [Date]
        /// Slots not run, each with why.
        public var skip: [(Date, String)]

        public static func == (lhs: Decision, rhs: Decision) -> Bool {
            lhs.fire == rhs.fire && lhs.skip.map(\.0) == rhs.skip.map(\.0) && lhs.skip.map(\.1) == rhs.skip.map(\.1)
        }
    }

    /// Applies a job's misfire policy to missed slots.
    /// - Parameters:
    ///   - slots: The missed slots, oldest first.
    ///   - policy: `all`, `latest` or `skip`.
    ///   - grace: Slots older than this (relative to `now`) are skipped whatever the policy.
    ///   - now: The current time.
    ///   - cause: Why they were missed, e.g. "the scheduler was down".
    public static func decide(
        _ slots: [Date],
        policy: Configuration.MisfirePolicy,
        grace: Duration?,
        now: Date,
        cause: String
    ) -> Decision {
        var decision = Decision(fire: [], skip: [])
        var eligible: [Date] = []
        for slot in slots {
            if let grace, now.timeIntervalSince(slot) > grace / .seconds(1) {
                decision.skip.append((slot, "missed (\(cause)) and older than the grace period of \(DurationText.format(grace))"))
            } else {
                eligible.append(slot)
            }
        }
        switch policy {
        case .all:
            decision.fire = eligible
        case .latest:
            decision.fire = eligible.suffix(1)
            decision.skip += eligible.dropLast().map { ($0, "missed (\(cause)); misfire policy latest runs only the newest") }
        case .skip:
            decision.skip += eligible.map { ($0, "missed (\(cause)); misfire policy skip") }
        }
        decision.skip.sort { $0.0 < $1.0 }
        return decision
    }

    /// The first `count` slots of a schedule after `after` up to and including `until`, oldest first, and
    /// whether more follow: a catch-up after a long downtime goes in chunks of bounded size.
    public static func firstSlots(of schedule: any Schedule, after: Date, until: Date, count: Int) -> (slots: [Date], more: Bool) {
        var result: [Date] = []
        var cursor = after
        while let next = schedule.next(after: cursor), next <= until {
            if result.count == count { return (result, true) }
            result.append(next)
            cursor = next
        }
        return (result, false)
    }

    /// The slots of a schedule after `after` up to and including `until`, at most `limit` of them (the newest).
    public static func slots(of schedule: any Schedule, after: Date, until: Date, limit: Int = 10_000) -> [Date] {
        var result: [Date] = []
        var cursor = after
        while let next = schedule.next(after: cursor), next <= until {
            result.append(next)
            if result.count > limit { result.removeFirst() }
            cursor = next
        }
        return result
    }
}
