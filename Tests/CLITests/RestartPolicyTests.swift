import Testing

@testable import CLI

struct RestartPolicyTests {
    let policy = Supervisor.RestartPolicy()

    /// A child that keeps dying at once waits 0.5 s, then twice as long each time, never more than 30 s.
    @Test func backoffDoublesUpToTheMaximum() {
        var previous: Duration?
        var delays: [Duration] = []
        for _ in 0..<9 {
            let delay = policy.delay(previous: previous, ran: .seconds(1))
            delays.append(delay)
            previous = delay
        }
        #expect(
            delays == [
                .milliseconds(500), .seconds(1), .seconds(2), .seconds(4), .seconds(8), .seconds(16), .seconds(30), .seconds(30),
                .seconds(30),
            ]
        )
    }

    /// A child that ran longer than 30 s was healthy: it is restarted after the first delay again.
    @Test func aHealthyRunResetsTheBackoff() {
        #expect(policy.delay(previous: .seconds(30), ran: .seconds(31)) == .milliseconds(500))
        #expect(policy.delay(previous: .seconds(30), ran: .seconds(30)) == .seconds(30))
        #expect(policy.delay(previous: nil, ran: .zero) == .milliseconds(500))
    }
}
