import Foundation
import Testing

/// Runs the black-box harnesses in `scripts/` against the built executables: `chaos.py` (60 s of SIGKILLs and
/// SIGSTOPs, then its own slot-by-slot oracle, one merged row per run of its pipelined job (parts, a per-part
/// stage, a merge, the store) and `baton audit`) and `bus_churn.py --start` (prefix subscribers
/// coming and going on the status bus). Both exit 0 only if every check passed; their output is shown otherwise.
@Suite(.serialized)
struct ChaosHarnessTests {
    static let repository = TestStack.repository

    @Test(.timeLimit(.minutes(10)))
    func chaosHarnessFindsEverySlotStoredOnce() async throws {
        let outcome = try await Scripts.run(
            "python3",
            ["scripts/chaos.py", "--duration", "60", "--bin", Self.repository + "/.build/debug"]
        )
        #expect(outcome.status == 0, "scripts/chaos.py exited \(outcome.status):\n\(outcome.output)")
    }

    /// The same under `baton up`, which is itself killed with -9 now and then: its services must die with it.
    @Test(.timeLimit(.minutes(10)))
    func chaosUnderBatonUpLeavesNothingBehind() async throws {
        let outcome = try await Scripts.run(
            "python3",
            ["scripts/chaos.py", "--duration", "40", "--mode", "up", "--bin", Self.repository + "/.build/debug"]
        )
        #expect(outcome.status == 0, "scripts/chaos.py --mode up exited \(outcome.status):\n\(outcome.output)")
    }

    @Test(.timeLimit(.minutes(5)))
    func statusBusSurvivesPrefixSubscriberChurn() async throws {
        let python = try #require(
            await Scripts.python(with: ["zmq"]),
            "no python3 with pyzmq (pip install pyzmq, or apt-get install python3-zmq)"
        )
        let outcome = try await Scripts.run(
            python,
            ["scripts/bus_churn.py", "--start", "--bin", Self.repository + "/.build/debug"]
        )
        #expect(outcome.status == 0, "scripts/bus_churn.py --start exited \(outcome.status):\n\(outcome.output)")
    }
}
