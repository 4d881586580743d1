import Foundation
import Messaging
import PropertyBased
import Config
import ServiceKit
import SchedulerService
import Testing

struct OverlapDecisionTests {
    typealias Action = OverlapDecision.Action

    /// Every policy, with and without runs in flight, queued runs, and newer slots in the same step.
    @Test(arguments: Configuration.OverlapPolicy.allCases)
    func everyCase(policy: Configuration.OverlapPolicy) {
        for hasQueued in [false, true] {
            for isLast in [false, true] {
                // Nothing in flight: every policy fires, but a slot with a newer one in its step is replaced at once.
                let alone = OverlapDecision.decide(policy, running: [], confirmed: [], hasQueued: hasQueued, isLast: isLast)
                if policy == .replace && !isLast {
                    #expect(alone == .skip("replaced by a newer slot before it was sent (overlap: replace)"))
                } else {
                    #expect(alone == .fire)
                }
                let action = OverlapDecision.decide(policy, running: ["a", "b"], confirmed: ["a"], hasQueued: hasQueued, isLast: isLast)
                let expected: Action
                switch policy {
                case .allow: expected = .fire
                case .forbid: expected = .skip("previous run b still running (overlap: forbid)")
                case .queue: expected = .queue("waiting for \(hasQueued ? "the runs queued before it" : "b")")
                case .replace:
                    // Only runs that were in flight are at the algorithm to cancel; `b` was fired in this step.
                    expected =
                        isLast ? .replace(cancelling: ["a"]) : .skip("replaced by a newer slot before it was sent (overlap: replace)")
                }
                #expect(action == expected, "\(policy) queued \(hasQueued) last \(isLast)")
            }
        }
    }

    static func requests(_ count: Int) -> [RunRequest] {
        (0..<count).map { index in
            let slot = Date(timeIntervalSince1970: Double(60 * (index + 1)))
            return RunRequest.scheduled(job: "j", slot: slot, firedAt: slot)
        }
    }

    /// A step's plan over random slots and runs in flight keeps each policy's promise.
    @Test func plansKeepEachPolicysPromise() async {
        await propertyCheck(
            count: 500,
            input: Gen.int(in: 0..<Configuration.OverlapPolicy.allCases.count),
            Gen.int(in: 0...5),
            Gen.int(in: 0...3),
            Gen.bool
        ) { code, slots, inFlightCount, hasQueued in
            let policy = Configuration.OverlapPolicy.allCases[code]
            let fire = Self.requests(slots)
            let inFlight = (0..<inFlightCount).map { "j@old\($0)" }
            let skip = [(Date(timeIntervalSince1970: 30), "missed")]
            let plan = OverlapDecision.plan(
                job: "j",
                requests: fire,
                skip: skip,
                firedAt: Date(timeIntervalSince1970: 1000),
                overlap: policy,
                inFlight: inFlight,
                hasQueued: hasQueued
            )
            #expect(plan.records.count == slots + 1)
            #expect(plan.records.map(\.request.logicalTime) == plan.records.map(\.request.logicalTime).sorted())
            let fired = plan.records.filter { $0.state == .fired }.map(\.request.runID)
            let queued = plan.records.filter { $0.state == .queued }.count
            guard slots > 0 else {
                #expect(fired.isEmpty && plan.cancels.isEmpty)
                return
            }
            let free = inFlight.isEmpty
            switch policy {
            case .allow:
                #expect(fired.count == slots)
            case .forbid:
                #expect(fired.count == (free ? 1 : 0))
            case .queue:
                #expect(fired.count == (free ? 1 : 0) && queued == slots - fired.count)
            case .replace:
                #expect(fired == [fire[slots - 1].runID])
                #expect(plan.cancels == inFlight)
            }
            if policy != .replace { #expect(plan.cancels.isEmpty) }
        }
    }
}

struct InFlightConfirmationTests {
    static let start = Date(timeIntervalSince1970: 10_000)
    static let request = RunRequest.scheduled(job: "j", slot: Date(timeIntervalSince1970: 60), firedAt: Date(timeIntervalSince1970: 60))

    @Test func nothingInFlightOrAllAnsweredSinceIsConfirmedAtOnce() {
        var confirmation = InFlightConfirmation(since: Self.start)
        #expect(confirmation.step(fires: [], now: Self.start) == .confirmed([], afterWaiting: false))
        #expect(
            confirmation.step(fires: [(request: Self.request, lastAnswer: Self.start)], now: Self.start)
                == .confirmed([Self.request.runID], afterWaiting: false)
        )
    }

    /// An answer to a question asked before `since` does not count: the run is asked about, the question
    /// stamped with the time of asking; again every 2 s, announced once; confirmed once answered.
    @Test func unansweredRunsAreAskedAboutEveryTwoSeconds() {
        var confirmation = InFlightConfirmation(since: Self.start)
        var asked = Self.request
        asked.firedAt = Self.start
        let stale: [(request: RunRequest, lastAnswer: Date?)] = [(Self.request, Self.start.addingTimeInterval(-1))]
        #expect(confirmation.step(fires: stale, now: Self.start) == .ask([asked], announceWaiting: false))
        #expect(confirmation.step(fires: stale, now: Self.start.addingTimeInterval(1.9)) == .wait)
        asked.firedAt = Self.start.addingTimeInterval(2)
        #expect(confirmation.step(fires: stale, now: Self.start.addingTimeInterval(2)) == .ask([asked], announceWaiting: true))
        asked.firedAt = Self.start.addingTimeInterval(4)
        #expect(confirmation.step(fires: stale, now: Self.start.addingTimeInterval(4)) == .ask([asked], announceWaiting: false))
        let answered: [(request: RunRequest, lastAnswer: Date?)] = [(Self.request, Self.start.addingTimeInterval(4))]
        #expect(
            confirmation.step(fires: answered, now: Self.start.addingTimeInterval(4.1))
                == .confirmed([Self.request.runID], afterWaiting: true)
        )
    }
}
