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

    /// Heartbeats, timed by the socket's own thread, arrive numbered in one sequence with the events published
    /// meanwhile (no gap, nothing out of order), with the fields the schema asks of them.
    @Test(.timeLimit(.minutes(1)))
    func heartbeatsAreNumberedInOrderWithOtherEvents() async throws {
        let context = Context()
        let path = "/tmp/bt-hb-\(UUID().uuidString.prefix(8))"
        let endpoint = "ipc://\(path)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let bus = try await AsyncSocket(
            context: context,
            configuration: .init(type: .xsubscribe, bind: [endpoint], initialMessages: [[Data([1])]])
        )
        let publisher = try await StatusPublisher(
            context: context,
            endpoint: endpoint,
            source: "test",
            instance: "t:2",
            heartbeatInterval: .milliseconds(20)
        )
        let running = Task { try await publisher.run() }
        var events: [StatusEvent] = []
        while events.filter({ $0.type == EventType.serviceHeartbeat }).count < 4 {
            let frames = try #require(try await bus.receive(timeout: .seconds(10)))
            events.append(try StatusEvent(frames: frames))
            // One more event per one received: a steady stream between the heartbeats, never a flood.
            publisher.publish(EventType.runProgress, run: "r", attributes: ["i": "\(events.count)"])
        }
        #expect(events.map(\.seq) == Array(1...UInt64(events.count)))
        for heartbeat in events where heartbeat.type == EventType.serviceHeartbeat {
            let attributes = heartbeat.attributes ?? [:]
            #expect(attributes["interval_ms"] == "20" && attributes["pid"] == "\(getpid())", "\(attributes)")
            #expect(attributes["host"] != nil && attributes["version"] != nil && attributes["uptime_s"] != nil)
            #expect(heartbeat.source == "test" && heartbeat.instance == "t:2" && heartbeat.boot == Boot.id)
        }
        running.cancel()
        _ = try? await running.value
        await bus.close()
    }
}
