import Foundation
import Messaging
import PropertyBased
import Testing

/// The heartbeat's hand-made encoding (``HeartbeatTemplate``) against the encoder every other event uses, the
/// decoder, and the schema's rules for `service.heartbeat` (docs/protocol.schema.json, `event`).
struct HeartbeatTemplateTests {
    /// What a publisher puts in a heartbeat, the slow way: the event the template must reproduce.
    static func event(
        source: String,
        instance: String,
        boot: String,
        seq: UInt64,
        time: Date,
        pid: String,
        host: String,
        version: String,
        intervalMs: Int,
        uptime: Int
    ) -> StatusEvent {
        StatusEvent(
            type: EventType.serviceHeartbeat,
            source: source,
            instance: instance,
            boot: boot,
            seq: seq,
            time: time,
            attributes: ["uptime_s": "\(uptime)", "pid": pid, "host": host, "version": version, "interval_ms": "\(intervalMs)"]
        )
    }

    /// Names that need escaping (quotes, backslashes, control characters, slashes, non-ASCII) come out as the
    /// encoder writes them, and every frame equals the encoder's.
    @Test(arguments: ["host:42", "a\"b\\c", "tab\there\nnew", "ctl\u{1}\u{1f}", "path/with/slashes", "ünï©ødé 🎼", ""])
    func sameBytesAsTheEncoder(name: String) throws {
        let time = Date(timeIntervalSince1970: 1_796_088_767.8375)
        let template = HeartbeatTemplate(
            source: "processor",
            instance: name,
            boot: "0123456789abcdef",
            pid: "4242",
            host: name,
            version: "1.2.3 \(name)",
            intervalMs: 5000
        )
        let expected = Self.event(
            source: "processor",
            instance: name,
            boot: "0123456789abcdef",
            seq: 17,
            time: time,
            pid: "4242",
            host: name,
            version: "1.2.3 \(name)",
            intervalMs: 5000,
            uptime: 85
        )
        let frames = template.frames(seq: 17, time: time, uptimeSeconds: 85)
        #expect(frames == expected.frames, "\(String(decoding: frames[2], as: UTF8.self))")
        #expect(try StatusEvent(frames: frames) == StatusEvent(frames: expected.frames))
    }

    /// Any counters and times give the encoder's bytes, and decode to what they were made from.
    @Test func anyCountersRoundTrip() async {
        await propertyCheck(
            count: 500,
            input: Gen.int(in: 1...Int.max),
            Gen.int(in: 0...253_402_300_799_999),
            Gen.int(in: 0...Int.max),
            Gen.int(in: 100...3_600_000)
        ) { seq, milliseconds, uptime, interval in
            let time = Timestamp.date(milliseconds: Int64(milliseconds))
            let template = HeartbeatTemplate(
                source: "logger",
                instance: "h:1",
                boot: "fedcba9876543210",
                pid: "1",
                host: "h",
                version: "v",
                intervalMs: interval
            )
            let expected = Self.event(
                source: "logger",
                instance: "h:1",
                boot: "fedcba9876543210",
                seq: UInt64(seq),
                time: time,
                pid: "1",
                host: "h",
                version: "v",
                intervalMs: interval,
                uptime: uptime
            )
            let line = template.jsonLine(seq: UInt64(seq), time: time, uptimeSeconds: uptime)
            #expect(line == expected.jsonLine)
            // Decoded, it is the event made the slow way (its time to the millisecond, as the wire carries it).
            let topic = Data(EventType.serviceHeartbeat.utf8), version = Data(Wire.protocolID.utf8)
            let decoded = try? StatusEvent(frames: [topic, version, line])
            #expect(decoded != nil && decoded == (try? StatusEvent(frames: expected.frames)))
            #expect(decoded.map { Timestamp.milliseconds($0.time) } == Int64(milliseconds))
            #expect(decoded?.seq == UInt64(seq) && decoded?.attributes?["uptime_s"] == "\(uptime)")
        }
    }

    /// The schema's rules for a heartbeat, checked on the parsed JSON: the required keys and no others, the
    /// boot and time patterns, `seq` from 1, and the heartbeat's required attributes, all strings.
    @Test func followsTheSchema() throws {
        let template = HeartbeatTemplate(
            source: "scheduler",
            instance: "box:7",
            boot: "00000000000000ff",
            pid: "7",
            host: "box",
            version: "0.9",
            intervalMs: 250
        )
        let line = template.jsonLine(seq: 1, time: Date(timeIntervalSince1970: 1_800_000_000.0004), uptimeSeconds: 0)
        let object = try #require(try JSONSerialization.jsonObject(with: line) as? [String: Any])
        #expect(Set(object.keys) == ["type", "source", "instance", "boot", "seq", "time", "attributes"])
        #expect(object["type"] as? String == "service.heartbeat")
        #expect(object["source"] as? String == "scheduler")
        #expect(object["instance"] as? String == "box:7")
        let boot = try #require(object["boot"] as? String)
        #expect(boot.wholeMatch(of: /[0-9a-f]{16}/) != nil)
        #expect((object["seq"] as? NSNumber)?.intValue == 1)
        let time = try #require(object["time"] as? String)
        #expect(time.wholeMatch(of: /[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z/) != nil, "\(time)")
        #expect(time == "2027-01-15T08:00:00.000Z")
        let attributes = try #require(object["attributes"] as? [String: String])
        #expect(attributes == ["pid": "7", "host": "box", "version": "0.9", "uptime_s": "0", "interval_ms": "250"])
        #expect(!line.contains(0x0A) && !line.contains(0x0D))
    }
}
