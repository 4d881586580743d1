extension Configuration {
    /// Endpoints of every socket that is bound; the services that connect use the same addresses.
    public struct Endpoints: Sendable, Equatable {
        /// Scheduler binds PUSH; the algorithm connects PULL.
        public var runs = "tcp://127.0.0.1:7601"
        /// Scheduler binds REP for control commands.
        public var control = "tcp://127.0.0.1:7602"
        /// Algorithm binds PUSH; processors connect PULL.
        public var results = "tcp://127.0.0.1:7603"
        /// Algorithm binds PULL; processors connect PUSH with acknowledgements.
        public var acks = "tcp://127.0.0.1:7604"
        /// Logger binds XSUB; every service's publisher connects.
        public var statusIn = "tcp://127.0.0.1:7605"
        /// Logger binds XPUB; watchers connect SUB.
        public var statusOut = "tcp://127.0.0.1:7606"
        /// Logger binds REP for status queries.
        public var query = "tcp://127.0.0.1:7607"
        /// Scheduler binds PULL; the algorithm connects PUSH with run reports (accepted, finished, failed).
        public var reports = "tcp://127.0.0.1:7608"
        /// Algorithm binds REP for `baton results`, `audit` and `replay` (its outbox, run ledger and raw results).
        public var algorithmControl = "tcp://127.0.0.1:7609"

        /// Creates the default endpoints.
        public init() {}

        /// Every endpoint, in the order of the section.
        public var all: [String] { [runs, control, results, acks, statusIn, statusOut, query, reports, algorithmControl] }
    }
}

extension Configuration.Endpoints: ConfigurationSection {
    static let settings: [Setting<Self>] = [
        .text("runs", \.runs, env: "BATON_ENDPOINT_RUNS", check: check),
        .text("control", \.control, env: "BATON_ENDPOINT_CONTROL", check: check),
        .text("results", \.results, env: "BATON_ENDPOINT_RESULTS", check: check),
        .text("acks", \.acks, env: "BATON_ENDPOINT_ACKS", check: check),
        .text("status_in", \.statusIn, env: "BATON_ENDPOINT_STATUS_IN", check: check),
        .text("status_out", \.statusOut, env: "BATON_ENDPOINT_STATUS_OUT", check: check),
        .text("query", \.query, env: "BATON_ENDPOINT_QUERY", check: check),
        .text("reports", \.reports, env: "BATON_ENDPOINT_REPORTS", check: check),
        .text("algorithm_control", \.algorithmControl, env: "BATON_ENDPOINT_ALGORITHM_CONTROL", check: check),
    ]

    static let crossChecks: [@Sendable (Self) -> (field: String, problem: String)?] = [
        { endpoints in
            let bound = endpoints.all
            guard let duplicate = bound.first(where: { endpoint in bound.filter { $0 == endpoint }.count > 1 }) else { return nil }
            // Named by the section: the message is about two keys.
            return ("", "\"\(duplicate)\" is used for two sockets")
        }
    ]

    @Sendable private static func check(_ endpoint: String) -> String? {
        guard ["tcp://", "ipc://", "inproc://"].contains(where: endpoint.hasPrefix), endpoint.count > 8 else {
            return "expected tcp://HOST:PORT or ipc:///PATH (got \"\(endpoint)\")"
        }
        if endpoint.hasPrefix("tcp://") {
            // libzmq takes the port modulo 65536 (tcp://host:99999 binds 34463): check it here.
            guard let colon = endpoint.lastIndex(of: ":"), let port = Int(endpoint[endpoint.index(after: colon)...]),
                (1...65535).contains(port)
            else {
                return "expected tcp://HOST:PORT with a port from 1 to 65535 (got \"\(endpoint)\")"
            }
        }
        return nil
    }
}

extension Configuration.Endpoints: Decodable {
    public init(from decoder: any Decoder) throws {
        try self.init(reading: decoder)
    }
}
