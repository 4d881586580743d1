import Foundation
import Testing
import ZMQ

struct AsyncSocketTests {
    static let transports = ["inproc", "ipc", "tcp"]

    static func endpoint(_ transport: String) -> String {
        switch transport {
        case "inproc": "inproc://async-\(UUID().uuidString)"
        case "ipc": "ipc:///tmp/baton-test-\(getpid())-\(UUID().uuidString.prefix(8)).sock"
        default: "tcp://127.0.0.1:*"
        }
    }

    @Test(arguments: transports)
    func pushPullMultipart(transport: String) async throws {
        let context = Context()
        let pull = try await AsyncSocket(
            context: context,
            configuration: .init(type: .pull, bind: [Self.endpoint(transport)])
        )
        let push = try await AsyncSocket(
            context: context,
            configuration: .init(type: .push, connect: pull.boundEndpoints)
        )
        for index in 0..<100 {
            try await push.send([Data("job".utf8), Data("\(index)".utf8), Data(count: index * 100)])
        }
        for index in 0..<100 {
            let parts = try await pull.receive()
            #expect(parts.count == 3)
            #expect(parts[1] == Data("\(index)".utf8))
            #expect(parts[2].count == index * 100)
        }
        await push.close()
        await pull.close()
        if transport == "ipc", let path = pull.boundEndpoints.first?.dropFirst("ipc://".count) {
            try? FileManager.default.removeItem(atPath: String(path))
        }
    }

    /// Many posts from several tasks while the socket's thread also waits to receive: every message goes out.
    /// (A wake-up lost between draining the wake pipe and clearing its flag once stalled a status publisher
    /// for good: posts queued up unseen while the thread slept in poll.) The limit catches that stall, not slowness:
    /// on two cores with the integration suites running beside it this takes over a minute.
    @Test(.timeLimit(.minutes(3)))
    func concurrentPostsWhileAReceiveWaitsAllArrive() async throws {
        let context = Context()
        let sink = try await AsyncSocket(context: context, configuration: .init(type: .pair, bind: [Self.endpoint("inproc")]))
        let source = try await AsyncSocket(
            context: context,
            configuration: .init(type: .pair, connect: sink.boundEndpoints, maxPosted: 1_000_000)
        )
        // A receive that never completes keeps the source's thread polling for input as well.
        let waiting = Task { try? await source.receive() }
        let tasks = 4, each = 5_000
        await withDiscardingTaskGroup { group in
            for task in 0..<tasks {
                group.addTask {
                    for index in 0..<each {
                        #expect(source.post([Data("\(task):\(index)".utf8)]))
                        if index % 64 == 0 { await Task.yield() }
                    }
                }
            }
        }
        var received = 0
        while received < tasks * each, try await sink.receive(timeout: .seconds(5)) != nil { received += 1 }
        #expect(received == tasks * each)
        waiting.cancel()
        await source.close()
        await sink.close()
    }

    /// `send(all:)` on a ROUTER with mandatory routing: each message has its own outcome; those for a peer that is
    /// not there fail alone, the others arrive in order.
    @Test func sendAllReportsEachMessageAndDeliversInOrder() async throws {
        let context = Context()
        let router = try await AsyncSocket(
            context: context,
            configuration: .init(type: .router, options: [.routerMandatory(true)], bind: ["tcp://127.0.0.1:*"])
        )
        let dealer = try await AsyncSocket(
            context: context,
            configuration: .init(type: .dealer, options: [.routingID(Array("d1".utf8))], connect: router.boundEndpoints)
        )
        try await dealer.send([Data("hello".utf8)])
        let hello = try await router.receive()
        #expect(hello == [Data("d1".utf8), Data("hello".utf8)])
        let messages = (0..<300).map { index in
            [Data((index % 3 == 1 ? "nobody" : "d1").utf8), Data("\(index)".utf8)]
        }
        let outcomes = await router.send(all: messages)
        #expect(outcomes.count == 300)
        for (index, outcome) in outcomes.enumerated() {
            if index % 3 == 1 {
                #expect((outcome as? ZMQError)?.code == ZMQError.hostUnreachable, "message \(index): \(String(describing: outcome))")
            } else {
                #expect(outcome == nil, "message \(index): \(String(describing: outcome))")
            }
        }
        for index in (0..<300).filter({ $0 % 3 != 1 }) {
            #expect(try await dealer.receive() == [Data("\(index)".utf8)])
        }
        #expect(await router.send(all: []).isEmpty)
        await dealer.close()
        await router.close()
    }

    /// Cancelling a `send(all:)` that cannot go out (a PUSH with no peer) fails every message with
    /// `CancellationError` and leaves none queued.
    @Test(.timeLimit(.minutes(1)))
    func cancellingSendAllFailsWhatIsNotSent() async throws {
        let context = Context()
        let push = try await AsyncSocket(context: context, configuration: .init(type: .push, bind: ["tcp://127.0.0.1:*"]))
        let sending = Task { await push.send(all: (0..<5).map { [Data("\($0)".utf8)] }) }
        while push.backlog < 5 { await Task.yield() }
        sending.cancel()
        let outcomes = await sending.value
        #expect(outcomes.count == 5 && outcomes.allSatisfy { $0 is CancellationError }, "\(outcomes)")
        #expect(push.backlog == 0)
        await push.close()
    }

    @Test func requestReply() async throws {
        let context = Context()
        let rep = try await AsyncSocket(context: context, configuration: .init(type: .reply, bind: ["tcp://127.0.0.1:*"]))
        let req = try await AsyncSocket(context: context, configuration: .init(type: .request, connect: rep.boundEndpoints))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for _ in 0..<3 {
                    let request = try await rep.receive()
                    try await rep.send([Data("re:".utf8) + request[0]])
                }
            }
            for word in ["a", "b", "c"] {
                try await req.send([Data(word.utf8)])
                let reply = try await req.receive()
                #expect(reply == [Data("re:\(word)".utf8)])
            }
            try await group.waitForAll()
        }
        await req.close()
        await rep.close()
    }

    @Test func receiveTimeoutReturnsNilAndKeepsLateMessage() async throws {
        let context = Context()
        let endpoint = "inproc://timeout-\(UUID().uuidString)"
        let pull = try await AsyncSocket(context: context, configuration: .init(type: .pull, bind: [endpoint]))
        #expect(try await pull.receive(timeout: .milliseconds(20)) == nil)
        let push = try await AsyncSocket(context: context, configuration: .init(type: .push, connect: [endpoint]))
        try await push.send([Data("late".utf8)])
        let message = try await pull.receive(timeout: .seconds(5))
        #expect(message == [Data("late".utf8)])
        await push.close()
        await pull.close()
    }

    /// The receive is registered with the socket's thread before the cancel: the cancel ends a real wait.
    @Test(.timeLimit(.minutes(1)))
    func cancellingReceiveEndsTheWait() async throws {
        let context = Context()
        let pull = try await AsyncSocket(
            context: context,
            configuration: .init(type: .pull, bind: ["inproc://cancel-\(UUID().uuidString)"])
        )
        let task = Task { try await pull.receive() }
        await pull.waitForReceivers(1)
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(pull.waitingReceivers == 0)
        await pull.close()
    }

    /// The receive is registered before the close (not merely started): close fails it with the closed error.
    @Test(.timeLimit(.minutes(1)))
    func closeFailsWaitersWithClosedError() async throws {
        let context = Context()
        let pull = try await AsyncSocket(
            context: context,
            configuration: .init(type: .pull, bind: ["inproc://close-\(UUID().uuidString)"])
        )
        let waiting = Task { try await pull.receive() }
        await pull.waitForReceivers(1)
        await pull.close()
        let error = await #expect(throws: ZMQError.self) { try await waiting.value }
        #expect(error?.isClosed == true)
        // A receive after the close fails the same way, at once.
        let late = await #expect(throws: ZMQError.self) { try await pull.receive() }
        #expect(late?.isClosed == true)
    }

    /// A cancellation handler can run after its receive completed but before the task saw it: that cancel must
    /// not be kept for good (it was, in the set of cancelled ids), while a cancel that comes before the receive
    /// is queued must still fail it.
    @Test func cancelAfterCompletionLeavesNothingBehind() async throws {
        let core = try SocketCore()
        let completed = core.makeID()
        core.requeue([Data("ready".utf8)])
        let message = try await withCheckedThrowingContinuation { core.enqueueReceive(id: completed, continuation: $0) }
        #expect(message == [Data("ready".utf8)])
        core.cancel(id: completed)
        #expect(core.pendingCancels == 0)

        let early = core.makeID()
        core.cancel(id: early)
        #expect(core.pendingCancels == 1)
        await #expect(throws: CancellationError.self) {
            try await withCheckedThrowingContinuation { core.enqueueReceive(id: early, continuation: $0) }
        }
        #expect(core.pendingCancels == 0)
    }

    @Test func badEndpointFailsCreation() async throws {
        let context = Context()
        await #expect(throws: ZMQError.self) {
            _ = try await AsyncSocket(context: context, configuration: .init(type: .push, bind: ["tcp://no-such-host-x:1"]))
        }
    }

    @Test func proxyForwardsPublishersToSubscribersAndCapture() async throws {
        let context = Context()
        let captureEndpoint = "inproc://capture-\(UUID().uuidString)"
        let capture = try await AsyncSocket(context: context, configuration: .init(type: .pull, bind: [captureEndpoint]))
        let proxy = try await Proxy(
            context: context,
            frontend: .init(type: .xsubscribe, bind: ["tcp://127.0.0.1:*"], initialMessages: [[Data([1])]]),
            backend: .init(type: .xpublish, bind: ["tcp://127.0.0.1:*"]),
            capture: .init(type: .push, connect: [captureEndpoint])
        )
        let subscriber = try await AsyncSocket(
            context: context,
            configuration: .init(type: .subscribe, options: [.subscribe(Array("run.".utf8))], connect: proxy.backendEndpoints)
        )
        // An XPUB publisher learns of the proxy's subscribe-all as a message: then it is safe to publish.
        let publisher = try await AsyncSocket(
            context: context,
            configuration: .init(type: .xpublish, connect: proxy.frontendEndpoints)
        )
        let subscription = try #require(try await publisher.receive(timeout: .seconds(5)))
        #expect(subscription == [Data([1])])
        // Slow joiner on the subscriber side: publish until the subscriber sees one.
        var seen: [Data]?
        for attempt in 0..<100 where seen == nil {
            try await publisher.send([Data("run.started".utf8), Data("\(attempt)".utf8)])
            seen = try await subscriber.receive(timeout: .milliseconds(50))
        }
        #expect(seen?.first == Data("run.started".utf8))
        // The capture copy sees every published message.
        var captured: [Data]?
        repeat { captured = try await capture.receive(timeout: .seconds(5)) } while captured?.count == 1
        #expect(captured?.first == Data("run.started".utf8))
        await publisher.close()
        await subscriber.close()
        await proxy.stop()
        // Stopping again (as a shutdown handler and a normal exit path both may) returns at once.
        await proxy.stop()
        await capture.close()
    }
}
