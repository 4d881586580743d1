import ArgumentParser
import Foundation
import Messaging
import Config
import ServiceKit

extension Baton {
    /// `baton status`.
    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show what is running: services up or down, jobs, runs and their stages in flight, the backlog, recent errors.",
            discussion: """
                The logger answers from its status history (kept across its restarts); the scheduler adds each job's \
                schedule and next fire. Services down or stopped for longer than --gone (10m) are left out; --all \
                lists them. Errors and lost status events are those of the last --window (10m), per instance. Exits \
                with status 3 if the logger does not answer. The --json document is described in docs/PROTOCOL.md \
                ("baton status --json").
                """
        )

        @OptionGroup var options: ServiceOptions

        @Flag(help: "Print the status as one JSON document (stable; see docs/PROTOCOL.md).")
        var json = false

        @Option(help: ArgumentHelp("How long to wait for the logger, e.g. 5s.", valueName: "duration"))
        var timeout: String = "5s"

        @Flag(help: "Also list services gone (down or stopped for longer than --gone).")
        var all = false

        @Option(help: ArgumentHelp("A service down or stopped for longer than this is gone, e.g. 10m or 1h.", valueName: "duration"))
        var gone: String = "10m"

        @Option(help: ArgumentHelp("Count errors and lost status events over this much time, e.g. 10m.", valueName: "duration"))
        var window: String = "10m"

        static func seconds(_ text: String, option: String) throws -> Double {
            guard let duration = DurationText.parse(text), duration > .zero else {
                throw ValidationError("\(option): expected a duration such as 10m (got \"\(text)\")")
            }
            return duration / .seconds(1)
        }

        func run() async throws {
            let configuration = try options.loadConfiguration(command: "status")
            let context = try options.clientContext(configuration, command: "status")
            guard let wait = DurationText.parse(timeout), wait > .zero else {
                throw ValidationError("--timeout: expected a duration such as 5s (got \"\(timeout)\")")
            }
            let logger = RequestClient(context: context, endpoint: configuration.endpoints.query, timeout: wait)
            let scheduler = RequestClient(context: context, endpoint: configuration.endpoints.control, timeout: min(wait, .seconds(2)))
            async let jobsReply = try? scheduler.ask(ControlRequest(command: .jobs), expecting: ControlReply.self)
            let query = StatusQuery(
                all: all ? true : nil,
                goneAfter: try Self.seconds(gone, option: "--gone"),
                window: try Self.seconds(window, option: "--window")
            )
            guard var report = try await logger.ask(query, expecting: StatusReport.self) else {
                Console.error(
                    "baton status: the logger at \(configuration.endpoints.query) did not answer within \(DurationText.format(wait)); is baton-logger running?"
                )
                throw ExitCode(3)
            }
            if let error = report.error {
                Console.error("baton status: the logger refused the query: \(error)")
                throw ExitCode(1)
            }
            let schedulerJobs = await jobsReply?.jobs
            report.jobs = Self.merge(history: report.jobs, scheduler: schedulerJobs)
            if let schedulerJobs {
                // The bus can lose a run's last event (a service killed before it sent it); the scheduler's
                // ledger cannot. Runs it knows have ended are not shown in flight.
                let unfinished = Set(schedulerJobs.flatMap(\.running))
                report.runs = report.runs.filter { unfinished.contains($0.run) }
            }
            if json {
                let encoder = Timestamp.encoder()
                encoder.outputFormatting.insert(.prettyPrinted)
                Console.line(String(decoding: try encoder.encode(report), as: UTF8.self))
            } else {
                Console.write(Self.render(report, schedulerAnswered: schedulerJobs != nil))
            }
        }

        /// The logger's job history completed with the scheduler's view (schedule, next fire, paused).
        static func merge(history: [StatusReport.Job], scheduler: [ControlReply.Job]?) -> [StatusReport.Job] {
            var jobs = Dictionary(uniqueKeysWithValues: history.map { ($0.name, $0) })
            for job in scheduler ?? [] {
                var entry = jobs[job.name] ?? StatusReport.Job(name: job.name)
                entry.schedule = job.schedule
                entry.timeZone = job.timeZone
                entry.next = job.next
                entry.paused = job.paused
                if entry.lastRun == nil, let last = job.lastRun {
                    entry.lastRun = last
                    entry.lastOutcome = job.lastOutcome
                    entry.lastDurationMs = job.lastDurationMs.map(Double.init)
                }
                jobs[job.name] = entry
            }
            return jobs.values.sorted { $0.name < $1.name }
        }

        /// The report as text for a terminal.
        static func render(_ report: StatusReport, schedulerAnswered: Bool) -> String {
            let now = report.time
            func ago(_ date: Date) -> String { "\(Self.span(now.timeIntervalSince(date))) ago" }
            var text = "Baton status at \(Timestamp.format(now))\n\nSERVICES\n"
            let windowText = report.windowSeconds.map(Self.setting)
            let window = windowText.map { " in the last \($0)" } ?? ""
            if report.services.isEmpty {
                text += (report.hiddenServices ?? 0) > 0 ? "  none up or recently down\n" : "  none heard from yet\n"
            }
            func label(_ service: StatusReport.Service) -> String {
                service.instance == service.service ? service.service : "\(service.service) \(service.instance)"
            }
            let width = report.services.map { label($0).count }.max() ?? 0
            for service in report.services {
                let name = label(service).padding(toLength: width, withPad: " ", startingAt: 0)
                var line = "  \(name)  \(service.state == "up" ? "up  " : service.state.uppercased())"
                if let host = service.host { line += "  host \(host)" }
                if let pid = service.pid { line += "  pid \(pid)" }
                if let version = service.version { line += "  v\(version)" }
                if let uptime = service.uptimeSeconds { line += "  up for \(Self.span(Double(uptime)))" }
                if service.state != "up" { line += "  last seen \(ago(service.lastSeen))" }
                if let exit = service.lastExit, let at = service.lastExitAt {
                    line += "  (\(service.state == "up" ? "restarted after: " : "")\(exit) \(ago(at))"
                    line += service.restarts > 0 ? ", \(service.restarts) restart\(service.restarts == 1 ? "" : "s"))" : ")"
                }
                var trouble: [String] = []
                if let errors = service.recentErrors, errors > 0 { trouble.append("\(errors) error\(errors == 1 ? "" : "s")") }
                if let lost = service.recentEventsLost, lost > 0 { trouble.append("\(lost) event\(lost == 1 ? "" : "s") lost") }
                if !trouble.isEmpty { line += "  \(trouble.joined(separator: ", "))\(window)" }
                if service.gone == true { line += "  (gone)" }
                text += line + "\n"
            }
            if let hidden = report.hiddenServices, hidden > 0 {
                let after = report.goneAfterSeconds.map { " for longer than \(Self.setting($0))" } ?? ""
                text += "  (\(hidden) service\(hidden == 1 ? "" : "s") down or stopped\(after) not shown; baton status --all lists them)\n"
            }
            text += "\nJOBS\n"
            if !schedulerAnswered { text += "  (the scheduler did not answer: schedules and next fires unknown)\n" }
            if report.jobs.isEmpty { text += "  none\n" }
            for job in report.jobs {
                var line = "  \(job.name)"
                if let schedule = job.schedule { line += "  \(schedule) (\(job.timeZone ?? "UTC"))" }
                if job.paused == true {
                    line += "  PAUSED"
                } else if schedulerAnswered {
                    line += "  next \(job.next.map(Timestamp.format) ?? "never")"
                }
                if let last = job.lastRun {
                    line += "  last \(last) \(job.lastOutcome ?? "")"
                    if let duration = job.lastDurationMs { line += " in \(Self.span(duration / 1000))" }
                }
                if job.succeeded + job.failed > 0 { line += "  (\(job.succeeded) succeeded, \(job.failed) failed)" }
                text += line + "\n"
            }
            text += "\nRUNS IN FLIGHT\n"
            if report.runs.isEmpty { text += "  none\n" }
            for run in report.runs {
                var line = "  \(run.run)  \(run.state)"
                if let percent = run.percent { line += String(format: " %.0f%%", percent) }
                if let message = run.message, !message.isEmpty { line += "  \(message)" }
                if let started = run.startedAt {
                    line += "  started \(ago(started))"
                } else if let scheduled = run.scheduledAt {
                    line += "  fired \(ago(scheduled))"
                }
                if let attempt = run.attempt, attempt > 1 { line += "  attempt \(attempt)" }
                text += line + "\n"
            }
            if let pipelines = report.pipelines { text += Self.renderPipelines(pipelines, now: now) }
            text += "\nBACKLOG\n"
            if let backlog = report.backlog {
                text += "  \(backlog.pending) waiting, \(backlog.sent) handed out (until acknowledged or its lease runs out), "
                text += "\(backlog.dead) dead-lettered"
                text += "  (last change \(ago(backlog.time)))\n"
            } else {
                text += "  unknown (no count from the algorithm yet)\n"
            }
            if let full = report.diskFull, !full.isEmpty {
                text += "\nDISK FULL (holding what cannot be recorded; resumes by itself when space returns)\n"
                for (instance, message) in full.sorted(by: { $0.key < $1.key }) { text += "  \(instance)  \(message)\n" }
            }
            if !report.errors.isEmpty {
                text += "\nRECENT ERRORS\(windowText.map { " (last \($0))" } ?? "")\n"
                for error in report.errors.prefix(10) {
                    var line = "  \(Timestamp.format(error.time))  \(error.source)/\(error.instance)"
                    if let run = error.run { line += "  \(run)" }
                    line += "  \(error.message)"
                    text += line + "\n"
                }
            }
            let lost = report.eventsLost.filter { $0.value > 0 }
            if !lost.isEmpty {
                text += "\nSTATUS EVENTS LOST\(windowText.map { " (last \($0))" } ?? "")\n"
                for (publisher, count) in lost.sorted(by: { $0.key < $1.key }) { text += "  \(publisher): \(count)\n" }
            }
            return text
        }

        /// A setting in seconds as it would be written: `10m`, `1h30m`.
        static func setting(_ seconds: Double) -> String {
            DurationText.format(.milliseconds(Int64((seconds * 1000).rounded())))
        }

        /// A short human span: `42s`, `5m 3s`, `2h 5m`, `3d 4h`.
        static func span(_ seconds: Double) -> String {
            if seconds < 10 { return String(format: "%.1fs", max(seconds, 0)) }
            let total = Int(seconds.rounded())
            switch total {
            case ..<60: return "\(total)s"
            case ..<3600: return "\(total / 60)m \(total % 60)s"
            case ..<86_400: return "\(total / 3600)h \(total % 3600 / 60)m"
            default: return "\(total / 86_400)d \(total % 86_400 / 3600)h"
            }
        }
    }
}
