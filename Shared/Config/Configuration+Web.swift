import Foundation

extension Configuration {
    /// The logger's web view (`web`): jobs, a timeline of runs, each run's stages and parts, live updates and
    /// actions, served on the logger's metrics port.
    public struct Web: Sendable, Equatable {
        /// Whether the logger serves it.
        public var enabled = false
        /// The token a browser or client gives to see the view and act (trigger, pause, resume, cancel, replay);
        /// compared in constant time. Without one the view is read-only, which only a deployment without CURVE
        /// may have.
        public var token = ""
        /// Creates the default settings: no web view.
        public init() {}

        /// The shortest token accepted.
        public static let minimumTokenLength = 16
    }
}

extension Configuration.Web: ConfigurationSection, Decodable {
    static let settings: [Setting<Self>] = [
        .value("enabled", \.enabled),
        .text("token", \.token, env: "BATON_WEB_TOKEN") { token in
            token.isEmpty || token.count >= Self.minimumTokenLength
                ? nil : "must be at least \(Self.minimumTokenLength) characters (got \(token.count))"
        },
    ]

    public init(from decoder: any Decoder) throws {
        try self.init(reading: decoder)
    }
}
