/// A message that does not follow the Baton wire protocol, with what is wrong in words a log reader can act on.
public struct ProtocolError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What kind of fault it is.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Value: String {
            case frames, version, kind, header, field, checksum
        }
        private let value: Value
        private init(_ value: Value) { self.value = value }

        /// Wrong number of frames.
        public static let frames = Code(.frames)
        /// Unknown protocol identifier or version.
        public static let version = Code(.version)
        /// Unknown or unexpected message kind.
        public static let kind = Code(.kind)
        /// The header is not valid JSON of the expected shape.
        public static let header = Code(.header)
        /// A field has a value out of its range.
        public static let field = Code(.field)
        /// The payload does not match its checksum or size.
        public static let checksum = Code(.checksum)

        public var description: String { value.rawValue }
    }

    /// The kind of fault.
    public let code: Code
    /// A sentence saying what is wrong, naming the field where there is one.
    public let reason: String

    /// Creates an error.
    /// - Parameters:
    ///   - code: The kind of fault.
    ///   - reason: What is wrong.
    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    public var description: String { "malformed message (\(code)): \(reason)" }
}
