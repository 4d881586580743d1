public import Foundation

extension StatusEvent {
    /// The longest event type, source and instance names accepted on the bus.
    public static let maxNameBytes = 200

    /// Decodes an event from bus frames and checks it is one the logger may pass on: everything
    /// ``init(frames:)`` checks, plus a type made of lowercase letters, digits, `.`, `_` and `-`, and a
    /// non-empty source and instance of printable text. A subscriber can rely on every event it gets from
    /// `status_out` decoding like this.
    public static func validated(frames: [Data]) throws(ProtocolError) -> StatusEvent {
        let event = try StatusEvent(frames: frames)
        try event.validate()
        return event
    }

    /// Checks field values that decoding alone does not.
    public func validate() throws(ProtocolError) {
        guard !type.isEmpty, type.utf8.count <= Self.maxNameBytes,
            type.utf8.allSatisfy({ (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x2E || $0 == 0x5F || $0 == 0x2D })
        else {
            throw ProtocolError(.field, "field \"type\" must be 1-\(Self.maxNameBytes) of a-z, 0-9, '.', '_', '-'")
        }
        for (name, value) in [("source", source), ("instance", instance)] {
            guard !value.isEmpty, value.utf8.count <= Self.maxNameBytes, value.utf8.allSatisfy({ $0 >= 0x20 && $0 != 0x7F }) else {
                throw ProtocolError(.field, "field \"\(name)\" must be 1-\(Self.maxNameBytes) bytes of printable text")
            }
        }
    }
}
