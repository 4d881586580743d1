import Foundation
import Synchronization
import TestSupport
import Testing
import ZMQ

struct ProxyPolicyTests {
    /// The policy decides what passes: frontend messages it refuses reach neither subscribers nor the
    /// capture, backend messages it refuses never go upstream, and too many subscriptions reset the backend.
    @Test(.timeLimit(.minutes(1)))
    func policyFiltersBothWaysAndBoundsSubscriptions() async throws {
        let context = Context()
        let refusedBackward = Mutex(0)
        let overflows = Mutex<[Int]>([])
        let captureEndpoint = "inproc://capture-\(UUID().uuidString)"
        let capture = try await AsyncSocket(context: context, configuration: .init(type: .pull, bind: [captureEndpoint]))
        let proxy = try await Proxy(
            context: context,
            frontend: .init(type: .xsubscribe, bind: ["tcp://127.0.0.1:*"], initialMessages: [[Data([1])]]),
            backend: .init(type: .xpublish, bind: ["tcp://127.0.0.1:*"]),
            capture: .init(type: .push, connect: [captureEndpoint]),
            policy: .init(
                forward: { $0.first != Data("bad".utf8) },
                backward: { _ in
                    refusedBackward.withLock { $0 += 1 }
                    return false
                },
                maxSubscriptions: 5,
                onSubscriptionOverflow: { held in overflows.withLock { $0.append(held) } }
            )
        )
        let publisher = try await AsyncSocket(context: context, configuration: .init(type: .xpublish, connect: proxy.frontendEndpoints))
        #expect(try await publisher.receive(timeout: .seconds(5)) == [Data([1])])
        let subscriber = try await AsyncSocket(
            context: context,
            configuration: .init(type: .subscribe, options: [.subscribe([])], connect: proxy.backendEndpoints)
        )
        var seen: [Data]?
        for attempt in 0..<100 where seen == nil {
            try await publisher.send([Data("good".utf8), Data("\(attempt)".utf8)])
            seen = try await subscriber.receive(timeout: .milliseconds(50))
        }
        #expect(seen?.first == Data("good".utf8))
        try await publisher.send([Data("bad".utf8), Data("x".utf8)])
        try await publisher.send([Data("good".utf8), Data("last".utf8)])
        var received: [[Data]] = []
        while let frames = try await subscriber.receive(timeout: .seconds(2)) {
            received.append(frames)
            if frames.last == Data("last".utf8) { break }
        }
        #expect(received.last?.last == Data("last".utf8))
        #expect(!received.contains { $0.first == Data("bad".utf8) })
        var captured: [[Data]] = []
        while let frames = try await capture.receive(timeout: .milliseconds(500)) { captured.append(frames) }
        #expect(captured.contains { $0.last == Data("last".utf8) })
        #expect(!captured.contains { $0.first == Data("bad".utf8) })
        // The publisher hears only the proxy's own subscribe-all: the subscriber's went no further.
        #expect(try await publisher.receive(timeout: .milliseconds(300)) == nil)
        #expect(refusedBackward.withLock { $0 } >= 1)
        // Six distinct subscriptions where five are allowed: the backend is reset.
        let hoarder = try await AsyncSocket(
            context: context,
            configuration: .init(
                type: .subscribe,
                options: (0..<6).map { .subscribe(Array("p\($0)".utf8)) },
                connect: proxy.backendEndpoints
            )
        )
        _ = try await Wait.until(timeout: .seconds(10)) { !overflows.withLock { $0.isEmpty } }
        #expect(overflows.withLock { $0 } == [6])
        await hoarder.close()
        await subscriber.close()
        await publisher.close()
        await proxy.stop()
        await capture.close()
    }
}
