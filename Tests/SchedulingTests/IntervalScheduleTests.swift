import Foundation
import Scheduling
import Testing

struct IntervalScheduleTests {
    @Test func slotsAreWholeIntervalsFromTheAnchor() {
        let schedule = IntervalSchedule(every: .seconds(10))
        #expect(schedule.slot(after: Date(timeIntervalSince1970: 95)) == Date(timeIntervalSince1970: 100))
        #expect(schedule.slot(after: Date(timeIntervalSince1970: 100)) == Date(timeIntervalSince1970: 110))
        let anchored = IntervalSchedule(every: .seconds(10), anchor: Date(timeIntervalSince1970: 3))
        #expect(anchored.slot(after: Date(timeIntervalSince1970: 95)) == Date(timeIntervalSince1970: 103))
        #expect(anchored.slot(after: Date(timeIntervalSince1970: -8)) == Date(timeIntervalSince1970: -7))
    }

    @Test func tenThousandFiresHaveNoDrift() {
        let schedule = IntervalSchedule(every: .milliseconds(100), anchor: Date(timeIntervalSince1970: 1_000_000))
        var slot = schedule.slot(after: Date(timeIntervalSince1970: 1_000_000))
        for _ in 1..<10_000 {
            // Each fire is a little late; the next slot must still be on the grid.
            slot = schedule.slot(after: slot.addingTimeInterval(0.0003))
        }
        #expect(slot == Date(timeIntervalSince1970: 1_001_000))
    }
}
