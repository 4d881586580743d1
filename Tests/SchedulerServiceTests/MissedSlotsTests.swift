import Foundation
import SchedulerService
import Config
import Testing

struct MissedSlotsTests {
    let now = Date(timeIntervalSince1970: 10_000)
    var slots: [Date] { [9_940, 9_960, 9_980].map { Date(timeIntervalSince1970: $0) } }

    @Test func allRunsEveryMissedSlot() {
        let decision = MissedSlots.decide(slots, policy: .all, grace: nil, now: now, cause: "down")
        #expect(decision.fire == slots)
        #expect(decision.skip.isEmpty)
    }

    @Test func latestRunsTheNewestAndRecordsTheRest() {
        let decision = MissedSlots.decide(slots, policy: .latest, grace: nil, now: now, cause: "down")
        #expect(decision.fire == [slots[2]])
        #expect(decision.skip.map(\.0) == [slots[0], slots[1]])
        #expect(decision.skip.allSatisfy { $0.1.contains("latest") })
    }

    @Test func skipRecordsEverySlot() {
        let decision = MissedSlots.decide(slots, policy: .skip, grace: nil, now: now, cause: "down")
        #expect(decision.fire.isEmpty)
        #expect(decision.skip.count == 3)
    }

    @Test func slotsOlderThanTheGraceAreSkippedWhateverThePolicy() {
        let decision = MissedSlots.decide(slots, policy: .all, grace: .seconds(45), now: now, cause: "down")
        #expect(decision.fire == [slots[1], slots[2]])
        #expect(decision.skip.map(\.0) == [slots[0]])
        #expect(decision.skip[0].1.contains("grace"))
    }
}
