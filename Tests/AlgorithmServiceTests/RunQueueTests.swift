import Foundation
import Messaging
import Testing

@testable import AlgorithmService

struct RunQueueTests {
    static func request(_ minute: Int, _ trigger: RunRequest.Trigger = .schedule) -> RunRequest {
        let slot = Date(timeIntervalSince1970: Double(60 * minute))
        return RunRequest(runID: RunID.make(job: "j", logicalTime: slot), job: "j", logicalTime: slot, firedAt: slot, trigger: trigger)
    }

    /// Backfills wait in a lane of their own, so a live run behind a long backfill is taken at once; each
    /// lane is first come, first run, and a dropped run is not taken.
    @Test func lanesAreSeparateAndInOrder() async {
        let queue = RunQueue()
        for minute in 1...3 { await queue.push(Self.request(minute, .backfill)) }
        await queue.push(Self.request(10))
        await queue.push(Self.request(11, .manual))
        #expect(await queue.next(.live)?.runID == Self.request(10).runID)
        #expect(await queue.remove(Self.request(2, .backfill).runID))
        #expect(await !queue.remove(Self.request(2, .backfill).runID))
        #expect(await queue.next(.backfill)?.runID == Self.request(1).runID)
        #expect(await queue.next(.backfill)?.runID == Self.request(3).runID)
        #expect(await queue.next(.live)?.runID == Self.request(11).runID)
    }

    /// A worker waiting on an empty lane gets the next run pushed to it; closing hands every waiter nil.
    @Test func waitersAreHandedRunsAndReleasedOnClose() async {
        let queue = RunQueue()
        async let live = queue.next(.live)
        async let backfill = queue.next(.backfill)
        // Whichever order the waits registered in, each lane's waiter gets only its lane's run.
        await queue.push(Self.request(1))
        #expect(await live?.runID == Self.request(1).runID)
        await queue.close()
        #expect(await backfill == nil)
        #expect(await queue.next(.live) == nil)
    }
}
