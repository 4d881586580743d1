import AlgorithmService
import PropertyBased
import Testing

struct RunAttemptsTests {
    typealias State = RunAttempts.State
    typealias Event = RunAttempts.Event
    typealias Action = RunAttempts.Action

    static let failure = RunFailure.command("the command exited with status 3")
    static let events: [Event] = [
        .admitted(true), .admitted(false),
        .ran(nil, shuttingDown: false), .ran(nil, shuttingDown: true),
        .ran(failure, shuttingDown: false), .ran(failure, shuttingDown: true),
        .stopped(reason: "replaced", shuttingDown: false), .stopped(reason: "replaced", shuttingDown: true),
        .stopped(reason: nil, shuttingDown: false), .stopped(reason: nil, shuttingDown: true),
        .handedOff(nil, shuttingDown: false), .handedOff(nil, shuttingDown: true),
        .handedOff(.handOff("disk full"), shuttingDown: false), .handedOff(.handOff("disk full"), shuttingDown: true),
        .backedOff, .backOffInterrupted,
    ]

    /// The machine in a given state (reached by its own transitions, the only way there).
    static func machine(at state: State, retries: Int = 1) -> RunAttempts {
        var machine = RunAttempts(retries: retries)
        let path: [Event]
        switch state {
        case .starting(1): path = []
        case .running(1): path = [.admitted(true)]
        case .handingOff(1): path = [.admitted(true), .ran(nil, shuttingDown: false)]
        case .backingOff(1): path = [.admitted(true), .ran(failure, shuttingDown: false)]
        case .starting(2): path = [.admitted(true), .ran(failure, shuttingDown: false), .backedOff]
        case .ended(.notRunnable): path = [.admitted(false)]
        default: preconditionFailure("no path to \(state)")
        }
        for event in path { _ = machine.handle(event) }
        #expect(machine.state == state)
        return machine
    }

    /// Every transition, written out: the table is the specification. Anything not listed is refused.
    @Test func everyTransition() {
        let expected: [(State, Event, State, Action)] = [
            (.starting(attempt: 1), .admitted(true), .running(attempt: 1), .run(attempt: 1)),
            (.starting(attempt: 1), .admitted(false), .ended(.notRunnable), .end(.notRunnable)),
            (.running(attempt: 1), .ran(nil, shuttingDown: false), .handingOff(attempt: 1), .handOff),
            (.running(attempt: 1), .ran(nil, shuttingDown: true), .ended(.interrupted(.run)), .end(.interrupted(.run))),
            (
                .running(attempt: 1), .ran(Self.failure, shuttingDown: false), .backingOff(attempt: 1),
                .retry(after: .seconds(1), failure: Self.failure, attempt: 1)
            ),
            (.running(attempt: 1), .ran(Self.failure, shuttingDown: true), .ended(.interrupted(.run)), .end(.interrupted(.run))),
            (
                .running(attempt: 1), .stopped(reason: "replaced", shuttingDown: false), .ended(.cancelled(reason: "replaced")),
                .end(.cancelled(reason: "replaced"))
            ),
            (
                .running(attempt: 1), .stopped(reason: "replaced", shuttingDown: true), .ended(.interrupted(.stopped)),
                .end(.interrupted(.stopped))
            ),
            (
                .running(attempt: 1), .stopped(reason: nil, shuttingDown: false), .ended(.interrupted(.stopped)),
                .end(.interrupted(.stopped))
            ),
            (.running(attempt: 1), .stopped(reason: nil, shuttingDown: true), .ended(.interrupted(.stopped)), .end(.interrupted(.stopped))),
            (.handingOff(attempt: 1), .handedOff(nil, shuttingDown: false), .ended(.finished), .end(.finished)),
            // A hand-off that succeeded is kept even if the service is stopping: the result is durable.
            (.handingOff(attempt: 1), .handedOff(nil, shuttingDown: true), .ended(.finished), .end(.finished)),
            (
                .handingOff(attempt: 1), .handedOff(.handOff("disk full"), shuttingDown: false), .backingOff(attempt: 1),
                .retry(after: .seconds(1), failure: .handOff("disk full"), attempt: 1)
            ),
            (
                .handingOff(attempt: 1), .handedOff(.handOff("disk full"), shuttingDown: true), .ended(.interrupted(.handOff)),
                .end(.interrupted(.handOff))
            ),
            (.backingOff(attempt: 1), .backedOff, .starting(attempt: 2), .start(attempt: 2)),
            (.backingOff(attempt: 1), .backOffInterrupted, .ended(.interrupted(.backOff)), .end(.interrupted(.backOff))),
        ]
        let states: [State] = [.starting(attempt: 1), .running(attempt: 1), .handingOff(attempt: 1), .backingOff(attempt: 1)]
        for state in states {
            for event in Self.events {
                var machine = Self.machine(at: state)
                let action = machine.handle(event)
                if let row = expected.first(where: { $0.0 == state && $0.1 == event }) {
                    #expect(machine.state == row.2, "\(state) + \(event)")
                    #expect(action == row.3, "\(state) + \(event)")
                } else {
                    #expect(action == nil, "\(state) + \(event) should be refused")
                    #expect(machine.state == state, "a refused event moved \(state)")
                }
            }
        }
    }

    /// An ended run takes no event.
    @Test func endedIsFinal() {
        for event in Self.events {
            var machine = Self.machine(at: .ended(.notRunnable))
            #expect(machine.handle(event) == nil)
            #expect(machine.state == .ended(.notRunnable))
        }
    }

    /// The last attempt's failure fails the run; no more retries than configured.
    @Test func theLastFailureFailsTheRun() {
        var machine = Self.machine(at: .starting(attempt: 2), retries: 1)
        #expect(machine.handle(.admitted(true)) == .run(attempt: 2))
        #expect(machine.handle(.ran(Self.failure, shuttingDown: false)) == .end(.failed(Self.failure)))
        var none = RunAttempts(retries: 0)
        _ = none.handle(.admitted(true))
        #expect(none.handle(.ran(Self.failure, shuttingDown: false)) == .end(.failed(Self.failure)))
        #expect(RunAttempts(retries: -3).retries == 0)
    }

    @Test func backOffDoublesFromOneSecondUpToAMinute() {
        #expect((1...9).map { RunAttempts.backOff(after: $0) } == [1, 2, 4, 8, 16, 32, 60, 60, 60].map { Duration.seconds($0) })
        #expect(RunAttempts.backOff(after: 0) == .seconds(1))
    }

    /// The words users see did not change with the typed failures.
    @Test func failureTextsAreTheOnesUsersKnow() {
        #expect(RunFailure.unknownJob("x").description == "unknown job \"x\": not in this algorithm's configuration")
        #expect(RunFailure.rawDirectory("e").description == "cannot create the raw result directory: e")
        #expect(RunFailure.demo("e").description == "the demo algorithm failed: e")
        #expect(RunFailure.command("the command exited with status 3").description == "the command exited with status 3")
        #expect(RunFailure.cannotStart(program: "python3", error: "e").description == "cannot start python3: e")
        #expect(RunFailure.handOff("e").description == "cannot keep the result: e")
        #expect(RunFailure.interrupted.description == "interrupted")
    }

    /// Random event sequences: the machine never leaves an end, never runs more than `1 + retries`
    /// attempts, finishes only through a successful hand-off, fails only after its last attempt failed, and
    /// every retry waits the documented back-off.
    @Test func randomEventSequencesKeepTheRules() async {
        await propertyCheck(count: 2000, input: Gen.int(in: 0...3), Gen.int(in: 0..<Self.events.count).array(of: 0...40)) {
            retries,
            codes in
            var machine = RunAttempts(retries: retries)
            var starts = 1
            var failures = 0
            for code in codes {
                let event = Self.events[code]
                let before = machine.state
                guard let action = machine.handle(event) else {
                    #expect(machine.state == before)
                    continue
                }
                if case .ended = before { Issue.record("an ended run moved: \(before) + \(event)") }
                switch action {
                case .start(let attempt):
                    starts += 1
                    #expect(attempt == starts)
                case .retry(let delay, _, let attempt):
                    failures += 1
                    #expect(attempt == starts && attempt <= retries)
                    #expect(delay == RunAttempts.backOff(after: attempt))
                case .end(.finished):
                    #expect(event == .handedOff(nil, shuttingDown: false) || event == .handedOff(nil, shuttingDown: true))
                case .end(.failed):
                    failures += 1
                    #expect(starts == retries + 1 && failures == retries + 1)
                case .run, .handOff, .end:
                    break
                }
                #expect(starts <= retries + 1)
            }
        }
    }
}
