public import ArgumentParser
import Foundation

/// The options every Baton service takes.
public struct ServiceOptions: ParsableArguments, Sendable {
    /// The YAML configuration file.
    @Option(
        name: .long,
        help: ArgumentHelp(
            "YAML configuration file shared by all services (default: $BATON_CONFIG; without either, built-in defaults).",
            valueName: "file"
        )
    )
    public var config: String?

    /// Overrides `log.level`.
    @Option(
        name: .long,
        help: ArgumentHelp(
            "Lowest log level: trace, debug, info, notice, warning, error, critical (overrides log.level).",
            valueName: "level"
        )
    )
    public var logLevel: String?

    /// Creates options with no values (used by tests and by `baton up`).
    public init() {}

    /// The configuration file to read: `--config`, else `$BATON_CONFIG`, else none.
    public func configPath(environment: [String: String]) -> String? {
        config ?? environment["BATON_CONFIG"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Help text that every service shows after its options: where settings come from.
    public static let configurationHelp: String = {
        var text = """
            Settings come from the YAML file given by --config (or $BATON_CONFIG); \
            environment variables override single settings:

            """
        for override in Configuration.overrides {
            text += "  \(override.variable.padding(toLength: 28, withPad: " ", startingAt: 0)) \(override.key)\n"
        }
        text +=
            "\nSee docs/CONFIGURATION.md for every key. A bad file or value is reported with its field, and the service exits with status 2."
        return text
    }()
}
