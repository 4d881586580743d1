public import Messaging

/// Follows each publisher's sequence numbers and counts the events that never arrived.
///
/// PUB/SUB drops silently (slow joiners, high-water marks, a restarting logger); publishers number their
/// events from 1 without gaps, so a jump in the numbers is exactly the count of lost events.
public struct GapTracker: Sendable {
    /// What one new event revealed.
    public enum Observation: Equatable, Sendable {
        /// The next number, as expected.
        case inOrder
        /// The first event seen from this publisher (`missedBefore` events it sent before we listened).
        case firstSeen(missedBefore: UInt64)
        /// This many events before this one never arrived.
        case gap(lost: UInt64)
        /// The publisher restarted (its numbers went back to the start).
        case restarted
        /// An old or repeated number.
        case stale
    }

    private struct Position: Sendable {
        var boot: String?
        var seq: UInt64
    }

    private var last: [String: Position] = [:]
    /// Events lost, per publisher instance.
    public private(set) var lost: [String: UInt64] = [:]

    /// Creates an empty tracker.
    public init() {}

    /// Records an event's sequence number.
    ///
    /// Numbers count within one process start (`boot`): a new boot is a restart, never a loss, whatever
    /// its first number. For publishers without a boot (older versions), numbers going back to 1 stand for
    /// a restart.
    public mutating func observe(_ event: StatusEvent) -> Observation {
        let key = "\(event.source)/\(event.instance)"
        guard let previous = last[key] else {
            last[key] = Position(boot: event.boot, seq: event.seq)
            return .firstSeen(missedBefore: event.seq > 0 ? event.seq - 1 : 0)
        }
        if let boot = event.boot, boot != previous.boot {
            last[key] = Position(boot: boot, seq: event.seq)
            return .restarted
        }
        if event.seq == previous.seq + 1 {
            last[key]?.seq = event.seq
            return .inOrder
        }
        if event.boot == nil && event.seq == 1 && previous.seq > 1 {
            last[key]?.seq = 1
            return .restarted
        }
        if event.seq <= previous.seq { return .stale }
        let missing = event.seq - previous.seq - 1
        lost[key, default: 0] += missing
        last[key]?.seq = event.seq
        return .gap(lost: missing)
    }

    /// All events lost so far.
    public var totalLost: UInt64 { lost.values.reduce(0, +) }
}
