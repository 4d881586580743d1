import Commands
import Config
public import ServiceKit

extension ServiceDescription {
    /// `baton-processor`: binds nothing, writes the result store, runs `processor.command`; several run at once.
    public static let processor = ServiceDescription(
        name: "processor",
        metricsPort: { $0.port(\.processor) },
        // Several processors may run on one host with one configuration: each takes the next free port.
        metricsPortSearch: 64,
        dataFolders: ["processor"],
        files: { configuration in
            // A PostgreSQL store has no file here.
            guard configuration.store.url.isEmpty else { return [] }
            let store = configuration.store.path
            // Joined as plain strings: checked before anything else touches the path (see `PathCheck.join`).
            return [
                (
                    store.isEmpty ? "data_dir" : "store.path",
                    store.isEmpty ? PathCheck.join(configuration.dataDirectory, "results.sqlite") : store
                )
            ]
        },
        // One pid file per processor instance, so several share a data directory.
        pidName: { instance in instance.hasPrefix("processor") ? instance : "processor-\(instance)" },
        // Its own command and the stage commands of the jobs it knows (a task carries its stage, so a processor
        // with another file may still be given others: those are checked when they run).
        checkCommands: { configuration, environment, source throws(ConfigurationError) in
            let processor = configuration.processor
            var commands: [(String, Configuration.Command)] = []
            if !processor.command.isEmpty {
                let command = Configuration.Command(
                    argv: processor.command,
                    workingDirectory: processor.workingDirectory,
                    environment: processor.environment
                )
                commands.append(("processor", command))
            }
            for (index, job) in configuration.jobs.enumerated() {
                for (number, stage) in job.stages.enumerated() where stage.builtin == nil {
                    commands.append(("jobs[\(index)].stages[\(number)]", stage.command))
                }
            }
            guard !commands.isEmpty else { return }
            try CommandCheck.check(commands, environment: environment, source: source)
        }
    )
}
