import Foundation

extension Configuration {
    /// CURVE on every `tcp://` socket (docs/SECURITY.md): who this process is, whom it trusts as a server, and
    /// which clients its bound sockets let in.
    public struct Curve: Sendable, Equatable {
        /// Whether `tcp://` sockets use CURVE. Off, every `tcp://` endpoint is plain, and one on a non-loopback
        /// address is warned about at start.
        public var enabled = true
        /// This process's key pair file (`baton keygen`'s `NAME.key`); empty means `<data_dir>/keys/baton.key`.
        public var key = ""
        /// The binding services' public key (a Z85 key or a `.pub` file); empty means this process's own.
        public var serverKey = ""
        /// Per binding service (`scheduler`, `algorithm`, `logger`), a server key other than ``serverKey``.
        public var serverKeys: [String: String] = [:]
        /// Client public keys the bound sockets accept (Z85 keys, `.pub` files, folders of `.pub` files), besides
        /// this process's own.
        public var allow: [String] = []

        /// The services that bind sockets, whose server keys may differ.
        public static let servers = ["scheduler", "algorithm", "logger"]

        /// Creates the default CURVE settings: on, with one key pair made at first start.
        public init() {}

        /// True when nothing names another party: the whole stack shares one key pair, which is made at first
        /// start when it is missing.
        public var isSelfContained: Bool { serverKey.isEmpty && serverKeys.isEmpty && allow.isEmpty }
    }

    /// This process's key pair file.
    public var curveKeyPath: String {
        curve.key.isEmpty ? (dataDirectory as NSString).appendingPathComponent("keys/baton.key") : curve.key
    }
}

extension Configuration.Curve: ConfigurationSection, Decodable {
    static let settings: [Setting<Self>] = [
        .value("enabled", \.enabled, env: "BATON_CURVE_ENABLED", parse: Self.flag),
        .text("key", \.key, env: "BATON_CURVE_KEY"),
        .text("server_key", \.serverKey, env: "BATON_CURVE_SERVER_KEY"),
        .value(
            "server_keys",
            \.serverKeys,
            check: { keys in
                guard let unknown = keys.keys.sorted().first(where: { !Self.servers.contains($0) }) else { return nil }
                return "\"\(unknown)\" is not a service that binds sockets (expected \(Self.servers.joined(separator: ", ")))"
            }
        ),
        // A list, or one entry (a folder of keys, typically) as plain text.
        Setting(
            key: "allow",
            read: { reader, curve in
                if let list = try? reader.value("allow", curve.allow) {
                    curve.allow = list
                } else {
                    curve.allow = [try reader.value("allow", "")]
                }
            },
            overrides: [
                EnvironmentOverride(variable: "BATON_CURVE_ALLOW", key: "allow") { curve, text in
                    curve.allow = text.split(separator: ":", omittingEmptySubsequences: true).map(String.init)
                    return true
                }
            ],
            problem: { curve in curve.allow.contains(where: \.isEmpty) ? ("allow", "an entry is empty") : nil }
        ),
    ]

    public init(from decoder: any Decoder) throws {
        try self.init(reading: decoder)
    }

    @Sendable static func flag(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "1", "true", "yes", "on": true
        case "0", "false", "no", "off": false
        default: nil
        }
    }

    /// True for the shape of a Z85 key: 40 characters of its alphabet.
    public static func isZ85(_ text: String) -> Bool {
        let alphabet = Set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#".utf8)
        return text.utf8.count == 40 && text.utf8.allSatisfy(alphabet.contains)
    }
}
