// Over 300 lines: one fold of every status event into one board; split by event type, the rules for one
// service or run (heartbeats, gone, restarts) would be spread over several files.
public import Foundation
public import Messaging

/// What the status bus says about the deployment, folded from events: services and their heartbeats, runs
/// in flight with their progress, the latest finished runs, each job's last outcome, the backlog, the latest
/// errors and the events lost. The logger keeps one, saves it (see ``StatusBoardFile``) and answers
/// `baton status` from it.
///
/// Pure: time comes in as arguments, so tests drive it with made-up events and clocks.
public struct StatusBoard: Codable, Sendable, Equatable {
    /// How many finished runs are kept.
    public static let recentLimit = 200
    /// How many errors are kept (the report shows those of the last ``View/window``).
    public static let errorLimit = 200
    /// How many unfinished runs are tracked (the oldest are dropped beyond this).
    public static let inFlightLimit = 1000
    /// A service silent for this many heartbeat intervals is down.
    public static let missedHeartbeats = 3
    /// A service silent for this long is forgotten, even by `baton status --all` (and losses this old too).
    public static let forgetAfter: TimeInterval = 24 * 3600
    /// The most service instances remembered; beyond it the longest silent are forgotten first.
    public static let serviceLimit = 500
    /// The most loss records kept (see ``recordLoss(publisher:lost:at:)``).
    public static let lossLimit = 1000

    /// How a report is cut: which services it lists and over what window it counts.
    public struct View: Sendable, Equatable {
        /// A service down or stopped and not heard from for longer than this is gone: left out unless `all`.
        public var goneAfter: TimeInterval
        /// Errors and lost events are counted over this much time before the report.
        public var window: TimeInterval
        /// List gone services too.
        public var all: Bool

        /// The default view: gone after 10 minutes, counts over the last 10 minutes, gone services left out.
        public init(goneAfter: TimeInterval = 600, window: TimeInterval = 600, all: Bool = false) {
            self.goneAfter = goneAfter
            self.window = window
            self.all = all
        }
    }

    /// Events lost from one publisher, counted when the gap was seen (the logger's clock).
    struct LossRecord: Codable, Sendable, Equatable {
        var publisher: String
        var time: Date
        var lost: UInt64
    }

    struct ServiceEntry: Codable, Sendable, Equatable {
        var service: String
        var instance: String
        var host: String?
        var pid: Int?
        var version: String?
        var startedAt: Date?
        var lastSeen: Date
        var stopped: Bool
        var heartbeatMs: Int
        /// Set when its supervisor saw it exit, until it starts again.
        var exited: Bool = false
        var restarts: Int = 0
        var lastExit: String?
        var lastExitAt: Date?
        /// Its process said `service.stopped` and no `service.started` came since: kept apart from `stopped`, which
        /// the next process's first log lines clear before its own `service.started` (absent in older boards).
        var saidGoodbye: Bool?
    }

    private var services: [String: ServiceEntry] = [:]
    private var inFlight: [String: StatusReport.Run] = [:]
    private var recent: [StatusReport.Run] = []
    private var jobs: [String: StatusReport.Job] = [:]
    private var backlog: StatusReport.Backlog?
    private var errors: [StatusReport.ErrorRecord] = []
    private var lost: [String: UInt64] = [:]
    /// Losses with their time, for the window's counts (absent in boards saved before it existed).
    private var lossLog: [LossRecord]?
    private var diskFull: [String: String]?
    /// Runs whose pipeline is in flight (absent in boards saved before pipelines).
    private var pipelines: PipelineBoard?

    /// An empty board.
    public init() {}

    /// Folds one event in; returns whether it changed more than a service's last-seen time (a heartbeat
    /// from a service already up changes nothing worth saving).
    /// - Parameters:
    ///   - event: The event.
    ///   - received: When the logger received it (liveness uses the logger's clock, not the publisher's).
    @discardableResult
    public mutating func apply(_ event: StatusEvent, received: Date) -> Bool {
        let attributes = event.attributes ?? [:]
        if event.type == EventType.supervisorExited, let source = attributes["service"], let instance = attributes["instance"],
            var child = services["\(source)/\(instance)"]
        {
            // The supervisor saw the process end: it is down now, not three heartbeats from now.
            child.exited = true
            child.lastExit = attributes["status"] ?? "exited"
            child.lastExitAt = event.time
            services["\(source)/\(instance)"] = child
        }
        let key = "\(event.source)/\(event.instance)"
        var service =
            services[key]
            ?? ServiceEntry(
                service: event.source,
                instance: event.instance,
                lastSeen: received,
                stopped: false,
                heartbeatMs: 5000
            )
        service.lastSeen = received
        service.stopped = false
        switch event.type {
        case EventType.serviceStarted:
            // Events the new process sent before its `service.started` (its first log lines) found the entry
            // already; a restart is an entry whose earlier process had started.
            if let previous = services[key], let earlier = previous.startedAt, earlier != event.time {
                if previous.exited || !(previous.stopped || previous.saidGoodbye == true) {
                    // It started again without having said goodbye: the previous process died.
                    service.restarts += 1
                    if !previous.exited {
                        service.lastExit = "ended without stopping"
                        service.lastExitAt = previous.lastSeen
                    }
                }
            }
            service.exited = false
            service.saidGoodbye = nil
            service.startedAt = event.time
            fallthrough
        case EventType.serviceHeartbeat:
            if let host = attributes["host"] { service.host = host }
            if let pid = attributes["pid"].flatMap(Int.init) { service.pid = pid }
            if let version = attributes["version"] { service.version = version }
            if let interval = attributes["interval_ms"].flatMap(Int.init), interval > 0 { service.heartbeatMs = interval }
            if service.startedAt == nil, let uptime = attributes["uptime_s"].flatMap(Double.init) {
                service.startedAt = event.time.addingTimeInterval(-uptime)
            }
        case EventType.serviceStopped:
            service.stopped = true
            service.saidGoodbye = true
        default:
            break
        }
        let known = services[key]
        services[key] = service
        if event.type == EventType.serviceHeartbeat, var unchanged = known, !unchanged.stopped, !unchanged.exited {
            unchanged.lastSeen = service.lastSeen
            if unchanged == service { return false }
        }
        applyRun(event, attributes: attributes)
        if event.run != nil {
            if pipelines == nil { pipelines = PipelineBoard() }
            pipelines?.apply(event)
        }
        // A processor whose store is down cannot write its state either: shown the same way until it is back.
        if event.type == EventType.diskFull || event.type == EventType.storeDown {
            diskFull = (diskFull ?? [:]).merging([key: event.message ?? "cannot write its state"]) { _, new in new }
        } else if event.type == EventType.diskOK || event.type == EventType.storeUp || event.type == EventType.serviceStarted {
            diskFull?[key] = nil
            if diskFull?.isEmpty == true { diskFull = nil }
        }
        if event.type == EventType.resultBacklog,
            let pending = attributes["pending"].flatMap(Int.init),
            let sent = attributes["sent"].flatMap(Int.init),
            let dead = attributes["dead"].flatMap(Int.init)
        {
            backlog = .init(pending: pending, sent: sent, dead: dead, time: event.time)
        }
        // Turned-away input (malformed messages, clients whose key is not allowed) is listed with the errors.
        if event.type == EventType.messageRejected || event.type == EventType.authRefused
            || ["error", "critical"].contains(event.level ?? "")
        {
            errors.insert(
                .init(
                    time: event.time,
                    source: event.source,
                    instance: event.instance,
                    type: event.type,
                    job: event.job,
                    run: event.run,
                    part: event.part,
                    message: event.message ?? event.type
                ),
                at: 0
            )
            if errors.count > Self.errorLimit { errors.removeLast(errors.count - Self.errorLimit) }
        }
        return true
    }

    private mutating func applyRun(_ event: StatusEvent, attributes: [String: String]) {
        guard event.type.hasPrefix("run."), let id = event.run, let job = event.job else { return }
        var run = inFlight[id] ?? StatusReport.Run(run: id, job: job, state: "scheduled")
        switch event.type {
        case EventType.runScheduled:
            run.scheduledAt = event.time
        case EventType.runAccepted:
            if run.state == "scheduled" { run.state = "accepted" }
        case EventType.runStarted:
            run.state = "running"
            run.startedAt = event.time
            run.attempt = attributes["attempt"].flatMap(Int.init)
            run.percent = nil
            run.message = nil
        case EventType.runProgress:
            run.state = "running"
            if let percent = attributes["percent"].flatMap(Double.init) { run.percent = min(max(percent, 0), 100) }
            if let message = event.message { run.message = message }
        case EventType.runFinished:
            run.durationMs = attributes["duration_ms"].flatMap(Double.init)
            finish(run, outcome: "succeeded", at: event.time)
            return
        case EventType.runFailed where attributes["retry"] == "true":
            run.state = "retrying"
            run.error = event.message
        case EventType.runFailed:
            run.durationMs = attributes["duration_ms"].flatMap(Double.init)
            run.error = event.message ?? attributes["reason"]
            finish(run, outcome: "failed", at: event.time)
            return
        case EventType.runCancelled:
            finish(run, outcome: "cancelled", at: event.time)
            return
        default:
            // Skips, duplicates, overruns and the like neither start nor end a run.
            return
        }
        inFlight[id] = run
        if inFlight.count > Self.inFlightLimit,
            let oldest = inFlight.values.min(by: {
                ($0.scheduledAt ?? $0.startedAt ?? .distantPast) < ($1.scheduledAt ?? $1.startedAt ?? .distantPast)
            })
        {
            inFlight[oldest.run] = nil
        }
    }

    private mutating func finish(_ run: StatusReport.Run, outcome: String, at time: Date) {
        var run = run
        inFlight[run.run] = nil
        run.state = outcome
        run.endedAt = time
        run.percent = outcome == "succeeded" ? 100 : run.percent
        recent.insert(run, at: 0)
        if recent.count > Self.recentLimit { recent.removeLast(recent.count - Self.recentLimit) }
        var job = jobs[run.job] ?? StatusReport.Job(name: run.job)
        job.lastRun = run.run
        job.lastOutcome = outcome
        job.lastDurationMs = run.durationMs
        job.lastEnded = time
        if outcome == "succeeded" { job.succeeded += 1 } else if outcome == "failed" { job.failed += 1 }
        jobs[run.job] = job
    }

    /// Counts events lost from a publisher (`service/instance`), seen at `time` (the logger's clock).
    public mutating func recordLoss(publisher: String, lost count: UInt64, at time: Date) {
        lost[publisher, default: 0] += count
        var log = (lossLog ?? []).filter { time.timeIntervalSince($0.time) < Self.forgetAfter }
        log.append(LossRecord(publisher: publisher, time: time, lost: count))
        if log.count > Self.lossLimit { log.removeFirst(log.count - Self.lossLimit) }
        lossLog = log
    }

    /// Drops services silent for longer than ``forgetAfter`` (and the longest silent beyond ``serviceLimit``).
    public mutating func forgetDeparted(now: Date) {
        services = services.filter { now.timeIntervalSince($0.value.lastSeen) < Self.forgetAfter }
        if services.count > Self.serviceLimit {
            let kept = services.values.sorted { $0.lastSeen > $1.lastSeen }.prefix(Self.serviceLimit)
            services = Dictionary(uniqueKeysWithValues: kept.map { ("\($0.service)/\($0.instance)", $0) })
        }
        lossLog = lossLog?.filter { now.timeIntervalSince($0.time) < Self.forgetAfter }
    }

    /// The report `baton status` shows, as of `now`: services gone for longer than `view.goneAfter` left out
    /// (unless `view.all`), errors and lost events of the last `view.window` only, in total and per instance.
    public func report(now: Date, view: View = View()) -> StatusReport {
        let since = now.addingTimeInterval(-view.window)
        let recentErrors = errors.filter { $0.time > since }
        var recentLost: [String: UInt64] = [:]
        for loss in lossLog ?? [] where loss.time > since { recentLost[loss.publisher, default: 0] += loss.lost }
        var errorsPerInstance: [String: Int] = [:]
        for error in recentErrors { errorsPerInstance["\(error.source)/\(error.instance)", default: 0] += 1 }
        var hidden = 0
        let services = services.values
            .filter { now.timeIntervalSince($0.lastSeen) < Self.forgetAfter }
            .sorted { ($0.service, $0.instance) < ($1.service, $1.instance) }
            .compactMap { entry -> StatusReport.Service? in
                let silentFor = now.timeIntervalSince(entry.lastSeen)
                let limit = Double(entry.heartbeatMs * Self.missedHeartbeats) / 1000 + 1
                let state = entry.stopped ? "stopped" : entry.exited || silentFor > limit ? "down" : "up"
                let gone = state != "up" && silentFor > view.goneAfter
                if gone && !view.all {
                    hidden += 1
                    return nil
                }
                let key = "\(entry.service)/\(entry.instance)"
                var service = StatusReport.Service(
                    service: entry.service,
                    instance: entry.instance,
                    state: state,
                    host: entry.host,
                    pid: entry.pid,
                    version: entry.version,
                    startedAt: entry.startedAt,
                    lastSeen: entry.lastSeen,
                    uptimeSeconds: state == "up" ? entry.startedAt.map { max(Int(now.timeIntervalSince($0)), 0) } : nil,
                    heartbeatMs: entry.heartbeatMs,
                    restarts: entry.restarts,
                    lastExit: entry.lastExit,
                    lastExitAt: entry.lastExitAt
                )
                service.gone = gone ? true : nil
                service.recentErrors = errorsPerInstance[key]
                service.recentEventsLost = recentLost[key]
                return service
            }
        let runs = inFlight.values.sorted {
            ($0.scheduledAt ?? $0.startedAt ?? .distantPast, $0.run) < ($1.scheduledAt ?? $1.startedAt ?? .distantPast, $1.run)
        }
        return StatusReport(
            time: now,
            services: services,
            jobs: jobs.values.sorted { $0.name < $1.name },
            runs: runs,
            recent: Array(recent.prefix(20)),
            backlog: backlog,
            errors: Array(recentErrors.prefix(20)),
            eventsLost: recentLost,
            diskFull: diskFull,
            windowSeconds: view.window,
            goneAfterSeconds: view.goneAfter,
            hiddenServices: view.all ? nil : hidden,
            eventsLostTotal: lost,
            pipelines: pipelines?.report()
        )
    }
}
