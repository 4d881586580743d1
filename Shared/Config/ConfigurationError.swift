/// A configuration that cannot be used, naming the file, the field and the problem.
public struct ConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file (or `environment` for an environment variable).
    public var source: String
    /// The field, e.g. `jobs[0].every`, or the environment variable's name; empty for the whole file.
    public var field: String
    /// What is wrong.
    public var problem: String

    /// Creates an error.
    /// - Parameters:
    ///   - source: The file or `environment`.
    ///   - field: The field or variable.
    ///   - problem: What is wrong.
    public init(source: String, field: String, problem: String) {
        self.source = source
        self.field = field
        self.problem = problem
    }

    public var description: String {
        field.isEmpty ? "\(source): \(problem)" : "\(source): \(field): \(problem)"
    }

    /// The configuration error inside `error`, which a decoder may have wrapped in a `DecodingError`.
    static func wrapped(in error: any Error) -> ConfigurationError? {
        if let error = error as? ConfigurationError { return error }
        switch error as? DecodingError {
        case .dataCorrupted(let context), .typeMismatch(_, let context), .valueNotFound(_, let context), .keyNotFound(_, let context):
            return context.underlyingError.flatMap(wrapped(in:))
        default:
            return nil
        }
    }
}
