import Foundation
import Logging
import Messaging
import Config
import ServiceKit
import SchedulerService
import Testing
import ZMQ

/// What the scheduler's `control` socket answers `baton audit`.
struct ControlServerTests {
    @Test func firesAreListedWithTheLastSlotHandledAndWhetherTheJobIsPaused() async throws {
        try await DispatcherTests.withDispatcher(.allow) { dispatcher, ledger, _, job in
            await dispatcher.dispatch(DispatcherTests.request(60), job: job, lateness: 0)
            try await ledger.recordFire(DispatcherTests.request(120), state: .skipped, detail: "misfire policy skip")
            let control = JobControl(ledger: ledger)
            try await control.pause("j")
            let context = Context()
            let socket = try await AsyncSocket(
                context: context,
                configuration: .init(type: .reply, bind: ["inproc://control-\(UUID().uuidString)"])
            )
            let server = ControlServer(
                jobs: [job],
                socket: socket.channel,
                ledger: ledger,
                dispatcher: dispatcher,
                control: control,
                logger: Logger(label: "test")
            )
            let reply = try await server.handle(ControlRequest(command: .fires, job: "j"))
            await socket.close()
            #expect(reply.ok)
            #expect(reply.fires?.map(\.request.runID) == [DispatcherTests.request(60).runID, DispatcherTests.request(120).runID])
            #expect(reply.fires?.map(\.state) == [.fired, .skipped])
            #expect(reply.fires?.last?.detail == "misfire policy skip")
            #expect(reply.lastSlot == Date(timeIntervalSince1970: 120))
            #expect(reply.paused == true)
            let unknown = try await server.handle(ControlRequest(command: .fires, job: "other"))
            #expect(!unknown.ok)
        }
    }
}
