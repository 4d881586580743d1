public import ArgumentParser
public import Config
public import Foundation

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

    /// Loads the configuration these options name (`--config`, else `$BATON_CONFIG`), applies the environment's
    /// overrides and `--log-level`, and validates it; exits with status 2 and the reason when it is unusable.
    /// - Parameters:
    ///   - program: How the program names itself in the message, e.g. `baton-processor` or `baton watch`.
    ///   - environment: The process environment.
    public func loadConfiguration(
        program: String,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> Configuration {
        do {
            var configuration = try Configuration.load(path: configPath(environment: environment), environment: environment)
            if let logLevel {
                configuration.log.level = logLevel
                try configuration.validate(source: "--log-level")
            }
            return configuration
        } catch {
            FileHandle.standardError.write(Data("\(program): configuration error: \(error)\n".utf8))
            throw ExitCode(2)
        }
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

/// The option every service executable takes for its HTTP port.
public struct MetricsOptions: ParsableArguments, Sendable {
    /// Overrides the service's `metrics` port.
    @Option(
        name: .long,
        help: ArgumentHelp(
            "Port for this service's /metrics and /healthz (overrides metrics.<service> and $BATON_METRICS_PORT; 0 turns it off).",
            valueName: "port"
        )
    )
    public var metricsPort: Int?

    /// Creates options with no values.
    public init() {}
}
