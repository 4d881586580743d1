import ArgumentParser
import LoggerService
import Config
import ServiceKit

/// `baton-logger`: the status bus and the event log.
@main
struct LoggerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "baton-logger",
        abstract: "Run Baton's status bus (XSUB status_in → XPUB status_out) and write every event to <data_dir>/logs/events.jsonl.",
        discussion: ServiceOptions.configurationHelp
    )

    @OptionGroup var options: ServiceOptions
    @OptionGroup var metricsOptions: MetricsOptions

    func run() async throws {
        try await ServiceRunner.run(.logger, options: options, metricsPort: metricsOptions.metricsPort) { environment in
            [
                LoggerService(
                    context: environment.context,
                    configuration: environment.configuration,
                    logger: environment.logger,
                    metrics: environment.metrics,
                    publisher: environment.publisher,
                    web: environment.web
                )
            ]
        }
    }
}
