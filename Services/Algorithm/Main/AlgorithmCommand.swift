import AlgorithmService
import ArgumentParser
import Commands
import Config
import ServiceKit

/// `baton-algorithm`: runs the jobs' algorithms and hands results to the processors.
@main
struct AlgorithmCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "baton-algorithm",
        abstract: """
            Run each requested job's algorithm, keep its raw result under <data_dir>/raw, and hand it to the \
            processors (connects endpoints.runs; binds endpoints.results and endpoints.acks).
            """,
        discussion: ServiceOptions.configurationHelp
    )

    @OptionGroup var options: ServiceOptions
    @OptionGroup var metricsOptions: MetricsOptions

    func run() async throws {
        try await ServiceRunner.run(.algorithm, options: options, metricsPort: metricsOptions.metricsPort) { environment in
            // Commands started from now on carry this process's marker, so a successor can find what it leaves behind.
            CommandOwner.register(service: "algorithm", dataDirectory: environment.configuration.dataDirectory)
            return try await AlgorithmService.make(environment: environment)
        }
    }
}
