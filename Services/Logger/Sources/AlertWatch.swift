public import Config
public import Foundation
public import Messaging

/// One alert: what went wrong, as the documented JSON body (docs/PROTOCOL.md, "Alerts") that the command reads
/// on standard input and the webhook receives.
public struct Alert: Codable, Sendable, Equatable {
    /// The body's version; 1.
    public var version = 1
    /// Unique per alert (a receiver can drop a retried delivery it already has).
    public var id: String
    /// `run.failed`, `result.dead`, `service.down`, `run.overrun`, `schedule.lag`, or `test`.
    public var kind: String
    /// When it happened: the event's time, or when the service was found down.
    public var time: Date
    /// One line for a person.
    public var summary: String
    /// The job, run and part concerned, when there are.
    public var job: String?
    public var run: String?
    public var part: Int?
    /// The service and instance concerned (`service.down`) or that said it.
    public var service: String?
    public var instance: String?
    /// The event's message: the error, with a command's last stderr lines.
    public var message: String?
    /// The event's attributes.
    public var attributes: [String: String]?
    /// Only in the sample that `baton alerts test` sends.
    public var test: Bool?

    /// Creates an alert with a fresh id.
    public init(kind: String, time: Date, summary: String) {
        self.id = UUID().uuidString.lowercased()
        self.kind = kind
        self.time = time
        self.summary = summary
    }

    /// The sample `baton alerts test` sends.
    public static func sample(now: Date = Date()) -> Alert {
        var alert = Alert(kind: "test", time: now, summary: "a test alert from baton alerts test: alerts reach you")
        alert.test = true
        alert.job = "example"
        alert.run = RunID.make(job: "example", logicalTime: now)
        alert.message = "nothing went wrong"
        return alert
    }

    /// The body as sent: JSON, keys sorted, times ISO 8601 UTC with milliseconds.
    public func body() throws -> Data {
        let encoder = Timestamp.encoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }
}

/// Decides which events raise an alert (`alerts.on`), and finds services gone silent. Pure: events and time come
/// in as arguments, so tests drive it with made-up events and clocks.
///
/// - `run.failed` (a final failure, not one that will be retried), `result.dead`, `run.overrun`: per event.
/// - `schedule.lag`: a scheduled fire (`run.scheduled`, trigger `schedule`) later than `alerts.lag` after its
///   slot; at most once per job per ``lagQuiet`` (a scheduler catching up after a stop fires many late slots).
/// - `service.down`: its supervisor saw it exit (`supervisor.exited`), or it missed three heartbeats (one
///   second of slack, as `baton status` counts); once per outage: it is up again when heard from. A service that
///   said `service.stopped` is not down.
public struct AlertWatch: Sendable {
    /// `schedule.lag` is raised at most once per job in this time.
    public static let lagQuiet: TimeInterval = 600
    /// Services silent this long are forgotten.
    static let forgetAfter: TimeInterval = 24 * 3600

    struct Liveness: Sendable {
        var lastSeen: Date
        var heartbeatMs: Int
        var stopped = false
        var down = false
        var host: String?
    }

    private let kinds: Set<String>
    private let lag: Duration
    private var services: [String: Liveness] = [:]
    private var lastLag: [String: Date] = [:]

    /// Creates the watch for these settings.
    public init(settings: Configuration.Alerts) {
        kinds = Set(settings.on)
        lag = settings.lag
    }

    /// Whether `service.down` is watched (which needs ``check(now:)`` called regularly).
    public var watchesServices: Bool { kinds.contains("service.down") }

    /// The alerts an event raises.
    /// - Parameters:
    ///   - event: The event.
    ///   - received: When the logger received it (liveness uses the logger's clock).
    public mutating func observe(_ event: StatusEvent, received: Date) -> [Alert] {
        var raised: [Alert] = []
        let attributes = event.attributes ?? [:]
        track(event, attributes: attributes, received: received)
        func alert(_ kind: String, _ summary: String) {
            guard kinds.contains(kind) else { return }
            var alert = Alert(kind: kind, time: event.time, summary: summary)
            alert.job = event.job
            alert.run = event.run
            alert.part = event.part
            alert.service = event.source
            alert.instance = event.instance
            alert.message = event.message
            alert.attributes = attributes.isEmpty ? nil : attributes
            raised.append(alert)
        }
        let run = event.run ?? "?"
        switch event.type {
        case EventType.runFailed where attributes["retry"] != "true":
            alert("run.failed", "run \(run) failed: \(event.message ?? attributes["reason"] ?? "no reason given")")
        case EventType.resultDead:
            alert("result.dead", "part \(event.part.map(String.init) ?? "?") of run \(run) was dead-lettered: \(event.message ?? "")")
        case EventType.runOverrun:
            // The summary names the run whatever the event says (its message is about the time left).
            alert("run.overrun", "run \(run) runs into its job's next slot" + (event.message.map { ": \($0)" } ?? ""))
        case EventType.runScheduled where (attributes["trigger"] ?? "schedule") == "schedule":
            guard let late = attributes["lateness_ms"].flatMap(Double.init), late > lag / .milliseconds(1) else { break }
            let job = event.job ?? RunID.job(of: run)
            if let last = lastLag[job], received.timeIntervalSince(last) < Self.lagQuiet { break }
            lastLag[job] = received
            alert("schedule.lag", "run \(run) fired \(Self.seconds(late / 1000)) after its slot (alerts.lag \(DurationText.format(lag)))")
        case EventType.supervisorExited:
            guard let service = attributes["service"], let instance = attributes["instance"] else { break }
            let key = "\(service)/\(instance)"
            var entry = services[key] ?? Liveness(lastSeen: received, heartbeatMs: 5000)
            // One that said service.stopped was stopped on purpose (a SIGTERM from someone, and its exit 0).
            guard !entry.down, !entry.stopped else { break }
            entry.down = true
            services[key] = entry
            var down = Alert(kind: "service.down", time: event.time, summary: "\(key) is down: \(attributes["status"] ?? "it exited")")
            down.service = service
            down.instance = instance
            down.message = attributes["last_error"]
            down.attributes = attributes
            if kinds.contains("service.down") { raised.append(down) }
        default:
            break
        }
        return raised
    }

    private mutating func track(_ event: StatusEvent, attributes: [String: String], received: Date) {
        let key = "\(event.source)/\(event.instance)"
        var entry = services[key] ?? Liveness(lastSeen: received, heartbeatMs: 5000)
        entry.lastSeen = received
        entry.down = false
        if let interval = attributes["interval_ms"].flatMap(Int.init), interval > 0 { entry.heartbeatMs = interval }
        if let host = attributes["host"] { entry.host = host }
        switch event.type {
        case EventType.serviceStopped: entry.stopped = true
        case EventType.serviceStarted, EventType.serviceHeartbeat: entry.stopped = false
        default: break
        }
        services[key] = entry
    }

    /// The services found down since the last check: silent for three heartbeats and a second, not stopped.
    public mutating func check(now: Date) -> [Alert] {
        var raised: [Alert] = []
        for (key, entry) in services.sorted(by: { $0.key < $1.key }) {
            let silent = now.timeIntervalSince(entry.lastSeen)
            if silent > Self.forgetAfter {
                services[key] = nil
                continue
            }
            let limit = Double(entry.heartbeatMs * 3) / 1000 + 1
            guard !entry.stopped, !entry.down, silent > limit else { continue }
            services[key]?.down = true
            guard kinds.contains("service.down") else { continue }
            let parts = key.split(separator: "/", maxSplits: 1).map(String.init)
            var alert = Alert(kind: "service.down", time: now, summary: "\(key) is down: not heard from for \(Self.seconds(silent))")
            alert.service = parts.first
            alert.instance = parts.count > 1 ? parts[1] : nil
            alert.attributes = ["silent_ms": "\(Int(silent * 1000))", "heartbeat_ms": "\(entry.heartbeatMs)"]
            if let host = entry.host { alert.attributes?["host"] = host }
            raised.append(alert)
        }
        return raised
    }

    static func seconds(_ value: Double) -> String { String(format: "%.1f s", value) }
}
