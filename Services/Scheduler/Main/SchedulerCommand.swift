import ArgumentParser
import ServiceKit
import SchedulerService

/// `baton-scheduler`: fires the configured jobs' runs on time.
@main
struct SchedulerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "baton-scheduler",
        abstract: "Fire each configured job on its schedule and push run requests to the algorithm (binds endpoints.runs).",
        discussion: ServiceOptions.configurationHelp
    )

    @OptionGroup var options: ServiceOptions
    @OptionGroup var metricsOptions: MetricsOptions

    func run() async throws {
        try await ServiceRunner.run(.scheduler, options: options, metricsPort: metricsOptions.metricsPort) { environment in
            try await SchedulerService.make(environment: environment)
        }
    }
}
