import Foundation

extension Configuration {
    /// Who is told when something goes wrong (`alerts`): a command, an HTTP webhook, or both, called by the logger.
    public struct Alerts: Sendable, Equatable {
        /// What can raise an alert.
        public static let kinds = ["run.failed", "result.dead", "service.down", "run.overrun", "schedule.lag"]

        /// A command (argv) run per alert, with the alert's JSON on standard input; empty for none.
        public var command: [String] = []
        /// An `http://` or `https://` URL the alert's JSON is POSTed to; empty for none.
        public var webhook = ""
        /// Extra HTTP headers for the webhook (e.g. `Authorization`).
        public var headers: [String: String] = [:]
        /// The kinds that raise an alert; all by default.
        public var on: [String] = kinds
        /// A run fired later than this after its slot raises `schedule.lag`.
        public var lag: Duration = .seconds(60)
        /// Attempts after the first, per alert and per channel, with a doubling backoff from 1 s.
        public var retries = 5
        /// Longest one attempt may take (the command's run, the webhook's request and answer).
        public var timeout: Duration = .seconds(10)

        /// Creates the default settings: no alerts.
        public init() {}

        /// Whether any channel is configured.
        public var isEnabled: Bool { !command.isEmpty || !webhook.isEmpty }

        /// The problem with a webhook URL, if any.
        public static func webhookProblem(_ url: String) -> String? {
            guard !url.isEmpty else { return nil }
            guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
                scheme == "http" || scheme == "https", !(components.host ?? "").isEmpty
            else { return "must be an http:// or https:// URL with a host (got \"\(url)\")" }
            return nil
        }
    }
}

extension Configuration.Alerts: ConfigurationSection, Decodable {
    static let settings: [Setting<Self>] = [
        .value("command", \.command),
        .text("webhook", \.webhook, env: "BATON_ALERTS_WEBHOOK", check: Self.webhookProblem),
        .value(
            "headers",
            \.headers,
            check: { headers in
                let bad = headers.keys.sorted().first { name in
                    name.isEmpty || !name.unicodeScalars.allSatisfy { $0.isASCII && $0.value > 32 && $0 != ":" && $0.value < 127 }
                }
                if let bad { return "\"\(bad)\" is not an HTTP header name" }
                let value = headers.first { $0.value.unicodeScalars.contains { $0 == "\r" || $0 == "\n" || $0 == "\0" } }
                return value.map { "the value of \"\($0.key)\" holds a line break" }
            }
        ),
        .value(
            "on",
            \.on,
            check: { kinds in
                let unknown = kinds.filter { !Self.kinds.contains($0) }
                return unknown.isEmpty ? nil : "unknown kind \"\(unknown[0])\" (known: \(Self.kinds.joined(separator: ", ")))"
            }
        ),
        .duration("lag", \.lag) { $0 > .zero ? nil : "must be more than 0" },
        .value("retries", \.retries, check: { (0...100).contains($0) ? nil : "must be from 0 to 100 (got \($0))" }),
        .duration("timeout", \.timeout) { $0 >= .milliseconds(100) ? nil : "must be at least 100ms" },
    ]

    public init(from decoder: any Decoder) throws {
        try self.init(reading: decoder)
    }
}
