import AsyncHTTPClient
import Commands
import Glibc
import Messaging
public import Config
public import Foundation
public import Logging
public import MetricsHTTP
import Metrics
import NIOCore
import NIOHTTP1
public import ServiceKit

/// Why an alert was not delivered.
struct AlertError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Delivers alerts to the configured command and webhook, each channel on its own, retrying a failed attempt
/// after 1 s, 2 s, 4 s … (at most a minute) up to `alerts.retries` times. Every failed attempt is logged, and an
/// alert given up is logged as an error and counted (`baton_alerts_total{kind,channel,outcome}`).
///
/// The logger queues alerts and never waits for them (``run(_:)`` takes them from a bounded inbox), so a webhook
/// that hangs or fails holds up no event.
///
/// An alert waiting for a channel is kept on disk until it is delivered or given up (`<directory>/pending/
/// <id>.<channel>.json`, mode 0600, the body as sent), so a logger killed meanwhile delivers it when it starts
/// again: at least once, with the same `id`, which a receiver can use to drop a second delivery.
public struct AlertSender: Sendable {
    /// Alerts waiting beyond this many are dropped (and logged): a receiver that is down for long should not
    /// make the logger hold alerts without bound.
    public static let queueLimit = 1000
    /// Alerts being delivered at once.
    static let concurrency = 8
    /// Longest wait between two attempts.
    static let maxBackoff: Duration = .seconds(60)

    /// What became of one alert on one channel.
    public struct Outcome: Sendable, Equatable {
        /// `command` or `webhook`.
        public var channel: String
        /// Whether it was delivered.
        public var delivered: Bool
        /// Attempts made.
        public var attempts: Int
        /// The last attempt's answer (`HTTP 200`, `exited with status 0`) or error.
        public var detail: String
    }

    private let settings: Configuration.Alerts
    private let directory: String
    private let logger: Logger
    private let metrics: ServiceMetrics
    private let firstBackoff: Duration

    /// Creates the sender.
    /// - Parameters:
    ///   - settings: The `alerts` section.
    ///   - directory: Where an alert's body is written for the command to read (removed after).
    ///   - logger: Where failed attempts are logged.
    ///   - metrics: Where deliveries are counted.
    ///   - firstBackoff: The wait before the first retry (doubled after each).
    public init(
        settings: Configuration.Alerts,
        directory: String,
        logger: Logger,
        metrics: ServiceMetrics = .disabled,
        firstBackoff: Duration = .seconds(1)
    ) {
        self.settings = settings
        self.directory = directory
        self.logger = logger
        self.metrics = metrics
        self.firstBackoff = firstBackoff
    }

    /// One alert waiting for one channel: its body, kept in `path` until it is delivered or given up.
    struct Pending: Sendable {
        var alert: Alert
        var body: Data
        var path: String
    }

    /// Where alerts waiting for a channel are kept.
    var spool: String { (directory as NSString).appendingPathComponent("pending") }

    /// Delivers alerts from `inbox` until it is closed or the task is cancelled, after those a logger stopped
    /// before delivering (kept in ``spool``). Each channel has its own queue and its own ``concurrency``
    /// deliveries at once, so a webhook that is down (its alerts waiting out their retries) holds up no alert of
    /// the command, and the other way round.
    public func run(_ inbox: BatchInbox<Alert>) async {
        let channels = ["command", "webhook"].filter { channel in
            channel == "command" ? !settings.command.isEmpty : !settings.webhook.isEmpty
        }
        let queues = Dictionary(uniqueKeysWithValues: channels.map { ($0, BatchInbox<Pending>()) })
        for pending in leftovers(channels: channels) where queues[pending.channel]?.put(pending.pending, limit: Self.queueLimit) != true {
            dropped(pending.pending, channel: pending.channel)
        }
        await withDiscardingTaskGroup { group in
            for (channel, queue) in queues {
                group.addTask {
                    await withTaskGroup(of: Void.self) { deliveries in
                        var running = 0
                        while let batch = await queue.take() {
                            for pending in batch {
                                if running >= Self.concurrency {
                                    await deliveries.next()
                                    running -= 1
                                }
                                running += 1
                                deliveries.addTask {
                                    // Delivered or given up: either way no longer waiting. Cancelled (the logger
                                    // stopping): kept, for its next start.
                                    let outcome = await deliver(pending.alert, channel: channel, body: pending.body, input: pending.path)
                                    if outcome.delivered || !Task.isCancelled { unlink(pending.path) }
                                }
                            }
                        }
                    }
                }
            }
            while let batch = await inbox.take() {
                for alert in batch {
                    guard let body = try? alert.body() else {
                        logger.error("cannot encode an alert", metadata: ["kind": "\(alert.kind)"])
                        continue
                    }
                    for (channel, queue) in queues {
                        let pending = keep(alert, body: body, channel: channel)
                        if !queue.put(pending, limit: Self.queueLimit) { dropped(pending, channel: channel) }
                    }
                }
            }
            for queue in queues.values { queue.close() }
        }
    }

    /// Writes an alert's body for one channel into the spool (a temporary name, then renamed, mode 0600: an alert
    /// may name a run's error output). A spool that cannot be written (a full disk) costs only the keeping: the
    /// alert is delivered from memory, and said so in the log.
    private func keep(_ alert: Alert, body: Data, channel: String) -> Pending {
        let path = (spool as NSString).appendingPathComponent("\(alert.id).\(channel).json")
        do {
            try FileManager.default.createDirectory(atPath: spool, withIntermediateDirectories: true)
            try KeyFiles.write(String(decoding: body, as: UTF8.self), to: path, mode: 0o600, replace: true)
        } catch {
            logger.warning(
                "alert not kept on disk: it is lost if the logger stops before it is delivered",
                metadata: ["alert": "\(alert.id)", "channel": "\(channel)", "error": "\(error)"]
            )
        }
        return Pending(alert: alert, body: body, path: path)
    }

    /// The alerts a logger stopped before delivering, oldest first, for the channels configured now (those for a
    /// channel no longer configured are removed).
    private func leftovers(channels: [String]) -> [(channel: String, pending: Pending)] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: spool) else { return [] }
        var found: [(channel: String, pending: Pending, time: Date)] = []
        for name in names {
            let path = (spool as NSString).appendingPathComponent(name)
            let parts = name.split(separator: ".")
            guard parts.count == 3, parts[2] == "json", let data = FileManager.default.contents(atPath: path),
                let alert = try? Timestamp.decoder().decode(Alert.self, from: data), "\(parts[0])" == alert.id
            else {
                // A temporary file left by a kill, or not an alert of ours.
                unlink(path)
                continue
            }
            let channel = String(parts[1])
            guard channels.contains(channel) else {
                logger.warning(
                    "alert not delivered: its channel is no longer configured",
                    metadata: ["alert": "\(alert.id)", "channel": "\(channel)"]
                )
                unlink(path)
                continue
            }
            found.append((channel, Pending(alert: alert, body: data, path: path), alert.time))
        }
        if !found.isEmpty { logger.notice("delivering alerts kept from before the logger stopped", metadata: ["alerts": "\(found.count)"]) }
        return found.sorted { ($0.time, $0.pending.alert.id) < ($1.time, $1.pending.alert.id) }.map { ($0.channel, $0.pending) }
    }

    private func dropped(_ pending: Pending, channel: String) {
        unlink(pending.path)
        logger.error(
            "alert dropped: \(Self.queueLimit) alerts are waiting for the \(channel)",
            metadata: ["kind": "\(pending.alert.kind)", "summary": "\(pending.alert.summary)"]
        )
    }

    /// Delivers one alert on every configured channel (in parallel), with retries; returns what became of it.
    public func send(_ alert: Alert) async -> [Outcome] {
        let body: Data
        do {
            body = try alert.body()
        } catch {
            logger.error("cannot encode an alert", metadata: ["kind": "\(alert.kind)", "error": "\(error)"])
            return []
        }
        return await withTaskGroup(of: Outcome.self) { group in
            if !settings.command.isEmpty { group.addTask { await deliver(alert, channel: "command", body: body) } }
            if !settings.webhook.isEmpty { group.addTask { await deliver(alert, channel: "webhook", body: body) } }
            var outcomes: [Outcome] = []
            for await outcome in group { outcomes.append(outcome) }
            return outcomes.sorted { $0.channel < $1.channel }
        }
    }

    /// - Parameter input: The file holding `body`, for the command's standard input (nil: one is written for it).
    private func deliver(_ alert: Alert, channel: String, body: Data, input: String? = nil) async -> Outcome {
        var backoff = firstBackoff
        var attempt = 0
        var detail = ""
        while true {
            attempt += 1
            let succeeded: Bool
            do {
                detail = channel == "command" ? try await runCommand(alert, body: body, input: input) : try await post(body)
                succeeded = true
            } catch {
                detail = "\(error)"
                succeeded = false
            }
            if succeeded {
                metrics.counter("baton_alerts_total", [("kind", alert.kind), ("channel", channel), ("outcome", "delivered")]).increment()
                return Outcome(channel: channel, delivered: true, attempts: attempt, detail: detail)
            }
            let metadata: Logger.Metadata = [
                "kind": "\(alert.kind)", "alert": "\(alert.id)", "channel": "\(channel)", "attempt": "\(attempt)", "error": "\(detail)",
            ]
            guard attempt <= settings.retries, !Task.isCancelled else {
                logger.error("alert not delivered; giving up", metadata: metadata)
                metrics.counter("baton_alerts_total", [("kind", alert.kind), ("channel", channel), ("outcome", "failed")]).increment()
                return Outcome(channel: channel, delivered: false, attempts: attempt, detail: detail)
            }
            logger.warning("alert not delivered; trying again in \(DurationText.format(backoff))", metadata: metadata)
            guard (try? await Task.sleep(for: backoff)) != nil else {
                return Outcome(channel: channel, delivered: false, attempts: attempt, detail: detail)
            }
            backoff = min(backoff * 2, Self.maxBackoff)
        }
    }

    /// Runs the command with the body on standard input (from a file, so one that does not read it cannot
    /// fail the write) and `BATON_ALERT_KIND`, `BATON_ALERT_ID` in its environment.
    private func runCommand(_ alert: Alert, body: Data, input: String?) async throws -> String {
        var path = input ?? ""
        if input == nil || !FileManager.default.fileExists(atPath: path) {
            // Not kept in the spool (`baton alerts test`, or a spool that could not be written): a file of its own.
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            path = (directory as NSString).appendingPathComponent("alert-\(alert.id)-\(UUID().uuidString.prefix(8)).json")
            try KeyFiles.write(String(decoding: body, as: UTF8.self), to: path, mode: 0o600, replace: true)
        }
        defer { if path != input { unlink(path) } }
        let runner = CommandRunner(
            argv: settings.command,
            environment: ["BATON_ALERT_KIND": alert.kind, "BATON_ALERT_ID": alert.id],
            timeout: settings.timeout,
            gracePeriod: .seconds(2)
        )
        let tail = OutputTail()
        let outcome = try await runner.run(input: .file(path), onOutput: { _ in }, onError: { tail.append($0) })
        guard outcome.succeeded else { throw AlertError(tail.reason("the alert command \(outcome)")) }
        return outcome.description
    }

    /// The webhooks' HTTP client, for the process's lifetime: a connection refused fails the attempt at once (the
    /// alert's own retries, with their backoff and log lines, try again), where the shared client would retry
    /// connecting until the attempt's deadline.
    static let client: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.redirectConfiguration = .disallow
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()

    /// POSTs the body to the webhook; any answer but 2xx is a failure (a redirect too: an alert is not re-sent
    /// where the receiver points).
    private func post(_ body: Data) async throws -> String {
        var request = HTTPClientRequest(url: settings.webhook)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "baton-logger")
        for (name, value) in settings.headers.sorted(by: { $0.key < $1.key }) { request.headers.replaceOrAdd(name: name, value: value) }
        request.body = .bytes(ByteBuffer(bytes: body))
        let timeout = TimeAmount.milliseconds(Int64(settings.timeout / .milliseconds(1)))
        let response: HTTPClientResponse
        do {
            response = try await Self.client.execute(request, timeout: timeout)
        } catch {
            throw AlertError("cannot reach the webhook: \(error)")
        }
        // Read (at most 64 KiB of) the answer, so the connection can be reused; its content does not matter.
        _ = try? await response.body.collect(upTo: 64 * 1024)
        let status = "HTTP \(response.status.code)"
        guard (200..<300).contains(response.status.code) else { throw AlertError("the webhook answered \(status)") }
        return status
    }
}
