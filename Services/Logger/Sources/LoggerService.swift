import Foundation
import Glibc
public import Logging
import Metrics
import Messaging
public import Config
public import ServiceKit
public import MetricsHTTP
public import ServiceLifecycle
public import ZMQ

/// The status bus and its log: an XSUB/XPUB proxy that every service publishes into and anyone can
/// subscribe to, plus a capture of every event, written to `<data_dir>/logs/events.jsonl` and folded into
/// the status history that `baton status` asks for on the REP `query` socket.
///
/// ```
/// publishers --XPUB connect--> [XSUB status_in | proxy | XPUB status_out] --SUB--> baton watch
///                                              |
///                                         capture (inproc) --> gap tracking --> events.jsonl
///                                                                          \--> StatusKeeper <-- REP query
/// ```
///
/// The proxy passes on only messages that decode as status events; anything else on `status_in`, any
/// message on `status_out` that is not a subscription, and any malformed query is rejected through a
/// ``MessageRejector`` (a `message.rejected` event, rate-limited). Subscriptions stay at the XPUB (the XSUB
/// subscribes to everything upstream) and are bounded in size and number (`limits`).
public struct LoggerService: Service {
    private let context: Context
    private let configuration: Configuration
    private let logger: Logger
    private let metrics: ServiceMetrics
    private let publisher: StatusPublisher?
    private let web: WebRoutesSlot?

    /// Creates the service.
    /// - Parameters:
    ///   - context: The ZeroMQ context.
    ///   - configuration: Endpoints and data directory.
    ///   - logger: Where the logger's own records go.
    ///   - metrics: Events received (`baton_status_events_total`) and lost (`baton_status_events_lost_total`),
    ///     messages rejected (`baton_messages_rejected_total`), event log lines dropped (`baton_event_log_dropped_total`).
    ///   - publisher: Where the logger's own `message.rejected`, `disk.full` and `disk.ok` events go.
    ///   - web: Where the web view is installed (`web.enabled`), to be served on the metrics port.
    public init(
        context: Context,
        configuration: Configuration,
        logger: Logger,
        metrics: ServiceMetrics = .disabled,
        publisher: StatusPublisher? = nil,
        web: WebRoutesSlot? = nil
    ) {
        self.web = web
        self.context = context
        self.configuration = configuration
        self.logger = logger
        self.metrics = metrics
        self.publisher = publisher
    }

    /// The log file's path for a configuration.
    public static func logPath(_ configuration: Configuration) -> String {
        (configuration.dataDirectory as NSString).appendingPathComponent("logs/events.jsonl")
    }

    /// The saved status history's path for a configuration.
    public static func statusPath(_ configuration: Configuration) -> String {
        (configuration.dataDirectory as NSString).appendingPathComponent("logger/status.json")
    }

    public func run() async throws {
        // A file size limit (RLIMIT_FSIZE) must fail the write like a full disk does, not kill the logger.
        signal(SIGXFSZ, SIG_IGN)
        let limits = configuration.limits
        let rejectors = Rejectors(publisher: publisher, logger: logger, metrics: metrics, limits: limits)
        let captureEndpoint = "inproc://status-capture-\(UUID().uuidString)"
        // The capture is opened first and closed last: a proxy whose capture peer is gone blocks on it.
        try await context.withInbound(.init(type: .pull, options: [.receiveHighWaterMark(Self.queue)], bind: [captureEndpoint])) {
            capture in
            // A socket that cannot be bound is a configuration error naming its key (endpoints.status_in, ...).
            try await ConfigurationError.binding(ServiceDescription.logger.boundEndpoints(configuration.endpoints)) {
                try await Proxy.withProxy(
                    context: context,
                    frontend: .init(
                        type: .xsubscribe,
                        options: [.receiveHighWaterMark(limits.receiveQueue), .maxMessageSize(limits.messageBytes)],
                        bind: [configuration.endpoints.statusIn],
                        // Subscribe to everything upstream, so publishers send even while nobody watches.
                        initialMessages: [[Data([1])]]
                    ),
                    backend: .init(
                        type: .xpublish,
                        options: [
                            .sendHighWaterMark(Self.queue), .receiveHighWaterMark(limits.receiveQueue),
                            .maxMessageSize(limits.subscriptionBytes),
                        ],
                        bind: [configuration.endpoints.statusOut]
                    ),
                    capture: .init(type: .push, options: [.sendHighWaterMark(Self.queue)], connect: [captureEndpoint]),
                    policy: Self.policy(rejectors, limits: limits, logger: logger)
                ) { proxy in
                    try await context.withSocket(
                        .init(
                            type: .reply,
                            options: [.maxMessageSize(limits.messageBytes), .receiveHighWaterMark(limits.receiveQueue)],
                            bind: [configuration.endpoints.query]
                        )
                    ) { query in
                        try await serve(capture: capture, query: query, proxy: proxy, rejectors: rejectors)
                    }
                }
            }
        }
    }

    /// Follows the capture (gaps, status history, event log) and answers queries until graceful shutdown.
    private func serve(capture: SocketInbound, query: SocketChannel, proxy: Proxy, rejectors: Rejectors) async throws {
        logger.info(
            "status bus up",
            metadata: ["status_in": "\(configuration.endpoints.statusIn)", "status_out": "\(configuration.endpoints.statusOut)"]
        )
        let keeper = StatusKeeper(path: Self.statusPath(configuration), logger: logger)
        let history = await openHistory()
        let historyInbox = BatchInbox<StatusEvent>()
        // Not a child of the group below, which is cancelled on stop: it writes what was queued, then ends.
        let recorder = history.map { history in Task { await record(into: history, from: historyInbox) } }
        let alerts =
            configuration.alerts.isEnabled
            ? AlertDispatch(settings: configuration.alerts, dataDirectory: configuration.dataDirectory, logger: logger, metrics: metrics)
            : nil
        let view =
            configuration.web.enabled
            ? WebView(history: history, keeper: keeper, configuration: configuration, context: context, logger: logger) : nil
        if let view, let web {
            web.install(view)
            logger.info(
                "web view on the metrics port",
                metadata: ["actions": "\(configuration.web.token.isEmpty ? "off (no web.token)" : "on")"]
            )
        }
        defer {
            web?.install(nil)
            view?.fanout.close()
        }
        let outcome: Result<Void, any Error> = await withDiscardingTaskGroup { group in
            group.addTask {
                await Self.answerQueries(on: query, keeper: keeper, history: history, rejector: rejectors.query)
            }
            if let history { group.addTask { await prune(history) } }
            if let alerts { group.addTask { await alerts.run() } }
            group.addTask {
                // Save at most once a second, and only after a change.
                while await keeper.changed.wait() {
                    guard (try? await Task.sleep(for: .seconds(1))) != nil else { return }
                    keeper.saveIfChanged()
                }
            }
            let outcome = await withTaskGroup(of: Result<Void, any Error>?.self) { capturing in
                capturing.addTask {
                    do {
                        try await follow(
                            capture: capture,
                            keeper: keeper,
                            history: history.map { _ in historyInbox },
                            alerts: alerts,
                            live: view?.fanout
                        )
                        return .success(())
                    } catch {
                        return .failure(error)
                    }
                }
                capturing.addTask {
                    try? await gracefulShutdown()
                    return nil
                }
                // Graceful shutdown, or the capture ended.
                let first = await capturing.next() ?? nil
                // Stop forwarding while the capture is still read: a proxy blocked on a full capture cannot stop.
                await proxy.stop()
                capturing.cancelAll()
                return first ?? .success(())
            }
            group.cancelAll()
            return outcome
        }
        // What the capture took is written before the logger stops.
        historyInbox.close()
        await recorder?.value
        keeper.saveIfChanged()
        try outcome.get()
    }

    /// Takes every captured event: counts it, tracks gaps, folds it into the status history, queues it for the run
    /// history, writes it to the log.
    private func follow(
        capture: SocketInbound,
        keeper: StatusKeeper,
        history: BatchInbox<StatusEvent>?,
        alerts: AlertDispatch?,
        live: EventFanout?
    ) async throws {
        let writer = try EventLogWriter(
            path: Self.logPath(configuration),
            maxBytes: configuration.log.maxBytes,
            keep: configuration.log.keep
        )
        let received = metrics.counter("baton_status_events_total")
        let droppedLines = metrics.counter("baton_event_log_dropped_total")
        let historyDropped = metrics.counter("baton_history_dropped_total")
        let clock = ContinuousClock()
        var health = EventLogHealth(now: clock.now)
        var gaps = GapTracker()
        while let frames = try? await capture.receive() {
            // The proxy passes on only events that decode (and rejected the rest).
            guard let event = try? StatusEvent(frames: frames) else { continue }
            received.increment()
            switch gaps.observe(event) {
            case .gap(let lost):
                let publisher = "\(event.source)/\(event.instance)"
                keeper.recordLoss(publisher: publisher, lost: lost)
                metrics.counter("baton_status_events_lost_total", [("publisher", publisher)]).increment(by: Int64(lost))
                logger.warning(
                    "lost status events",
                    metadata: ["from": "\(event.source)/\(event.instance)", "lost": "\(lost)", "total_lost": "\(gaps.totalLost)"]
                )
            default:
                break
            }
            keeper.apply(event)
            alerts?.observe(event, received: Date())
            live?.publish(event)
            if let history, RunHistory.records(event.type), !history.put(event, limit: Self.historyQueue) {
                historyDropped.increment()
            }
            guard health.shouldWrite(at: clock.now) else {
                // Writing failed a moment ago: drop the line until the backoff has passed.
                health.skipped()
                droppedLines.increment()
                continue
            }
            let action: EventLogHealth<ContinuousClock.Instant>.Action
            do {
                // As published, unless a foreign publisher spread its JSON over several lines.
                if frames[2].contains(0x0A) || frames[2].contains(0x0D) {
                    try writer.append(event)
                } else {
                    try writer.append(json: frames[2])
                }
                action = health.succeeded()
            } catch {
                droppedLines.increment()
                action = health.failed(at: clock.now)
                if action == .reportFull { report(full: error, path: writer.path) }
            }
            if case .reportOK(let dropped) = action { report(okAfter: dropped, path: writer.path) }
        }
    }

    /// Answers `baton status` and `baton runs` on the REP socket: every request gets exactly one reply, an error
    /// reply when the request is malformed.
    private static func answerQueries(on socket: SocketChannel, keeper: StatusKeeper, history: RunHistory?, rejector: MessageRejector) async
    {
        while !Task.isCancelled {
            guard let frames = try? await socket.receive() else { return }
            let reply: StatusReport
            do {
                let query = try Wire.decode(StatusQuery.self, from: frames).message
                if query.what == "runs" {
                    let answer: RunsReport
                    if let history {
                        do {
                            answer = try await history.runs(query)
                        } catch {
                            answer = RunsReport(time: Date(), error: WireText.readable("cannot read the run history: \(error)", limit: 300))
                        }
                    } else {
                        answer = RunsReport(time: Date(), error: "the run history is not available (see the logger's log)")
                    }
                    do { try await socket.send(Wire.encode(answer)) } catch { return }
                    continue
                }
                let defaults = StatusBoard.View()
                reply = keeper.report(
                    view: .init(
                        goneAfter: query.goneAfter ?? defaults.goneAfter,
                        window: query.window ?? defaults.window,
                        all: query.all ?? false
                    )
                )
            } catch {
                rejector.reject(error, frames: frames)
                reply = StatusReport(time: Date(), error: WireText.readable(error.reason))
            }
            do { try await socket.send(Wire.encode(reply)) } catch { return }
        }
    }

    /// Opens the run history (in PostgreSQL when `store.url` is set); without it (a file that cannot be opened, a
    /// database that cannot be reached) the logger runs on and says why.
    private func openHistory() async -> RunHistory? {
        let location =
            configuration.store.url.isEmpty
            ? RunHistory.path(dataDirectory: configuration.dataDirectory) : Configuration.Store.redacted(configuration.store.url)
        do {
            let history = try await RunHistory.open(configuration)
            logger.info("run history open", metadata: ["at": "\(location)"])
            return history
        } catch {
            logger.error("cannot open the run history; baton runs will not answer", metadata: ["at": "\(location)", "error": "\(error)"])
            return nil
        }
    }

    /// Writes queued events into the run history, one transaction per batch, until the inbox is closed and empty.
    /// A batch that cannot be written (a full disk, PostgreSQL away) is tried again, backing off up to 5 s, while the
    /// queue behind it has room, so a short outage loses nothing; it is dropped (and counted, and said once a
    /// minute at most) once the queue is full or the logger stops: the event log still has it.
    private func record(into history: RunHistory, from inbox: BatchInbox<StatusEvent>) async {
        var lastComplaint: ContinuousClock.Instant?
        let dropped = metrics.counter("baton_history_dropped_total")
        while let batch = await inbox.take(limit: 5000) {
            var delay = Duration.milliseconds(250)
            while true {
                do {
                    try await history.record(batch)
                    break
                } catch {
                    let now = ContinuousClock.now
                    if lastComplaint.map({ now - $0 >= .seconds(60) }) ?? true {
                        lastComplaint = now
                        logger.error("cannot write the run history; retrying", metadata: ["error": "\(error)", "events": "\(batch.count)"])
                    }
                    let (queued, closed) = inbox.waiting
                    if closed || queued >= Self.historyQueue {
                        dropped.increment(by: Int64(batch.count))
                        break
                    }
                    // In steps, so that a stop does not wait out the backoff.
                    let until = ContinuousClock.now + delay
                    while ContinuousClock.now < until, !inbox.waiting.closed { try? await Task.sleep(for: .milliseconds(100)) }
                    delay = min(delay * 2, .seconds(5))
                }
            }
        }
    }

    /// Forgets runs older than `log.history`, at start and then hourly.
    private func prune(_ history: RunHistory) async {
        repeat {
            do {
                let gone = try await history.prune(before: Date().addingTimeInterval(-(configuration.log.history / .seconds(1))))
                if gone > 0 { logger.info("run history pruned", metadata: ["runs": "\(gone)"]) }
            } catch {
                logger.error("cannot prune the run history", metadata: ["error": "\(error)"])
            }
        } while (try? await Task.sleep(for: .seconds(3600))) != nil
    }

    /// Writing the event log has started to fail: said once, on stderr and as `disk.full` (which cannot be
    /// written to the log either, and is only counted; it never causes another report).
    private func report(full error: any Error, path: String) {
        let text = WireText.escape("\(error)", limit: 300)
        FileHandle.standardError.write(
            Data("baton-logger: cannot write the event log \(path): \(text); dropping events until it can\n".utf8)
        )
        publisher?.publish(
            EventType.diskFull,
            level: "error",
            message: "cannot write the event log: \(text)",
            attributes: ["path": path]
        )
    }

    /// Writing the event log works again: said once, with the number of events lost meanwhile.
    private func report(okAfter dropped: Int, path: String) {
        FileHandle.standardError.write(Data("baton-logger: writing the event log \(path) again; \(dropped) event(s) dropped\n".utf8))
        publisher?.publish(
            EventType.diskOK,
            level: "notice",
            message: "writing the event log again",
            attributes: ["path": path, "dropped": "\(dropped)"]
        )
    }
}
