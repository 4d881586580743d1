import Messaging
import PropertyBased
import Testing

struct RunStateTests {
    /// Every transition of the algorithm's run machine, written out: the table is the specification.
    @Test(arguments: [
        (RunState.accepted, RunState.Event.start, RunState.running),
        (.running, .start, .running),
        (.running, .succeed, .finished),
        (.accepted, .fail, .failed),
        (.running, .fail, .failed),
        (.accepted, .cancel, .cancelled),
        (.running, .cancel, .cancelled),
    ])
    func allowed(from: RunState, event: RunState.Event, to: RunState) {
        #expect(from.applying(event) == to)
    }

    /// Anything not in the table is refused: a run never succeeds without running, and an outcome is final.
    @Test func everythingElseIsRefused() {
        let allowed: Set<String> = [
            "accepted start", "running start", "running succeed", "accepted fail", "running fail", "accepted cancel", "running cancel",
        ]
        for state in RunState.allCases {
            for event in [RunState.Event.start, .succeed, .fail, .cancel] where !allowed.contains("\(state.rawValue) \(event)") {
                #expect(state.applying(event) == nil, "\(state) \(event)")
            }
        }
        #expect(RunState.allCases.filter(\.isTerminal) == [.finished, .failed, .cancelled])
    }
}

struct FireStateTests {
    @Test func reportsMoveAFireForwardOnly() {
        #expect(FireState.fired.applying(.reported(.accepted)) == .accepted)
        #expect(FireState.fired.applying(.reported(.running)) == .running)
        #expect(FireState.fired.applying(.reported(.finished)) == .finished)
        #expect(FireState.accepted.applying(.reported(.running)) == .running)
        #expect(FireState.accepted.applying(.reported(.cancelled)) == .cancelled)
        #expect(FireState.running.applying(.reported(.failed)) == .failed)
        // Stale or repeated reports are not news.
        #expect(FireState.accepted.applying(.reported(.accepted)) == nil)
        #expect(FireState.running.applying(.reported(.accepted)) == nil)
        #expect(FireState.running.applying(.reported(.running)) == nil)
        // Queued fires are released or cancelled at the scheduler; reports do not concern them.
        #expect(FireState.queued.applying(.released) == .fired)
        #expect(FireState.queued.applying(.cancel) == .cancelled)
        #expect(FireState.queued.applying(.reported(.finished)) == nil)
        #expect(FireState.fired.applying(.cancel) == nil)
    }

    @Test func terminalStatesAreAbsorbing() {
        let events: [FireState.Event] = [.released, .cancel] + RunState.allCases.map { .reported($0) }
        for state in FireState.allCases where state.isTerminal {
            for event in events { #expect(state.applying(event) == nil, "\(state) \(event)") }
        }
    }

    /// One run's whole life through both machines, with the scheduler's view fed by a lossy report channel:
    /// reports lost, the scheduler killed with reports in its socket, the algorithm restarted, requests
    /// delivered again, cancels, and reconciliation (a request sent again is answered with the run's state).
    /// Whatever the interleaving: the scheduler never runs ahead of the algorithm, never changes an outcome,
    /// and once the run has ended and reconciliation has had its turn, both agree on one terminal state.
    @Test func randomInterleavingsEndInOneAgreedOutcome() async {
        await propertyCheck(count: 2000, input: Gen.int(in: 0...9).array(of: 0...80)) { events in
            var world = World()
            for event in events {
                let before = world.fire
                world.step(event)
                if before.isTerminal { #expect(world.fire == before, "an outcome changed: \(before) → \(world.fire) by \(events)") }
                if world.fire.isTerminal {
                    #expect(world.run.map(FireState.init) == world.fire, "fire \(world.fire) vs run \(String(describing: world.run))")
                }
                #expect(world.fire.rank <= (world.run.map(FireState.init)?.rank ?? 0), "the scheduler ran ahead: \(events)")
            }
            // The algorithm finishes what it has; then reconciliation settles the scheduler.
            world.finishRun()
            world.settle()
            #expect(world.fire.isTerminal && world.run.map(FireState.init) == world.fire, "unsettled after \(events): \(world)")
        }
    }
}

struct DeliveryStateTests {
    /// The outbox's SQL takes its state lists from the machine; these are the lists it had when written by hand.
    @Test func sqlListsFollowTheMachine() {
        #expect(DeliveryState.sqlStates(accepting: .send) == "'pending', 'sent'")
        #expect(DeliveryState.sqlStates(accepting: .renew) == "'sent'")
        #expect(DeliveryState.sqlStates(accepting: .leaseExpired(exhausted: false)) == "'sent'")
        #expect(DeliveryState.sqlStates(accepting: .ack) == "'pending', 'sent', 'dead'")
        #expect(DeliveryState.sqlStates(accepting: .fail(exhausted: true)) == "'pending', 'sent'")
        #expect(DeliveryState.sqlStates(accepting: .kill) == "'pending', 'sent', 'dead'")
    }

    /// A part through random deliveries, lease expiries, failures, hand-backs and acks, with a retry budget:
    /// it is acknowledged exactly when a processor stored it, stays acknowledged, and is dead only once its
    /// retries are used up (or it was killed), never both.
    @Test func randomDeliveriesEndAckedOrDeadByTheRules() async {
        await propertyCheck(count: 1000, input: Gen.int(in: 0...5).array(of: 0...60)) { events in
            let maxAttempts = 3
            var state = DeliveryState.pending
            var failures = 0
            var stored = false
            var killed = false
            for code in events {
                let event: DeliveryState.Event
                switch code {
                case 0: event = .send
                case 1: event = .renew
                case 2: event = .leaseExpired(exhausted: failures + 1 >= maxAttempts)
                case 3: event = .fail(exhausted: failures + 1 >= maxAttempts)
                case 4: event = .handBack
                default: event = .ack
                }
                guard let next = state.applying(event) else { continue }
                switch event {
                case .leaseExpired, .fail: failures += 1
                case .ack: stored = true
                case .kill: killed = true
                default: break
                }
                if state == .acked { #expect(next == .acked || event == .requeue, "acked left by \(event)") }
                state = next
            }
            #expect((state == .acked) == stored, "\(events)")
            if state == .dead { #expect(failures >= maxAttempts || killed, "\(events)") }
        }
    }
}

/// A scheduler's fire and the algorithm's run, with the report channel between them.
private struct World: CustomStringConvertible {
    var fire = FireState.fired
    var run: RunState?
    var reports: [RunState] = []

    var description: String { "fire \(fire), run \(String(describing: run)), reports \(reports)" }

    mutating func step(_ event: Int) {
        switch event {
        case 0: deliverRequest()
        case 1: algorithm(.start)
        case 2: algorithm(.succeed)
        case 3: algorithm(.fail)
        case 4: cancel()
        case 5: deliverReport()
        case 6: if !reports.isEmpty { reports.removeFirst() }  // lost on the way
        case 7: reports.removeAll()  // the scheduler killed with reports in its socket
        case 8: if run == .running { algorithm(.start) }  // the algorithm restarted: an interrupted run runs again
        default: reconcile()
        }
    }

    /// The algorithm receives the request: records it, or answers with what it knows.
    mutating func deliverRequest() {
        if let run {
            reports.append(run)
        } else {
            run = .accepted
            reports.append(.accepted)
        }
    }

    mutating func algorithm(_ event: RunState.Event) {
        guard let next = run?.applying(event) else { return }
        run = next
        reports.append(next)
    }

    /// A cancel reaches the algorithm (it remembers a cancel for a run it does not know yet).
    mutating func cancel() {
        guard let run else {
            self.run = .cancelled
            reports.append(.cancelled)
            return
        }
        let cancelled = run.applying(.cancel) ?? run
        self.run = cancelled
        reports.append(cancelled)
    }

    mutating func deliverReport() {
        guard !reports.isEmpty else { return }
        let report = reports.removeFirst()
        fire = fire.applying(.reported(report)) ?? fire
    }

    /// The scheduler asks about a fire in flight by sending its request again.
    mutating func reconcile() {
        if fire.isInFlight { deliverRequest() }
    }

    mutating func finishRun() {
        if run == nil { deliverRequest() }
        algorithm(.start)
        algorithm(.succeed)
    }

    mutating func settle() {
        for _ in 0..<3 {
            reconcile()
            while !reports.isEmpty { deliverReport() }
        }
    }
}

extension FireState {
    /// Progress order, for "never ahead of the algorithm".
    fileprivate var rank: Int {
        switch self {
        case .fired, .queued, .skipped: 0
        case .accepted: 1
        case .running: 2
        case .finished, .failed, .cancelled: 3
        }
    }
}
