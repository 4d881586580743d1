public import Foundation

/// The `service.heartbeat` event of one publisher, encoded from a template built once.
///
/// A heartbeat repeats everything but its `seq`, `time` and `uptime_s`, so the JSON around those three is
/// made once (its strings escaped by the same `JSONEncoder` the other events use) and each heartbeat only
/// writes two integers and a timestamp into it, with no encoder, no dictionary and no sorting. The bytes are
/// the ones ``StatusEvent/jsonLine`` gives for the same event (keys sorted, the same escaping), so decoders,
/// the event log and docs/protocol.schema.json see no difference.
///
/// ```swift
/// let template = HeartbeatTemplate(source: "processor", instance: "host:42", boot: Boot.id,
///                                  pid: "42", host: "host", version: "1.0", intervalMs: 5000)
/// socket.post(template.frames(seq: 7, time: Date(), uptimeSeconds: 35))
/// ```
public struct HeartbeatTemplate: Sendable {
    /// `{"attributes":{"host":…,"interval_ms":"…","pid":"…","uptime_s":"`
    private let head: [UInt8]
    /// `","version":"…"},"boot":"…","instance":"…","seq":`
    private let afterUptime: [UInt8]
    /// `,"source":"…","time":"`
    private let afterSeq: [UInt8]
    /// `","type":"service.heartbeat"}`
    private let tail: [UInt8]
    private static let type = Data(EventType.serviceHeartbeat.utf8)
    private static let protocolFrame = Data(Wire.protocolID.utf8)

    /// Creates the template of one publisher's heartbeats.
    /// - Parameters:
    ///   - source: The service's name.
    ///   - instance: The instance's name.
    ///   - boot: This process start (``Boot/id``).
    ///   - pid: The process id, as text.
    ///   - host: The host name.
    ///   - version: The Baton version.
    ///   - intervalMs: The heartbeat interval in milliseconds.
    public init(source: String, instance: String, boot: String, pid: String, host: String, version: String, intervalMs: Int) {
        func string(_ text: String) -> [UInt8] { Self.quoted(text) }
        head =
            Array(#"{"attributes":{"host":"#.utf8) + string(host) + Array(#","interval_ms":"#.utf8) + string("\(intervalMs)")
            + Array(#","pid":"#.utf8) + string(pid) + Array(#","uptime_s":""#.utf8)
        afterUptime =
            Array(#"","version":"#.utf8) + string(version) + Array(#"},"boot":"#.utf8) + string(boot)
            + Array(#","instance":"#.utf8) + string(instance) + Array(#","seq":"#.utf8)
        afterSeq = Array(#","source":"#.utf8) + string(source) + Array(#","time":""#.utf8)
        tail = Array(#"","type":"#.utf8) + string(EventType.serviceHeartbeat) + Array("}".utf8)
    }

    /// The event as one line of JSON, byte for byte what ``StatusEvent/jsonLine`` gives for it.
    public func jsonLine(seq: UInt64, time: Date, uptimeSeconds: Int) -> Data {
        var bytes = [UInt8]()
        bytes.reserveCapacity(head.count + afterUptime.count + afterSeq.count + tail.count + 48)
        bytes += head
        bytes += String(uptimeSeconds).utf8
        bytes += afterUptime
        bytes += String(seq).utf8
        bytes += afterSeq
        bytes += Timestamp.format(time).utf8
        bytes += tail
        return Data(bytes)
    }

    /// The three bus frames of the event (type, protocol, JSON), as ``StatusEvent/frames`` gives them.
    public func frames(seq: UInt64, time: Date, uptimeSeconds: Int) -> [Data] {
        [Self.type, Self.protocolFrame, jsonLine(seq: seq, time: time, uptimeSeconds: uptimeSeconds)]
    }

    /// A JSON string literal, quotes included, escaped as the events' own encoder escapes it.
    private static func quoted(_ text: String) -> [UInt8] {
        // The encoder writes a one-element array as `["…"]`: drop the brackets, keep its escaping exactly.
        guard let array = try? Timestamp.encoder().encode([text]), array.count >= 4 else { return Array("\"\"".utf8) }
        return Array(array.dropFirst().dropLast())
    }
}
