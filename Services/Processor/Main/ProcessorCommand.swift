import ArgumentParser
import Commands
import Config
import ProcessorService
import ServiceKit

/// `baton-processor`: processes and stores results; run as many as needed, on any host.
@main
struct ProcessorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "baton-processor",
        abstract: """
            Take results from the algorithm, process them (built-in store into SQLite, or processor.command) and \
            store each exactly once (connects endpoints.results and endpoints.acks). Start several to share the work.
            """,
        discussion: ServiceOptions.configurationHelp
    )

    @OptionGroup var options: ServiceOptions
    @OptionGroup var metricsOptions: MetricsOptions

    @Option(help: ArgumentHelp("This processor's name in events and stored rows (default: host:pid).", valueName: "name"))
    var name: String?

    func run() async throws {
        try await ServiceRunner.run(.processor, options: options, instance: name, metricsPort: metricsOptions.metricsPort) {
            environment in
            // Commands started from now on carry this process's marker, so a successor can find what it leaves behind.
            CommandOwner.register(service: "processor", dataDirectory: environment.configuration.dataDirectory)
            return try await ProcessorService.make(environment: environment)
        }
    }
}
