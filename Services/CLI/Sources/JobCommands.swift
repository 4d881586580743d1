import Scheduling
import ArgumentParser
import Foundation
import Messaging
import Config
import ServiceKit

extension Baton {
    /// `baton jobs`.
    struct Jobs: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the scheduler's jobs: schedule, time zone, next fire, last run and its outcome, paused or not."
        )

        @OptionGroup var options: ServiceOptions

        @Flag(help: "Print the scheduler's answer as JSON.")
        var json = false

        func run() async throws {
            let configuration = try options.loadConfiguration(command: "jobs")
            let context = try options.clientContext(configuration, command: "jobs")
            let reply = try await ControlClient(context: context, endpoint: configuration.endpoints.control).send(
                .init(command: .jobs),
                command: "jobs"
            )
            if json {
                Console.line(String(decoding: try Timestamp.encoder().encode(reply.jobs ?? []), as: UTF8.self))
                return
            }
            for job in reply.jobs ?? [] {
                var line = "\(job.name)  \(job.schedule) (\(job.timeZone))  \(job.policies)"
                line += job.paused ? "  PAUSED" : "  next \(job.next.map(Timestamp.format) ?? "never")"
                if !job.running.isEmpty { line += "  running \(job.running.joined(separator: ", "))" }
                if let last = job.lastRun {
                    line += "  last \(last) \(job.lastOutcome ?? "")"
                    if let duration = job.lastDurationMs { line += String(format: " in %.1fs", Double(duration) / 1000) }
                }
                Console.line(line)
            }
        }
    }

    /// `baton trigger`.
    struct Trigger: JobCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a job now (its run id ends in ~manual).",
            discussion: """
                The run follows the job's overlap policy like a scheduled one: with a run in flight, forbid refuses \
                it (exit status 1, with the reason), queue queues it behind the runs in flight, replace cancels them, \
                allow runs it alongside. A paused job is refused unless --force is given.
                """
        )

        @OptionGroup var options: ServiceOptions

        @Argument(help: "The job.")
        var job: String

        @Flag(help: "Run it even if the job is paused.")
        var force = false

        static let name = "trigger"
        static let done = "triggered"
        static let listsRuns = true
        var request: ControlRequest { .init(command: .trigger, job: job, force: force ? true : nil) }
    }

    /// `baton cancel`.
    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "End a run, or every run of a job that has not started yet.",
            discussion: """
                `baton cancel RUN` ends one run: a run waiting (queued at the scheduler or at the algorithm) is                 dropped, a running one is stopped (its command's whole process group: SIGTERM, then SIGKILL).                 `baton cancel --job J --queued` ends every run of J that has not started, e.g. after a large                 backfill. Each is recorded `cancelled` with its slot.
                """
        )

        @OptionGroup var options: ServiceOptions

        @Argument(help: "The run id.")
        var run: String?

        @Option(help: ArgumentHelp("With --queued: the job whose waiting runs to cancel.", valueName: "name"))
        var job: String?

        @Flag(help: "Cancel every run of --job that has not started.")
        var queued = false

        func validate() throws {
            if run == nil, job == nil || !queued {
                throw ValidationError("give a run id, or --job NAME --queued")
            }
            if run != nil, job != nil || queued {
                throw ValidationError("give either a run id or --job NAME --queued, not both")
            }
        }

        func run() async throws {
            let configuration = try options.loadConfiguration(command: "cancel")
            let context = try options.clientContext(configuration, command: "cancel")
            let reply = try await ControlClient(context: context, endpoint: configuration.endpoints.control).send(
                .init(command: .cancel, job: job, run: run, queued: queued ? true : nil),
                command: "cancel"
            )
            Console.line(reply.message ?? "cancelled")
            if run == nil { for id in reply.runs ?? [] { Console.line(id) } }
        }
    }

    /// `baton pause`.
    struct Pause: JobCommand {
        static let configuration = CommandConfiguration(abstract: "Stop firing a job until it is resumed (kept across scheduler restarts).")

        @OptionGroup var options: ServiceOptions

        @Argument(help: "The job.")
        var job: String

        static let name = "pause"
        static let done = "paused"
        var request: ControlRequest { .init(command: .pause, job: job) }
    }

    /// `baton resume`.
    struct Resume: JobCommand {
        static let configuration = CommandConfiguration(
            abstract: "Fire a paused job again. Slots missed while paused are recorded as skipped, unless --catch-up."
        )

        @OptionGroup var options: ServiceOptions

        @Argument(help: "The job.")
        var job: String

        @Flag(help: "Apply the job's misfire policy to the slots missed while it was paused instead of skipping them.")
        var catchUp = false

        static let name = "resume"
        static let done = "resumed"
        var request: ControlRequest { .init(command: .resume, job: job, catchUp: catchUp) }
    }

    /// `baton backfill`.
    struct Backfill: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a job for each of its slots from --from to --to, each with that slot's logical time.",
            discussion:
                "Slots that already ran are skipped unless --rerun. The fired runs are recorded, so a backfill continues after a scheduler restart."
        )

        @OptionGroup var options: ServiceOptions

        @Argument(help: "The job.")
        var job: String

        @Option(help: ArgumentHelp("The first logical time (ISO 8601).", valueName: "time"))
        var from: TimeArgument

        @Option(help: ArgumentHelp("The last logical time (ISO 8601).", valueName: "time"))
        var to: TimeArgument

        @Flag(help: "Run slots again that already ran (with new run ids, e.g. job@time~2).")
        var rerun = false

        func validate() throws {
            if from.date > to.date { throw ValidationError("--from must not be after --to") }
        }

        func run() async throws {
            let configuration = try options.loadConfiguration(command: "backfill")
            let context = try options.clientContext(configuration, command: "backfill")
            let reply = try await ControlClient(context: context, endpoint: configuration.endpoints.control, timeout: .seconds(60)).send(
                .init(command: .backfill, job: job, from: from.date, to: to.date, rerun: rerun),
                command: "backfill"
            )
            Console.line(reply.message ?? "backfill started")
            for run in reply.runs ?? [] { Console.line(run) }
        }
    }

    /// `baton schedule`.
    struct ScheduleCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "schedule",
            abstract: "Print the next fire times of a cron expression, to check it before deploying it.",
            discussion: """
                Times are ISO 8601 with the zone's UTC offset. A local time skipped by a daylight-saving change fires \
                shifted by the gap (02:30 → 03:30); a local time that happens twice fires once, at its first occurrence.
                """
        )

        @Argument(help: "A cron expression (5 fields, or 6 with seconds first) or @hourly, @daily, @weekly, @monthly, @yearly.")
        var expression: String

        @Option(help: ArgumentHelp("IANA time zone the fields are read in.", valueName: "zone"))
        var tz = "UTC"

        @Option(help: ArgumentHelp("Start after this time (default: now).", valueName: "time"))
        var from: TimeArgument?

        @Option(help: ArgumentHelp("How many fire times to print.", valueName: "n"))
        var count = 5

        func run() async throws {
            guard let zone = TimeZone(identifier: tz) else {
                Console.error("baton schedule: unknown time zone \"\(tz)\" (use an IANA name such as Europe/Berlin)")
                throw ExitCode(2)
            }
            let expression: CronExpression
            do {
                expression = try CronExpression(self.expression)
            } catch {
                Console.error("baton schedule: \(error)")
                throw ExitCode(2)
            }
            let schedule = CronSchedule(expression, timeZone: zone)
            var date = from?.date ?? Date()
            let style = Date.ISO8601FormatStyle(timeZone: zone).year().month().day().time(includingFractionalSeconds: false)
                .timeZone(separator: .colon)
            for _ in 0..<max(count, 0) {
                guard let next = schedule.next(after: date) else { break }
                Console.line(next.formatted(style))
                date = next
            }
        }
    }
}

/// The shape `trigger`, `pause` and `resume` share: one request about one job to the scheduler's `control` socket,
/// and its answer printed: the message (or `done` if it has none), then the run ids it names if `listsRuns`.
protocol JobCommand: AsyncParsableCommand {
    var options: ServiceOptions { get }
    var job: String { get }
    /// The command, as `baton NAME` and in messages.
    static var name: String { get }
    /// Printed when the scheduler's answer has no message.
    static var done: String { get }
    /// Whether the run ids in the answer are printed, one a line.
    static var listsRuns: Bool { get }
    /// The request sent.
    var request: ControlRequest { get }
}

extension JobCommand {
    static var listsRuns: Bool { false }

    func run() async throws {
        let configuration = try options.loadConfiguration(command: Self.name)
        let context = try options.clientContext(configuration, command: Self.name)
        let reply = try await ControlClient(context: context, endpoint: configuration.endpoints.control).send(request, command: Self.name)
        Console.line(reply.message ?? Self.done)
        if Self.listsRuns { for run in reply.runs ?? [] { Console.line(run) } }
    }
}
