public import Config
import Glibc
import ZMQ

extension ConfigurationError {
    /// Runs `bind`, which binds the endpoints given; a failure to bind one of them becomes an error naming its
    /// key, e.g. `endpoints.runs: tcp://127.0.0.1:7601 is already in use (Address already in use)`. The ZMQ
    /// wrapper knows nothing of configuration: its error names the call (`zmq_bind(<endpoint>)`), which is
    /// matched here. The source is left empty for the caller (``ServiceRunner``) to fill in.
    public static func binding<T>(
        _ endpoints: [(key: String, endpoint: String)],
        _ bind: () async throws -> T
    ) async throws -> T {
        do {
            return try await bind()
        } catch let error as ZMQError {
            guard let (key, endpoint) = endpoints.first(where: { error.operation == "zmq_bind(\($0.endpoint))" }) else { throw error }
            let problem =
                switch error.code {
                case EADDRINUSE: "\(endpoint) is already in use (\(error.message))"
                case EADDRNOTAVAIL: "\(endpoint) is not an address of this host (\(error.message))"
                default: "\(endpoint) cannot be bound (\(error.message))"
                }
            throw ConfigurationError(source: "", field: key, problem: problem)
        }
    }
}
