import Foundation
import LoggerService
import Testing

struct EventLogHealthTests {
    /// A full disk is reported once, retried only after a doubling backoff (not once per event), every event
    /// lost meanwhile is counted, and recovery is reported once with that count.
    @Test func aFullDiskIsReportedOnceAndRetriedWithBackoff() {
        let start = ContinuousClock.now
        var health = EventLogHealth(now: start, initialBackoff: .milliseconds(500), maxBackoff: .seconds(2))
        #expect(health.shouldWrite(at: start))
        #expect(health.succeeded() == .none)
        // The first failure is reported; later ones are not.
        #expect(health.failed(at: start) == .reportFull)
        var attempts: [Duration] = []
        var reports = 0
        // 10 000 events over 10 s (one per millisecond) while the disk stays full.
        for millisecond in 1...10_000 {
            let now = start.advanced(by: .milliseconds(millisecond))
            if health.shouldWrite(at: now) {
                attempts.append(.milliseconds(millisecond))
                if health.failed(at: now) != .none { reports += 1 }
            } else {
                health.skipped()
            }
        }
        #expect(reports == 0)
        // Tries at 0.5 s, then 1 s and 2 s later (doubling), then every 2 s (the cap): 0.5, 1.5, 3.5, 5.5, 7.5, 9.5.
        #expect(attempts == [500, 1500, 3500, 5500, 7500, 9500].map { .milliseconds($0) })
        #expect(health.dropped == 10_001)
        #expect(health.failing)
        // The disk has room again: the next try (at 11.5 s) works and is reported once, with the count.
        let later = start.advanced(by: .milliseconds(11_500))
        #expect(!health.shouldWrite(at: later.advanced(by: .milliseconds(-1))))
        #expect(health.shouldWrite(at: later))
        #expect(health.succeeded() == .reportOK(dropped: 10_001))
        #expect(health.succeeded() == .none)
        #expect(health.shouldWrite(at: later))
        #expect(health.droppedTotal == 10_001)
        // Failing again starts again from the first backoff.
        #expect(health.failed(at: later) == .reportFull)
        #expect(!health.shouldWrite(at: later.advanced(by: .milliseconds(499))))
        #expect(health.shouldWrite(at: later.advanced(by: .milliseconds(500))))
    }
}
