import Foundation
import LoggerService
import Messaging
import Testing

struct GapTrackerTests {
    func event(_ seq: UInt64, instance: String = "h:1", boot: String? = nil) -> StatusEvent {
        StatusEvent(type: "run.started", source: "algorithm", instance: instance, boot: boot, seq: seq)
    }

    @Test func countsExactlyTheEventsThatNeverArrived() {
        var tracker = GapTracker()
        #expect(tracker.observe(event(1)) == .firstSeen(missedBefore: 0))
        #expect(tracker.observe(event(2)) == .inOrder)
        #expect(tracker.observe(event(5)) == .gap(lost: 2))
        #expect(tracker.observe(event(6)) == .inOrder)
        #expect(tracker.observe(event(10)) == .gap(lost: 3))
        #expect(tracker.totalLost == 5)
    }

    @Test func tracksPublishersSeparately() {
        var tracker = GapTracker()
        _ = tracker.observe(event(1, instance: "a"))
        _ = tracker.observe(event(1, instance: "b"))
        #expect(tracker.observe(event(3, instance: "a")) == .gap(lost: 1))
        #expect(tracker.observe(event(2, instance: "b")) == .inOrder)
        #expect(tracker.lost == ["algorithm/a": 1])
    }

    @Test func lateJoinerAndRestartAreNotLosses() {
        var tracker = GapTracker()
        #expect(tracker.observe(event(40)) == .firstSeen(missedBefore: 39))
        #expect(tracker.observe(event(1)) == .restarted)
        #expect(tracker.observe(event(1)) == .stale)
        #expect(tracker.totalLost == 0)
    }

    @Test func aNewBootIsARestartWhateverItsNumbersAndAJumpWithinABootIsALoss() {
        var tracker = GapTracker()
        #expect(tracker.observe(event(1, boot: "a")) == .firstSeen(missedBefore: 0))
        #expect(tracker.observe(event(2, boot: "a")) == .inOrder)
        // The same instance name after a restart (a processor's --name): a new boot, numbers from 1 again,
        // the first of which this subscriber did not see.
        #expect(tracker.observe(event(2, boot: "b")) == .restarted)
        #expect(tracker.observe(event(3, boot: "b")) == .inOrder)
        #expect(tracker.totalLost == 0)
        // Within one boot, a jump is a loss; a number going back is stale (a replay), not a restart.
        #expect(tracker.observe(event(6, boot: "b")) == .gap(lost: 2))
        #expect(tracker.observe(event(1, boot: "b")) == .stale)
        #expect(tracker.totalLost == 2)
    }
}
