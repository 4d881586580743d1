import Commands
import Config
public import ServiceKit

extension ServiceDescription {
    /// `baton-logger`: binds the status bus and the `query` socket, and writes the event log.
    public static let logger = ServiceDescription(
        name: "logger",
        metricsPort: { $0.port(\.logger) },
        dataFolders: ["logs", "logger"],
        // Joined as plain strings: checked before anything else touches the path (see `PathCheck.join`).
        files: { [("data_dir", PathCheck.join($0.dataDirectory, "logs/events.jsonl"))] },
        boundEndpoints: { [("endpoints.status_in", $0.statusIn), ("endpoints.status_out", $0.statusOut), ("endpoints.query", $0.query)] },
        // The alert command is found now, as jobs' commands are, not at the first failure it was meant to report.
        checkCommands: { configuration, environment, source throws(ConfigurationError) in
            let command = configuration.alerts.command
            guard !command.isEmpty else { return }
            try CommandCheck.check([("alerts", Configuration.Command(argv: command))], environment: environment, source: source)
        }
    )
}
