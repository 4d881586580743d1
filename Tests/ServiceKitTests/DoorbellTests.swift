import Foundation
import ServiceKit
import Testing

struct DoorbellTests {
    @Test func aRingBeforeTheWaitIsKept() async {
        let doorbell = Doorbell()
        doorbell.ring()
        doorbell.ring()
        #expect(await doorbell.wait())
        // Two rings while nobody waited count as one.
        #expect(await doorbell.wait(until: Date().addingTimeInterval(0.01)))
    }

    @Test func aCancelledWaitLeavesTheDoorbellUsable() async {
        let doorbell = Doorbell()
        let waiting = Task { await doorbell.wait() }
        waiting.cancel()
        #expect(await waiting.value == false)
        // A timed wait that times out cancels its inner wait; later waits still work.
        #expect(await doorbell.wait(until: Date().addingTimeInterval(0.01)))
        let later = Task { await doorbell.wait() }
        doorbell.ring()
        #expect(await later.value)
    }
}
