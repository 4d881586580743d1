import ArgumentParser
import Config
import Foundation
import Logging
import LoggerService
import Messaging
import ServiceKit

extension Baton {
    /// `baton alerts`.
    struct Alerts: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the alerts the logger sends (alerts: in the configuration).",
            subcommands: [Test.self]
        )

        /// `baton alerts test`.
        struct Test: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Send a sample alert to the configured command and webhook, from this machine, and say what each answered.",
                discussion: """
                    The sample has "kind": "test" and "test": true, and the documented body of every alert \
                    (docs/PROTOCOL.md, "Alerts"). One attempt per channel unless --retries. Exits with status 1 if a \
                    channel failed, 2 if no alert channel is configured.
                    """
            )

            @OptionGroup var options: ServiceOptions

            @Option(help: ArgumentHelp("Attempts after the first, as alerts.retries does for real alerts.", valueName: "n"))
            var retries = 0

            func run() async throws {
                let configuration = try options.loadConfiguration(command: "alerts test")
                var settings = configuration.alerts
                guard settings.isEnabled else {
                    Console.error("baton alerts test: no alerts configured: set alerts.command or alerts.webhook (docs/CONFIGURATION.md)")
                    throw ExitCode(2)
                }
                settings.retries = max(retries, 0)
                var logger = Logger(label: "baton.alerts")
                logger.logLevel = Logger.Level(rawValue: configuration.log.level) ?? .info
                let sender = AlertSender(
                    settings: settings,
                    directory: (configuration.dataDirectory as NSString).appendingPathComponent("logger/alerts"),
                    logger: logger
                )
                let alert = Alert.sample()
                let outcomes = await sender.send(alert)
                for outcome in outcomes {
                    let target =
                        outcome.channel == "webhook"
                        ? "webhook \(Self.shown(settings.webhook))" : "command \(settings.command.joined(separator: " "))"
                    let verdict = outcome.delivered ? "delivered" : "FAILED"
                    let attempts = outcome.attempts == 1 ? "" : " after \(outcome.attempts) attempts"
                    Console.line("\(target): \(verdict)\(attempts): \(outcome.detail)")
                }
                Console.line("alert id \(alert.id)")
                if outcomes.contains(where: { !$0.delivered }) { throw ExitCode(1) }
            }

            /// A webhook as printed: its scheme, host and port only. Its user and password, and a path or query
            /// that may be the secret itself (as chat services' hooks are), stay off terminals and CI logs.
            static func shown(_ url: String) -> String {
                guard let components = URLComponents(string: url), let scheme = components.scheme, let host = components.host else {
                    return "(the configured URL)"
                }
                let port = components.port.map { ":\($0)" } ?? ""
                let rest = components.path.count > 1 || components.query != nil ? "/…" : ""
                return "\(scheme)://\(host)\(port)\(rest)"
            }
        }
    }
}
