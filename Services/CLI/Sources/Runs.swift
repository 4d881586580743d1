import ArgumentParser
import Foundation
import Messaging
import Config
import ServiceKit

extension Baton {
    /// `baton runs`.
    struct Runs: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Search the run history: every run the logger saw, its state, timing, stages and errors.",
            discussion: """
                The logger keeps each run for log.history (90 days) after it was last heard of. Runs are listed newest \
                slot first; --from and --to select slots (logical times), as ISO 8601 times or durations before now \
                (7d). --run shows one run with its stages and tasks. Exits with status 3 if the logger does not answer. \
                The --json document is described in docs/PROTOCOL.md ("runs").
                """
        )

        @OptionGroup var options: ServiceOptions

        @Option(help: ArgumentHelp("Only this job's runs.", valueName: "name"))
        var job: String?

        @Option(
            help: ArgumentHelp(
                "Only runs in this state: \(StatusQuery.runStates.joined(separator: ", ")).",
                valueName: "state"
            )
        )
        var state: String?

        @Option(
            parsing: .unconditional,
            help: ArgumentHelp("Only slots at or after this: an ISO 8601 time, or a duration before now (7d).", valueName: "time")
        )
        var from: TimeArgument?

        @Option(
            parsing: .unconditional,
            help: ArgumentHelp("Only slots before this: an ISO 8601 time, or a duration before now.", valueName: "time")
        )
        var to: TimeArgument?

        @Option(help: ArgumentHelp("Show this run with its stages and tasks.", valueName: "run id"))
        var run: String?

        @Option(parsing: .unconditional, help: ArgumentHelp("At most this many runs (1 to 10000).", valueName: "n"))
        var limit = 100

        @Flag(help: "Print the runs as one JSON document (stable; see docs/PROTOCOL.md).")
        var json = false

        @Option(help: ArgumentHelp("How long to wait for the logger, e.g. 5s.", valueName: "duration"))
        var timeout: String = "5s"

        func validate() throws {
            if let state, !StatusQuery.runStates.contains(state) {
                throw ValidationError("--state: expected one of \(StatusQuery.runStates.joined(separator: ", ")) (got \"\(state)\")")
            }
            if let job, !JobName.isValid(job) { throw ValidationError("--job: \"\(job)\" is not a job name") }
            if let run, RunID.parse(run) == nil { throw ValidationError("--run: \"\(run)\" is not a run id (JOB@TIME)") }
            if !(1...StatusQuery.maxLimit).contains(limit) { throw ValidationError("--limit: expected 1 to \(StatusQuery.maxLimit)") }
            if let from, let to, from.date >= to.date { throw ValidationError("--from must be before --to") }
        }

        func run() async throws {
            let configuration = try options.loadConfiguration(command: "runs")
            let context = try options.clientContext(configuration, command: "runs")
            guard let wait = DurationText.parse(timeout), wait > .zero else {
                throw ValidationError("--timeout: expected a duration such as 5s (got \"\(timeout)\")")
            }
            let logger = RequestClient(context: context, endpoint: configuration.endpoints.query, timeout: wait)
            let query = StatusQuery.runs(job: job, state: state, from: from?.date, to: to?.date, limit: limit, run: run)
            guard let report = try await logger.ask(query, expecting: RunsReport.self) else {
                Console.error(
                    "baton runs: the logger at \(configuration.endpoints.query) did not answer within \(DurationText.format(wait)); is baton-logger running?"
                )
                throw ExitCode(3)
            }
            if json {
                // The document is printed whatever the answer, so that a script reads `error` where it reads
                // the rest; the exit status and stderr say it too.
                let encoder = Timestamp.encoder()
                encoder.outputFormatting.insert(.prettyPrinted)
                Console.line(String(decoding: try encoder.encode(report), as: UTF8.self))
            }
            if let error = report.error {
                Console.error("baton runs: \(error)")
                throw ExitCode(1)
            }
            if let run, report.runs.isEmpty {
                // The same answer with --json or without: the run asked for is not there.
                Console.error("baton runs: no run \(run) in the history")
                throw ExitCode(1)
            }
            if json {
                return
            } else if run != nil {
                Console.write(report.runs.map(Self.detail).joined(separator: "\n"))
            } else {
                Console.write(Self.table(report))
            }
        }

        /// One line per run.
        static func table(_ report: RunsReport) -> String {
            guard !report.runs.isEmpty else { return "no runs\n" }
            let width = report.runs.map(\.run.count).max() ?? 0
            var text =
                "\("RUN".padding(toLength: width, withPad: " ", startingAt: 0))  STATE       LATE     ALGORITHM  PROCESSING  PARTS  ERROR\n"
            for run in report.runs {
                var line = run.run.padding(toLength: width, withPad: " ", startingAt: 0)
                line += "  " + run.state.padding(toLength: 10, withPad: " ", startingAt: 0)
                line += "  " + (run.latenessMs.map { milliseconds($0) } ?? "-").padding(toLength: 7, withPad: " ", startingAt: 0)
                line += "  " + (span(run.startedAt, run.finishedAt) ?? "-").padding(toLength: 9, withPad: " ", startingAt: 0)
                line += "  " + (span(run.finishedAt, run.endedAt) ?? "-").padding(toLength: 10, withPad: " ", startingAt: 0)
                line += "  " + (run.parts.map(String.init) ?? "-").padding(toLength: 5, withPad: " ", startingAt: 0)
                if let error = run.error { line += "  " + WireText.readable(error, limit: 120) }
                text += line.trimmingCharacters(in: .whitespaces) + "\n"
            }
            if report.truncated { text += "(more runs match: --limit or --from/--to narrow it)\n" }
            return text
        }

        /// One run with its stages and tasks.
        static func detail(_ run: RunsReport.Run) -> String {
            var text = "\(run.run)  \(run.state)\n"
            func field(_ name: String, _ value: String?) {
                if let value { text += "  \(name.padding(toLength: 10, withPad: " ", startingAt: 0))  \(value)\n" }
            }
            field("slot", Timestamp.format(run.slot))
            field("trigger", run.trigger)
            field("fired", run.scheduledAt.map { "\(Timestamp.format($0))\(run.latenessMs.map { " (\(milliseconds($0)) late)" } ?? "")" })
            field("started", run.startedAt.map(Timestamp.format))
            field("finished", run.finishedAt.map { "\(Timestamp.format($0))\(span(run.startedAt, $0).map { " (algorithm \($0))" } ?? "")" })
            field("ended", run.endedAt.map(Timestamp.format))
            field("attempts", run.attempts > 0 ? "\(run.attempts)" : nil)
            field("parts", run.parts.map { "\($0)\(run.size.map { ", \($0) bytes" } ?? "")" })
            field("error", run.error.map { WireText.readable($0, limit: 2000) })
            if !run.stages.isEmpty { text += "  stages\n" }
            for stage in run.stages {
                var line = "    \(stage.index) \(stage.name ?? "?")  \(stage.succeeded)/\(stage.parts.map(String.init) ?? "?") done"
                if stage.failed > 0 { line += ", \(stage.failed) failed attempts" }
                if stage.dead > 0 { line += ", \(stage.dead) dead" }
                if let span = span(stage.readyAt, stage.doneAt) { line += "  in \(span)" }
                text += line + "\n"
            }
            let tasks = run.tasks ?? []
            if !tasks.isEmpty { text += "  tasks (those with events of their own; tasks settled in a batch are counted on their stage)\n" }
            for task in tasks {
                var line = "    stage \(task.stage) part \(task.part)  \(task.state)  attempts \(task.attempts)"
                if let processor = task.processor { line += "  \(processor)" }
                if let error = task.error { line += "  \(WireText.readable(error, limit: 500))" }
                text += line + "\n"
            }
            return text
        }

        static func milliseconds(_ value: Double) -> String {
            abs(value) < 1000 ? String(format: "%.0fms", value) : Status.span(value / 1000)
        }

        static func span(_ start: Date?, _ end: Date?) -> String? {
            guard let start, let end else { return nil }
            return Status.span(end.timeIntervalSince(start))
        }
    }
}
