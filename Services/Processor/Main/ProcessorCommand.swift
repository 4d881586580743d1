import ArgumentParser
import ProcessorService
import Runtime

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
        try await ServiceRunner.run(name: "processor", options: options, instance: name, metricsPort: metricsOptions.metricsPort) {
            environment in
            try await ProcessorService.make(environment: environment)
        }
    }
}
