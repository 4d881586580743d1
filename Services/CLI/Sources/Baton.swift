public import ArgumentParser
import Messaging

/// `baton`: the command line for a Baton deployment.
public struct Baton: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "baton",
        abstract: "Run scheduled algorithms and hand their results to independent processors over ZeroMQ.",
        discussion: """
            baton up runs the whole stack on this machine; baton watch follows the status bus from anywhere; \
            baton results and baton replay work on the algorithm host's data directory. \
            Each service can also be run alone: baton-logger, baton-scheduler, baton-algorithm, baton-processor.
            """,
        version: BatonVersion.current,
        subcommands: [
            Up.self, Status.self, Runs.self, Watch.self, Logs.self, Jobs.self, Trigger.self, Pause.self, Resume.self, Backfill.self,
            Cancel.self,
            Audit.self,
            ScheduleCommand.self,
            Results.self,
            Replay.self,
            Keygen.self,
            Alerts.self,
        ]
    )

    public init() {}
}
