import ArgumentParser
import LoggerService
import Runtime

/// `baton-logger`: the status bus and the event log.
@main
struct LoggerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "baton-logger",
        abstract: "Run Baton's status bus (XSUB status_in → XPUB status_out) and write every event to <data_dir>/logs/events.jsonl.",
        discussion: ServiceOptions.configurationHelp
    )

    @OptionGroup var options: ServiceOptions

    func run() async throws {
        try await ServiceRunner.run(name: "logger", options: options) { environment in
            [LoggerService(context: environment.context, configuration: environment.configuration, logger: environment.logger)]
        }
    }
}
