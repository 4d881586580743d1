import Foundation
import Testing
import TestSupport
import ZMQ

/// A connecting socket's greeting (``AsyncSocket/greet(_:)``): sent again on every connection it makes, so a
/// peer that restarted hears it without the sender polling; cleared, it is not sent again.
struct GreetingTests {
    @Test(.timeLimit(.minutes(1)))
    func theGreetingIsSentOnEveryNewConnectionUntilCleared() async throws {
        let scratch = Scratch("greeting")
        defer { scratch.remove() }
        let endpoint = "ipc://\(scratch.directory)/socket"
        let context = Context()
        var configuration = AsyncSocket.Configuration(
            type: .dealer,
            options: [.reconnectInterval(.milliseconds(50), max: .milliseconds(200))],
            connect: [endpoint]
        )
        configuration.watchConnections = true
        let dealer = try await AsyncSocket(context: context, configuration: configuration)
        let hello = [Data("hello".utf8)]
        dealer.greet(hello)

        // The first connection, then two restarts of the peer: the greeting each time, nothing else.
        for _ in 0..<3 {
            let router = try await AsyncSocket(context: context, configuration: .init(type: .router, bind: [endpoint]))
            let frames = try #require(try await router.receive(timeout: .seconds(20)), "no greeting on a new connection")
            #expect(Array(frames.dropFirst()) == hello)
            #expect(try await router.receive(timeout: .milliseconds(200)) == nil, "the greeting is sent once per connection")
            await router.close()
        }

        dealer.greet(nil)
        let router = try await AsyncSocket(context: context, configuration: .init(type: .router, bind: [endpoint]))
        #expect(try await router.receive(timeout: .milliseconds(700)) == nil, "a cleared greeting is not sent")
        await router.close()
        await dealer.close()
    }
}
