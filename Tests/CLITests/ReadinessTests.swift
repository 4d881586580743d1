import Foundation
import Messaging
import Synchronization
import Testing
import ZMQ

@testable import CLI

struct ReadinessTests {
    /// The probe is asked again after each no, and the wait ends at the first yes.
    @Test func readyAtTheFirstYes() async {
        let asked = Mutex(0)
        let ready = await Supervisor.waitUntilReady(within: .seconds(60), pause: .milliseconds(1)) {
            asked.withLock { count in
                count += 1
                return count == 3
            }
        }
        #expect(ready)
        #expect(asked.withLock { $0 } == 3)
    }

    /// A probe that never says yes: the wait gives up at its deadline, not before, after asking more than once.
    @Test func givesUpAtTheDeadline() async {
        let asked = Mutex(0)
        let clock = ContinuousClock()
        let start = clock.now
        let ready = await Supervisor.waitUntilReady(within: .milliseconds(200), clock: clock, pause: .milliseconds(20)) {
            asked.withLock { $0 += 1 }
            return false
        }
        #expect(!ready)
        #expect(clock.now - start >= .milliseconds(200))
        #expect(asked.withLock { $0 } > 1)
    }

    /// `baton up`'s probe: a status query answered on the logger's `query` endpoint says the bus is up, and it
    /// says so as soon as the answer comes, even when the logger binds after the first question was sent.
    @Test(.timeLimit(.minutes(1)))
    func theLoggerIsUpWhenItsQuerySocketAnswers() async throws {
        let endpoint = "ipc://\(FileManager.default.temporaryDirectory.path)/baton-ready-\(UUID().uuidString).sock"
        #expect(await Baton.Up.loggerAnswers(context: Context(), on: endpoint) == false)
        let context = Context()
        let reply = try await AsyncSocket(context: context, configuration: .init(type: .reply, bind: [endpoint]))
        async let answered = Baton.Up.loggerAnswers(context: Context(), on: endpoint)
        let question = try await reply.receive()
        #expect(try Wire.decode(StatusQuery.self, from: question).message == StatusQuery())
        try await reply.send(Wire.encode(StatusReport(time: Date())))
        #expect(await answered)
        await reply.close()
    }
}
