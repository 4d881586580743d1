import Commands
import Config
public import ServiceKit

extension ServiceDescription {
    /// `baton-algorithm`: binds `results` and `acks`, keeps its outbox and raw results under `data_dir`, and runs
    /// the jobs' commands.
    public static let algorithm = ServiceDescription(
        name: "algorithm",
        metricsPort: { $0.port(\.algorithm) },
        dataFolders: ["algorithm", "raw"],
        boundEndpoints: {
            [("endpoints.results", $0.results), ("endpoints.acks", $0.acks), ("endpoints.algorithm_control", $0.algorithmControl)]
        },
        checkCommands: { configuration, environment, source throws(ConfigurationError) in
            var commands: [(field: String, command: Configuration.Command)] = []
            for (index, job) in configuration.jobs.enumerated() {
                if case .command(let command) = job.algorithm { commands.append(("jobs[\(index)]", command)) }
            }
            try CommandCheck.check(commands, environment: environment, source: source)
        }
    )
}
