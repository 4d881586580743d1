import Foundation

extension Configuration {
    /// The result store.
    public struct Store: Sendable, Equatable {
        /// SQLite database file; empty means `<data_dir>/results.sqlite`. Not used when ``url`` is set.
        public var path = ""
        /// A PostgreSQL database, `postgresql://USER[:PASS]@HOST[:PORT]/DB` (or `postgres://`, or libpq's
        /// `?host=/socket/dir` form); empty means the SQLite file ``path``.
        public var url = ""
        /// Creates the default store settings.
        public init() {}

        /// The problem with a `store.url`, if any: the scheme, a host (or a `host=` socket directory) and a database.
        public static func urlProblem(_ url: String) -> String? {
            guard !url.isEmpty else { return nil }
            guard let components = URLComponents(string: url), let scheme = components.scheme,
                ["postgresql", "postgres"].contains(scheme)
            else { return "must be a PostgreSQL URL, postgresql://USER[:PASS]@HOST[:PORT]/DB (got \"\(redacted(url))\")" }
            let socket = components.queryItems?.first { $0.name == "host" }?.value ?? ""
            if (components.host ?? "").isEmpty && socket.isEmpty {
                return "names no host: postgresql://USER@HOST[:PORT]/DB, or ?host=/socket/dir (got \"\(redacted(url))\")"
            }
            if components.path.count <= 1 { return "names no database: postgresql://USER@HOST/DB (got \"\(redacted(url))\")" }
            return nil
        }

        /// The URL with its password replaced by `***`, for messages and logs.
        public static func redacted(_ url: String) -> String {
            guard var components = URLComponents(string: url), components.password != nil else { return url }
            components.password = "***"
            return components.string ?? url
        }
    }

    /// Processor settings, shared by every processor instance.
    public struct Processor: Sendable, Equatable {
        /// How many processors `baton up` starts.
        public var count = 1
        /// An external command (argv) that processes a result; empty means the built-in `store`.
        public var command: [String] = []
        /// How an external command gets the result: on standard input, or as a file named by `BATON_INPUT`.
        public var input: CommandInput = .stdin
        /// Working directory for the command; empty means the processor's own.
        public var workingDirectory = ""
        /// Extra environment variables for the command.
        public var environment: [String: String] = [:]
        /// Longest a command may run on one result.
        public var timeout: Duration = .seconds(3600)
        /// A processor must start on a result within this time, and renew it this often while working.
        public var lease: Duration = .seconds(30)
        /// Retries after the first attempt before a result is dead-lettered (so `retries + 1` attempts in all),
        /// as `jobs[].retries` counts them. The default, 4, gives 5 attempts.
        public var retries = 4
        /// Attempts in all before a result is dead-lettered: the first and its ``retries``.
        public var attempts: Int { retries + 1 }
        /// Delay before the first retry of a failed result; doubled each time, with jitter.
        public var backoff: Duration = .seconds(2)
        /// Longest delay between retries.
        public var backoffMax: Duration = .seconds(300)
        /// Creates the default processor settings.
        public init() {}
    }

    /// How an external processor command receives the result.
    public enum CommandInput: String, Sendable, Equatable, CaseIterable {
        case stdin, file
    }
}

extension Configuration.Store: ConfigurationSection, Decodable {
    static let settings: [Setting<Self>] = [
        .text("path", \.path, env: "BATON_STORE_PATH"),
        .text("url", \.url, env: "BATON_STORE_URL", check: Self.urlProblem),
    ]

    public init(from decoder: any Decoder) throws {
        try self.init(reading: decoder)
    }
}

extension Configuration.Processor: ConfigurationSection, Decodable {
    static let settings: [Setting<Self>] = [
        .count("count", \.count, env: "BATON_PROCESSOR_COUNT", range: 0...256),
        .value("command", \.command),
        .custom("input") { reader, processor in
            let inputText = try reader.value("input", processor.input.rawValue)
            guard let input = Configuration.CommandInput(rawValue: inputText) else {
                throw ConfigurationError(source: "", field: reader.field("input"), problem: "must be stdin or file (got \"\(inputText)\")")
            }
            processor.input = input
        },
        .value("workdir", \.workingDirectory),
        .value("env", \.environment),
        .duration("timeout", \.timeout) { $0 > .zero ? nil : "must be more than 0" },
        .duration("lease", \.lease) { $0 >= .milliseconds(100) ? nil : "must be at least 100ms" },
        .value(
            "retries",
            \.retries,
            check: { retries in
                (0...1000).contains(retries) ? nil : "must be from 0 to 1000 retries after the first attempt (got \(retries))"
            }
        ),
        .duration("backoff", \.backoff),
        .custom(
            "backoff_max",
            read: { reader, processor in processor.backoffMax = try reader.duration("backoff_max", processor.backoffMax) }
        ) {
            $0.backoff > .zero && $0.backoffMax >= $0.backoff ? nil : "must be at least processor.backoff, and both more than 0"
        },
    ]

    public init(from decoder: any Decoder) throws {
        try self.init(reading: decoder)
    }
}
