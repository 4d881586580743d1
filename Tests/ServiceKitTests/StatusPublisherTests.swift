import Foundation
import Messaging
import ServiceKit
import Testing
import ZMQ

struct StatusPublisherTests {
    /// Events published before the logger is up are held and delivered, in order, once it subscribes.
    @Test(.timeLimit(.minutes(1)))
    func eventsPublishedBeforeTheBusExistsAreDeliveredInOrder() async throws {
        let context = Context()
        let path = "/tmp/bt-pub-\(UUID().uuidString.prefix(8))"
        let endpoint = "ipc://\(path)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let publisher = try await StatusPublisher(context: context, endpoint: endpoint, source: "test", instance: "t:1")
        let running = Task { try await publisher.run() }
        for index in 0..<5 { publisher.publish(EventType.runProgress, run: "r", attributes: ["i": "\(index)"]) }

        // The "logger": an XSUB that subscribes to everything, bound after the events were published.
        let bus = try await AsyncSocket(
            context: context,
            configuration: .init(type: .xsubscribe, bind: [endpoint], initialMessages: [[Data([1])]])
        )
        var events: [StatusEvent] = []
        while events.count < 6 {
            let frames = try #require(try await bus.receive(timeout: .seconds(10)))
            events.append(try StatusEvent(frames: frames))
        }
        #expect(events.map(\.seq) == [1, 2, 3, 4, 5, 6])
        #expect(events.filter { $0.type == EventType.runProgress }.map { $0.attributes?["i"] } == ["0", "1", "2", "3", "4"])
        #expect(events.contains { $0.type == EventType.serviceStarted })
        #expect(publisher.droppedCount == 0)
        running.cancel()
        _ = try? await running.value
        await bus.close()
    }
}
