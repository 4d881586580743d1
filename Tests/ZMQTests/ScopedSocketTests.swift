import Foundation
import Testing
import ZMQ

struct ScopedSocketTests {
    struct Failure: Error {}

    /// The scope closes its socket when the body returns: an escaped handle fails as closed, and the endpoint
    /// is free to bind again.
    @Test(.timeLimit(.minutes(1)))
    func socketIsClosedWhenTheBodyReturns() async throws {
        let context = Context()
        let endpoint = "inproc://scoped-\(UUID().uuidString)"
        let escaped = try await context.withInbound(.init(type: .pull, bind: [endpoint])) { inbound in inbound }
        let error = await #expect(throws: ZMQError.self) { try await escaped.receive() }
        #expect(error?.isClosed == true)
        try await context.withInbound(.init(type: .pull, bind: [endpoint])) { _ in }
    }

    /// The same when the body throws: the error comes out unchanged and the socket is closed.
    @Test(.timeLimit(.minutes(1)))
    func socketIsClosedWhenTheBodyThrows() async throws {
        let context = Context()
        let endpoint = "inproc://scoped-\(UUID().uuidString)"
        var escaped: SocketOutbound?
        do {
            try await context.withOutbound(.init(type: .push, bind: [endpoint])) { outbound in
                escaped = outbound
                throw Failure()
            }
            Issue.record("the body's error did not come out")
        } catch is Failure {}
        #expect(escaped?.post([Data("x".utf8)]) == false)
        try await context.withOutbound(.init(type: .push, bind: [endpoint])) { _ in }
    }

    /// A socket that cannot be bound never runs the body.
    @Test func failedOpenDoesNotRunTheBody() async throws {
        let context = Context()
        var ran = false
        do {
            try await context.withInbound(.init(type: .pull, bind: ["tcp://no-such-host-x:1"])) { _ in ran = true }
            Issue.record("the socket opened")
        } catch is ZMQError {}
        #expect(!ran)
    }

    /// Inbound messages as a sequence, in order; iteration ends when the socket's scope closes it.
    @Test(.timeLimit(.minutes(1)))
    func inboundIsASequenceOfMessages() async throws {
        let context = Context()
        let endpoint = "inproc://sequence-\(UUID().uuidString)"
        try await context.withInbound(.init(type: .pull, bind: [endpoint])) { inbound in
            try await context.withOutbound(.init(type: .push, connect: [endpoint])) { outbound in
                for index in 0..<5 { try await outbound.send([Data("\(index)".utf8)]) }
            }
            var seen: [String] = []
            for try await message in inbound {
                seen.append(String(decoding: message[0], as: UTF8.self))
                if seen.count == 5 { break }
            }
            #expect(seen == ["0", "1", "2", "3", "4"])
        }
    }

    /// REQ/REP through one channel each.
    @Test(.timeLimit(.minutes(1)))
    func requestReplyChannels() async throws {
        let context = Context()
        try await context.withSocket(.init(type: .reply, bind: ["tcp://127.0.0.1:*"])) { rep in
            try await context.withSocket(.init(type: .request, connect: rep.boundEndpoints)) { req in
                try await withThrowingDiscardingTaskGroup { group in
                    group.addTask {
                        let request = try await rep.receive()
                        try await rep.send([Data("re:".utf8) + request[0]])
                    }
                    try await req.send([Data("a".utf8)])
                    #expect(try await req.receive(timeout: .seconds(10)) == [Data("re:a".utf8)])
                }
            }
        }
    }

    /// Demand-driven: a PULL with HWM 1 that nobody reads holds what fits its pipe (about 2 messages over
    /// inproc: the PUSH's HWM plus its own) and no more, so the PUSH sends the rest to the peer that asks. A
    /// socket thread reading ahead would take about half, and the reader would never reach its count.
    @Test(.timeLimit(.minutes(1)))
    func idlePullWithHighWaterMarkOneTakesNoMoreThanItsPipe() async throws {
        let context = Context()
        let endpoint = "inproc://demand-\(UUID().uuidString)"
        let total = 50
        let slack = 5
        let pull: AsyncSocket.Configuration = .init(type: .pull, options: [.receiveHighWaterMark(1)], connect: [endpoint])
        try await context.withOutbound(.init(type: .push, options: [.sendHighWaterMark(1)], bind: [endpoint])) { push in
            try await context.withInbound(pull) { _ in
                try await context.withInbound(pull) { busy in
                    // The sender finishes once everything is queued: the idle pipe's few plus what the busy one takes.
                    let sender = Task {
                        for index in 0..<total { try await push.send([Data("\(index)".utf8)]) }
                    }
                    var taken = 0
                    for try await _ in busy {
                        taken += 1
                        if taken == total - slack { break }
                    }
                    #expect(taken == total - slack)
                    sender.cancel()
                    _ = await sender.result
                }
            }
        }
    }
}
