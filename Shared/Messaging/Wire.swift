public import Foundation

/// A message with a JSON header that travels on Baton's point-to-point sockets.
public protocol WireMessage: Codable, Sendable {
    /// The kind frame that names this message type on the wire, e.g. `"run"`.
    static var kind: String { get }
    /// Checks field values that JSON decoding alone cannot (ranges, formats); throws on the first bad one.
    func validate() throws(ProtocolError)
}

/// Framing of Baton's point-to-point messages.
///
/// Every message is multipart: `[protocol, kind, header]` or `[protocol, kind, header, payload]`, where
/// `protocol` is ``protocolID`` (`baton/1`), `kind` names the message type, `header` is a UTF-8 JSON object
/// and `payload` carries raw bytes (results only). Decoding is strict: anything else is a ``ProtocolError``.
public enum Wire {
    /// The protocol identifier and major version in frame 0.
    public static let protocolID = "baton/1"

    /// Encodes a message (and an optional payload) into frames.
    public static func encode<Message: WireMessage>(_ message: Message, payload: Data? = nil) -> [Data] {
        encode(message, payloads: payload.map { [$0] } ?? [])
    }

    /// Encodes a message and any number of payload frames.
    public static func encode<Message: WireMessage>(_ message: Message, payloads: [Data]) -> [Data] {
        // Encoding our own Codable structs cannot fail: they hold only strings, numbers and dates.
        let header = (try? Timestamp.encoder().encode(message)) ?? Data("{}".utf8)
        return [Data(protocolID.utf8), Data(Message.kind.utf8), header] + payloads
    }

    /// The kind frame of a message, after checking the frame count and protocol.
    public static func kind(of frames: [Data]) throws(ProtocolError) -> String {
        guard frames.count >= 3 else {
            throw ProtocolError(.frames, "expected 3 or more frames (protocol, kind, header[, payload...]), got \(frames.count)")
        }
        guard frames[0] == Data(protocolID.utf8) else {
            let shown = String(decoding: frames[0].prefix(32), as: UTF8.self)
            throw ProtocolError(.version, "expected protocol \"\(protocolID)\" in frame 0, got \"\(shown)\"")
        }
        return String(decoding: frames[1].prefix(64), as: UTF8.self)
    }

    /// Decodes a message of an expected type; returns it with its payload frame, if any.
    public static func decode<Message: WireMessage>(
        _ type: Message.Type,
        from frames: [Data]
    ) throws(ProtocolError) -> (message: Message, payload: Data?) {
        guard frames.count <= 4 else {
            throw ProtocolError(.frames, "expected 3 or 4 frames (protocol, kind, header[, payload]), got \(frames.count)")
        }
        let message = try decodeHeader(type, from: frames)
        return (message, frames.count == 4 ? frames[3] : nil)
    }

    /// Decodes a message that may carry several payload frames (a merge task, an acknowledgement with a stage's
    /// output); returns it with every frame after the header. The message checks their number itself.
    public static func decodeMany<Message: WireMessage>(
        _ type: Message.Type,
        from frames: [Data]
    ) throws(ProtocolError) -> (message: Message, payloads: [Data]) {
        (try decodeHeader(type, from: frames), Array(frames.dropFirst(3)))
    }

    private static func decodeHeader<Message: WireMessage>(_ type: Message.Type, from frames: [Data]) throws(ProtocolError) -> Message {
        let kind = try kind(of: frames)
        guard kind == Message.kind else {
            throw ProtocolError(.kind, "expected a \"\(Message.kind)\" message, got \"\(kind)\"")
        }
        let message: Message
        do {
            message = try Timestamp.decoder().decode(Message.self, from: frames[2])
        } catch let error as DecodingError {
            if case .dataCorrupted(let context) = error, context.codingPath.isEmpty, let field = nonInteger(in: frames[2]) {
                // Foundation reports a number that does not fit an integer field as JSON that is not valid, with
                // no field named: said as it is.
                throw ProtocolError(.header, "\(Message.kind) header: \(field)")
            }
            throw ProtocolError(.header, "\(Message.kind) header: \(describe(error))")
        } catch {
            throw ProtocolError(.header, "\(Message.kind) header: \(error)")
        }
        try message.validate()
        return message
    }

    /// The first top-level field of a JSON object that holds a number no integer field can take (a fraction, or
    /// beyond ±2⁶³), said as a problem; nil when there is none or the text is not a JSON object.
    static func nonInteger(in header: Data) -> String? {
        guard let object = try? JSONSerialization.jsonObject(with: header) as? [String: Any] else { return nil }
        for (key, value) in object.sorted(by: { $0.key < $1.key }) {
            guard let number = value as? NSNumber, !(value is Bool) else { continue }
            let double = number.doubleValue
            if double != double.rounded() || abs(double) >= 9.2e18 {
                return "field \"\(key)\" should be an integer (got \(number))"
            }
        }
        return nil
    }

    /// Words for a decoding error that name the field, e.g. `field "runId": missing`.
    public static func describe(_ error: DecodingError) -> String {
        func path(_ keys: [any CodingKey]) -> String {
            keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined().drop { $0 == "." }.description
        }
        switch error {
        case .keyNotFound(let key, let context):
            let field = path(context.codingPath + [key])
            return "field \"\(field)\" is missing"
        case .typeMismatch(let type, let context):
            return "field \"\(path(context.codingPath))\" should be \(typeName(type))"
        case .valueNotFound(let type, let context):
            return "field \"\(path(context.codingPath))\" should be \(typeName(type)), not null"
        case .dataCorrupted(let context):
            let field = path(context.codingPath)
            let detail = context.underlyingError.map { "\($0)" } ?? context.debugDescription
            return field.isEmpty ? "not valid JSON (\(detail))" : "field \"\(field)\": \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Int.Type, is Int64.Type, is UInt64.Type, is Int32.Type: "an integer"
        case is Double.Type: "a number"
        case is Bool.Type: "true or false"
        case is Date.Type: "an ISO 8601 time"
        default: "\(type)"
        }
    }
}
