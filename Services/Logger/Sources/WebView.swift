import Config
import Foundation
import Glibc
import Logging
import Messaging
import MetricsHTTP
import ServiceKit
import Synchronization
import ZMQ

/// The logger's web view (`web.enabled`), on its metrics port: jobs, a timeline of runs, each run with its
/// stages and tasks, the run's events, live updates (server-sent events) and actions (trigger, pause, resume,
/// cancel, replay from a stage) for a user with the token.
///
/// Pages are rendered here, from the run history, the status board and the scheduler's `jobs` answer; the one
/// stylesheet and the one small script are constants of this module (``WebAssets``): nothing is fetched from
/// elsewhere. Requests run on the HTTP server's own event-loop thread, never on the logger's cooperative pool.
///
/// Authentication: with `web.token` set, every page but `/login` and the assets needs it: the `baton_session`
/// cookie that `/login` sets (an HMAC of the token under the logger's ``SessionKey``; HttpOnly, SameSite=Strict) or an `Authorization: Bearer` header, compared in constant
/// time; an action (POST) also needs the header `X-Baton-Action: 1`, which a page of another site cannot send, so
/// a cookie alone cannot be used against the user. Wrong tokens (at `/login` or as a Bearer header) draw on a
/// ``GuessBudget``: past it, a token is not even compared and the answer is `429` until the budget refills, so
/// a short token cannot be found by trying. Without a token (only allowed without CURVE) the view is read-only:
/// actions are refused.
final class WebView: WebRoutes {
    private let history: RunHistory?
    private let keeper: StatusKeeper
    private let configuration: Configuration
    private let context: Context
    private let logger: Logger
    let fanout = EventFanout()
    private let guesses = Mutex(GuessBudget())
    /// When a spent budget was last said in the log: once a minute at most, however many addresses guess.
    private let lastWarned = Mutex<ContinuousClock.Instant?>(nil)
    /// The login cookie's value: an HMAC of the token under the logger's own key (``SessionKey``).
    private let session: String

    init(history: RunHistory?, keeper: StatusKeeper, configuration: Configuration, context: Context, logger: Logger) {
        self.history = history
        self.keeper = keeper
        self.configuration = configuration
        self.context = context
        self.logger = logger
        let key = SessionKey.load(dataDirectory: configuration.dataDirectory, logger: logger)
        session = SHA256.hmac(key: Array(key.utf8), message: Data("baton-web-session:\(configuration.web.token)".utf8))
    }

    private var token: String { configuration.web.token }

    func respond(to request: WebRequest) async -> WebReply {
        switch (request.method, request.path) {
        case ("GET", "/static/baton.css"): return Self.asset(WebAssets.css, type: "text/css; charset=utf-8")
        case ("GET", "/static/baton.js"): return Self.asset(WebAssets.script, type: "text/javascript; charset=utf-8")
        case ("GET", "/login"): return Self.page(WebPages.login(failed: false, required: !token.isEmpty))
        case ("POST", "/login"): return login(request)
        default: break
        }
        // A Bearer token is a guess like a login's; the login cookie is not throttled (it cannot be guessed).
        if Self.bearer(request) != nil, let refused = throttled(request) { return refused }
        guard authorized(request) else {
            if request.method == "GET" && !request.path.hasPrefix("/api/") && request.path != "/events" {
                return WebReply(status: 303, headers: ["Location": "/login"])
            }
            return Self.json(401, ["ok": false, "error": "a token is needed (web.token): log in at /login, or send Authorization: Bearer"])
        }
        do {
            switch (request.method, request.path) {
            case ("GET", "/"): return Self.page(try await jobsPage())
            case ("GET", "/timeline"): return Self.page(try await timelinePage(request.query))
            case ("GET", let path) where path.hasPrefix("/run/"):
                return try await runPage(String(path.dropFirst(5)).removingPercentEncoding ?? "")
            case ("GET", "/logs"): return Self.page(try await logsPage(request.query["run"] ?? ""))
            case ("GET", "/events"): return events()
            case ("GET", "/api/runs"): return try await apiRuns(request.query)
            case ("POST", let path) where path.hasPrefix("/api/"): return await act(String(path.dropFirst(5)), request)
            default:
                if let allow = Self.allowed(request.path) {
                    // A page or API that is here, asked with another method.
                    var reply =
                        request.path.hasPrefix("/api/")
                        ? Self.json(405, ["ok": false, "error": "\(request.path) takes \(allow)"])
                        : Self.page(WebPages.problem("\(request.path) takes \(allow)"), status: 405)
                    reply.headers["Allow"] = allow
                    return reply
                }
                return Self.page(WebPages.notFound(request.path), status: 404)
            }
        } catch {
            // A bad parameter is the client's (4xx); anything else is the history that cannot be read now (503).
            let (status, text) = (error as? WebError).map { ($0.status, $0.description) } ?? (503, "cannot read the run history: \(error)")
            if request.path.hasPrefix("/api/") { return Self.json(status, ["ok": false, "error": text]) }
            return Self.page(WebPages.problem(text), status: status)
        }
    }

    /// The methods a path of the view takes (nil: no such path).
    static func allowed(_ path: String) -> String? {
        switch path {
        case "/", "/timeline", "/logs", "/events", "/api/runs", "/static/baton.css", "/static/baton.js": "GET"
        case "/login": "GET, POST"
        case "/api/trigger", "/api/pause", "/api/resume", "/api/cancel", "/api/replay": "POST"
        default: path.hasPrefix("/run/") ? "GET" : nil
        }
    }

    // MARK: - Authentication

    private func authorized(_ request: WebRequest) -> Bool {
        guard !token.isEmpty else { return true }
        if let given = Self.bearer(request) { return guessed(Self.same(given, token), request) }
        return Self.cookie("baton_session", in: request.headers["cookie"]).map { Self.same($0, session) } ?? false
    }

    /// The token of an `Authorization: Bearer` header (the scheme's name in any case, as RFC 7235 has it).
    static func bearer(_ request: WebRequest) -> String? {
        guard let header = request.headers["authorization"], header.count > 7, header.prefix(7).lowercased() == "bearer " else {
            return nil
        }
        return String(header.dropFirst(7)).trimmingCharacters(in: .whitespaces)
    }

    /// Compares two secrets in time that does not depend on where they differ (nor on the guess's length: both
    /// are hashed first).
    static func same(_ given: String, _ secret: String) -> Bool {
        let left = Array(SHA256.hex(of: Data(given.utf8)).utf8)
        let right = Array(SHA256.hex(of: Data(secret.utf8)).utf8)
        var difference: UInt8 = 0
        for index in left.indices { difference |= left[index] ^ right[index] }
        return difference == 0
    }

    static func cookie(_ name: String, in header: String?) -> String? {
        for pair in (header ?? "").split(separator: ";") {
            let parts = pair.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if parts.count == 2, parts[0] == name { return parts[1].removingPercentEncoding }
        }
        return nil
    }

    /// The reply to a request that brings a token while the budget of wrong ones is spent: nothing is compared.
    private func throttled(_ request: WebRequest) -> WebReply? {
        guard !token.isEmpty, !guesses.withLock({ $0.allows(at: .now, from: request.address) }) else { return nil }
        return WebReply(
            status: 429,
            headers: ["Content-Type": "application/json", "Retry-After": "1"],
            body: Data(#"{"ok":false,"error":"too many wrong tokens: try again in a second"}"#.utf8)
        )
    }

    /// Counts a wrong token against the budget (said in the log when it runs out); returns whether the token was
    /// right.
    private func guessed(_ right: Bool, _ request: WebRequest) -> Bool {
        if !right, guesses.withLock({ $0.spend(at: .now, from: request.address) }) {
            let now = ContinuousClock.now
            let due = lastWarned.withLock { last in
                guard last.map({ now - $0 >= .seconds(60) }) ?? true else { return false }
                last = now
                return true
            }
            if due {
                logger.warning(
                    "wrong web tokens: a budget is spent, tokens are refused with 429 for a moment",
                    metadata: ["address": "\(request.address)"]
                )
            }
        }
        return right
    }

    private func login(_ request: WebRequest) -> WebReply {
        let form = Self.form(request.body) ?? [:]
        if form["token"] != nil, let refused = throttled(request) {
            // The form's answer is a page, as its other answers are; the status and Retry-After are the API's.
            var reply = Self.page(WebPages.login(failed: false, throttled: true, required: true), status: refused.status)
            reply.headers["Retry-After"] = refused.headers["Retry-After"]
            return reply
        }
        guard !token.isEmpty, let given = form["token"], guessed(Self.same(given, token), request) else {
            return Self.page(WebPages.login(failed: true, required: !token.isEmpty), status: 401)
        }
        return WebReply(
            status: 303,
            headers: ["Location": "/", "Set-Cookie": "baton_session=\(session); Path=/; HttpOnly; SameSite=Strict"]
        )
    }

    // MARK: - Pages

    private func schedulerJobs() async -> [ControlReply.Job]? {
        let client = RequestClient(context: context, endpoint: configuration.endpoints.control, timeout: .seconds(2))
        return try? await client.ask(ControlRequest(command: .jobs), expecting: ControlReply.self)?.jobs
    }

    private func jobsPage() async throws -> String {
        let report = keeper.report()
        let scheduled = await schedulerJobs()
        let summaries = (try? await history?.jobSummaries()) ?? [:]
        return WebPages.jobs(report: report, scheduled: scheduled, summaries: summaries, actions: !token.isEmpty)
    }

    /// The spans a timeline can show: from a quarter of an hour to a month (a day by default).
    static let spans: [(name: String, seconds: Double)] = [
        ("15m", 900), ("1h", 3600), ("6h", 6 * 3600), ("1d", 86_400), ("7d", 7 * 86_400), ("30d", 30 * 86_400),
    ]

    private func timelinePage(_ query: [String: String]) async throws -> String {
        guard let history else { throw WebError(503, "the run history is not available (see the logger's log)") }
        // A parameter given is used or refused, never ignored: a link with a typo shows what it asks for or says why not.
        if let asked = query["span"], !Self.spans.contains(where: { $0.name == asked }) {
            throw WebError(400, "span: one of \(Self.spans.map(\.name).joined(separator: ", ")) (got \"\(asked)\")")
        }
        if let asked = query["end"], Timestamp.parse(asked) == nil {
            throw WebError(400, "end: expected an ISO 8601 time such as 2026-01-01T00:00:00Z (got \"\(asked)\")")
        }
        if let asked = query["job"], !asked.isEmpty, !JobName.isValid(asked) { throw WebError(400, "job: not a job name") }
        let span = Self.spans.first { $0.name == query["span"] } ?? Self.spans[3]
        let end = query["end"].flatMap(Timestamp.parse) ?? Date()
        let job = query["job"].flatMap { JobName.isValid($0) ? $0 : nil }
        let from = end.addingTimeInterval(-span.seconds)
        let found = try await history.spans(from: from, to: end, job: job)
        return WebPages.timeline(
            spans: found.spans,
            truncated: found.truncated,
            from: from,
            to: end,
            span: span.name,
            job: job,
            now: Date()
        )
    }

    private func runPage(_ id: String) async throws -> WebReply {
        guard RunID.parse(id) != nil else { throw WebError(400, "not a run id: \(id)") }
        guard let history else { throw WebError(503, "the run history is not available (see the logger's log)") }
        guard let run = try await history.runs(.runs(run: id)).runs.first else {
            return Self.page(WebPages.problem("no run \(id) in the history"), status: 404)
        }
        return Self.page(WebPages.run(run, actions: !token.isEmpty))
    }

    /// The run's events from the event log (the current file and the newest rotated one, their last 32 MiB each).
    private func logsPage(_ id: String) async throws -> String {
        guard RunID.parse(id) != nil else { throw WebError(400, "not a run id: \(id)") }
        let path = LoggerService.logPath(configuration)
        var lines: [String] = []
        let needle = Data("\"run\":\"\(id)\"".utf8)
        for file in [EventLogWriter.rotated(path, 1), path] {
            guard let handle = FileHandle(forReadingAtPath: file) else { continue }
            defer { try? handle.close() }
            let size = (try? handle.seekToEnd()) ?? 0
            let window: UInt64 = 32 << 20
            try? handle.seek(toOffset: size > window ? size - window : 0)
            guard let data = try? handle.readToEnd() else { continue }
            for line in data.split(separator: 0x0A) where line.range(of: needle) != nil {
                lines.append(String(decoding: line, as: UTF8.self))
            }
        }
        return WebPages.logs(run: id, lines: Array(lines.suffix(1000)))
    }

    private func apiRuns(_ query: [String: String]) async throws -> WebReply {
        guard let history else { throw WebError(503, "the run history is not available") }
        func time(_ name: String) throws -> Date? {
            guard let text = query[name] else { return nil }
            guard let date = Timestamp.parse(text) else { throw WebError(400, "\(name): expected an ISO 8601 time (got \"\(text)\")") }
            return date
        }
        let search: StatusQuery
        do {
            var limit: Int?
            if let text = query["limit"] {
                guard let value = Int(text) else { throw WebError(400, "limit: expected a whole number (got \"\(text)\")") }
                limit = value
            }
            search = StatusQuery.runs(
                job: query["job"],
                state: query["state"],
                from: try time("from"),
                to: try time("to"),
                limit: limit,
                run: query["run"]
            )
            try search.validate()
        } catch let error as WebError {
            return Self.json(error.status, ["ok": false, "error": error.description])
        } catch {
            return Self.json(400, ["ok": false, "error": "\(error)"])
        }
        let report = try await history.runs(search)
        let encoder = Timestamp.encoder()
        encoder.outputFormatting = [.sortedKeys]
        return WebReply(headers: ["Content-Type": "application/json"], body: try encoder.encode(report))
    }

    // MARK: - Live updates

    /// Server-sent events: each run, stage and task event as `data: <event JSON>`, and a comment every few seconds
    /// so that an idle connection stays open (and a client gone is found).
    private func events() -> WebReply {
        guard let subscription = fanout.subscribe() else {
            return Self.json(503, ["ok": false, "error": "too many live connections (\(EventFanout.limit))"])
        }
        let keepalive = min(configuration.metrics.requestTimeout / 2, .seconds(15))
        return WebReply(
            headers: ["Content-Type": "text/event-stream", "Cache-Control": "no-store"],
            stream: { write in
                defer { self.fanout.unsubscribe(subscription.id) }
                try await write(Data("retry: 2000\n\n".utf8))
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for await line in subscription.stream { try await write(Data("data: ".utf8) + line + Data("\n\n".utf8)) }
                    }
                    group.addTask {
                        while true {
                            try await Task.sleep(for: keepalive)
                            try await write(Data(": keepalive\n\n".utf8))
                        }
                    }
                    try await group.next()
                    group.cancelAll()
                }
            }
        )
    }

    // MARK: - Actions

    private func act(_ action: String, _ request: WebRequest) async -> WebReply {
        guard !token.isEmpty else {
            return Self.json(403, ["ok": false, "error": "actions need web.token in the configuration; this view is read-only"])
        }
        guard request.headers["x-baton-action"] == "1" else {
            return Self.json(403, ["ok": false, "error": "an action needs the header X-Baton-Action: 1"])
        }
        if let field = Self.notText(in: request.body, ["job", "run", "stage"]) {
            return Self.json(400, ["ok": false, "error": "\(field): expected a string"])
        }
        guard let form = Self.form(request.body) else {
            return Self.json(400, ["ok": false, "error": "the body must be a JSON object or a form (job=…&run=…)"])
        }
        func job() throws(WebError) -> String {
            guard let job = form["job"] else { throw WebError(400, "\(action) needs \"job\"") }
            guard JobName.isValid(job) else { throw WebError(400, "job: not a job name") }
            return job
        }
        func run() throws(WebError) -> String {
            guard let run = form["run"] else { throw WebError(400, "\(action) needs \"run\"") }
            guard RunID.parse(run) != nil else { throw WebError(400, "run: not a run id (JOB@YYYY-MM-DDTHH:MM:SS.mmmZ)") }
            return run
        }
        let control: ControlRequest
        do {
            switch action {
            case "trigger": control = ControlRequest(command: .trigger, job: try job())
            case "pause": control = ControlRequest(command: .pause, job: try job())
            case "resume": control = ControlRequest(command: .resume, job: try job())
            case "cancel": control = ControlRequest(command: .cancel, run: try run())
            case "replay":
                let run = try run()
                guard let stage = form["stage"], !stage.isEmpty else { throw WebError(400, "replay needs \"stage\" (a stage's name)") }
                let request = AlgorithmRequest(command: .rerun, run: run, stageName: stage)
                let client = RequestClient(context: context, endpoint: configuration.endpoints.algorithmControl, timeout: .seconds(5))
                guard let reply = try? await client.ask(request, expecting: AlgorithmReply.self) else {
                    return Self.json(504, ["ok": false, "error": "the algorithm did not answer"])
                }
                logger.notice("web view: replay", metadata: ["run": "\(run)", "stage": "\(stage)", "ok": "\(reply.ok)"])
                return Self.json(
                    reply.ok ? 200 : 409,
                    Self.answer(ok: reply.ok, error: reply.error, message: reply.ok ? "\(run) rerunning from stage \(stage)" : nil)
                )
            default:
                throw WebError(404, "no action \(action): trigger, pause, resume, cancel or replay")
            }
        } catch let error as WebError {
            return Self.json(error.status, ["ok": false, "error": error.description])
        } catch {
            return Self.json(400, ["ok": false, "error": "\(error)"])
        }
        let job = control.job
        let run = control.run
        let client = RequestClient(context: context, endpoint: configuration.endpoints.control, timeout: .seconds(5))
        guard let reply = try? await client.ask(control, expecting: ControlReply.self) else {
            return Self.json(504, ["ok": false, "error": "the scheduler did not answer"])
        }
        logger.notice("web view: \(action)", metadata: ["job": "\(job ?? "")", "run": "\(run ?? "")", "ok": "\(reply.ok)"])
        return Self.json(reply.ok ? 200 : 409, Self.answer(ok: reply.ok, error: reply.error, message: reply.message, runs: reply.runs))
    }

    /// An action's answer: the scheduler's (or the algorithm's) reply as `control.reply` has it, `runs` a list and
    /// keys without a value left out.
    static func answer(ok: Bool, error: String?, message: String?, runs: [String]? = nil) -> [String: Any] {
        var answer: [String: Any] = ["ok": ok]
        if let error, !error.isEmpty { answer["error"] = error }
        if let message, !message.isEmpty { answer["message"] = message }
        if let runs, !runs.isEmpty { answer["runs"] = runs }
        return answer
    }

    /// The first of `fields` that a JSON body holds as something other than a string (`{"job": 5}`, `null`).
    static func notText(in body: Data, _ fields: [String]) -> String? {
        guard body.first == UInt8(ascii: "{"), let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any] else {
            return nil
        }
        return fields.first { object[$0] != nil && !(object[$0] is String) }
    }

    // MARK: - Replies

    /// A body's fields: a JSON object's (strings, numbers, booleans) or a form's; nil when it is neither.
    static func form(_ body: Data) -> [String: String]? {
        var fields: [String: String] = [:]
        if body.first == UInt8(ascii: "{") || body.first == UInt8(ascii: "[") {
            guard let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any] else { return nil }
            for (key, value) in object {
                switch value {
                case let text as String: fields[key] = text
                case let number as NSNumber: fields[key] = "\(number)"
                default: return nil
                }
            }
            return fields
        }
        for pair in String(decoding: body, as: UTF8.self).split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1).map {
                String($0).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? ""
            }
            if parts.count == 2 { fields[parts[0]] = parts[1] }
        }
        return fields
    }

    static func page(_ html: String, status: Int = 200) -> WebReply {
        WebReply(
            status: status,
            headers: [
                "Content-Type": "text/html; charset=utf-8",
                "Cache-Control": "no-store",
                "Content-Security-Policy": "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:",
                "X-Frame-Options": "DENY",
            ],
            body: Data(html.utf8)
        )
    }

    static func asset(_ text: String, type: String) -> WebReply {
        WebReply(headers: ["Content-Type": type, "Cache-Control": "max-age=300"], body: Data(text.utf8))
    }

    static func json(_ status: Int, _ object: [String: Any]) -> WebReply {
        let body = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return WebReply(status: status, headers: ["Content-Type": "application/json"], body: body)
    }
}

/// A page that cannot be made, with its status.
struct WebError: Error, CustomStringConvertible {
    var status: Int
    var description: String
    init(_ status: Int, _ description: String) {
        self.status = status
        self.description = description
    }
}

/// The run events captured (those the run history records: `run.*`, `stage.*`, `task.*`, `batch.acknowledged`,
/// `pipeline.finished`), fanned out to the browsers following them (server-sent events): each subscriber
/// has a small buffer of its own, so a slow one loses its oldest events, never holds up the capture.
final class EventFanout: Sendable {
    /// Live connections at most.
    static let limit = 32

    struct Subscription: Sendable {
        let id: Int
        let stream: AsyncStream<Data>
    }

    private let state = Mutex<(next: Int, subscribers: [Int: AsyncStream<Data>.Continuation])>((0, [:]))

    func subscribe() -> Subscription? {
        let (stream, continuation) = AsyncStream<Data>.makeStream(bufferingPolicy: .bufferingNewest(100))
        let id: Int? = state.withLock { state in
            guard state.subscribers.count < Self.limit else { return nil }
            state.next += 1
            state.subscribers[state.next] = continuation
            return state.next
        }
        guard let id else { return nil }
        return Subscription(id: id, stream: stream)
    }

    func unsubscribe(_ id: Int) {
        state.withLock { $0.subscribers.removeValue(forKey: id) }?.finish()
    }

    /// Whether anyone follows (the capture then skips encoding).
    var isFollowed: Bool { state.withLock { !$0.subscribers.isEmpty } }

    func publish(_ event: StatusEvent) {
        guard event.run != nil, RunHistory.records(event.type), isFollowed else { return }
        let line = event.jsonLine
        for continuation in state.withLock({ Array($0.subscribers.values) }) { continuation.yield(line) }
    }

    /// Ends every stream (the logger stops).
    func close() {
        for continuation in state.withLock({ state in
            defer { state.subscribers.removeAll() }
            return Array(state.subscribers.values)
        }) { continuation.finish() }
    }
}

/// How many wrong tokens the web view takes. Each client address has a bucket of ``burst``, refilled at one a
/// second; all addresses together have one of ``globalBurst``, refilled at ``globalPerSecond``. Past either, a
/// request that brings a token is answered `429` for a moment and its token is not compared. So a guesser from one
/// address gets one try a second and holds up no one else (with one bucket for all, a single client sending a
/// wrong token a second kept every script with the right one at 429), and guessers from many addresses together
/// get no more than ``globalPerSecond``. A user already logged in (the cookie) is never held up.
struct GuessBudget: Sendable {
    static let burst = 5.0
    static let perSecond = 1.0
    static let globalBurst = 50.0
    static let globalPerSecond = 10.0
    /// Addresses tracked at most; beyond, those whose bucket is full again are forgotten.
    static let addressLimit = 10_000

    struct Bucket: Sendable {
        var left: Double
        var at: ContinuousClock.Instant?

        func available(at now: ContinuousClock.Instant, burst: Double, rate: Double) -> Double {
            guard let at else { return left }
            let elapsed = now - at
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            return min(burst, left + max(seconds, 0) * rate)
        }
    }

    private var global = Bucket(left: globalBurst)
    private var addresses: [String: Bucket] = [:]

    /// Whether a token from `address` may be compared now.
    func allows(at now: ContinuousClock.Instant, from address: String = "") -> Bool {
        let own = addresses[address]?.available(at: now, burst: Self.burst, rate: Self.perSecond) ?? Self.burst
        return own >= 1 && global.available(at: now, burst: Self.globalBurst, rate: Self.globalPerSecond) >= 1
    }

    /// A wrong token came from `address`; returns whether that spent a budget (its address's or everyone's: the
    /// next token waits).
    @discardableResult
    mutating func spend(at now: ContinuousClock.Instant, from address: String = "") -> Bool {
        let own = addresses[address]?.available(at: now, burst: Self.burst, rate: Self.perSecond) ?? Self.burst
        let all = global.available(at: now, burst: Self.globalBurst, rate: Self.globalPerSecond)
        addresses[address] = Bucket(left: max(own - 1, 0), at: now)
        global = Bucket(left: max(all - 1, 0), at: now)
        if addresses.count > Self.addressLimit {
            addresses = addresses.filter { $0.value.available(at: now, burst: Self.burst, rate: Self.perSecond) < Self.burst }
        }
        return (own >= 1 && own - 1 < 1) || (all >= 1 && all - 1 < 1)
    }
}

/// The key the login cookie is derived under: 256 random bits, as 64 hex digits in `<data_dir>/logger/web.key`
/// (mode 0600), made at the first start, so that a cookie is neither the token nor anything computable from a
/// guess of it, and sessions outlive a restart. A new key (the file deleted) or a new token ends every session.
enum SessionKey {
    static func path(dataDirectory: String) -> String { (dataDirectory as NSString).appendingPathComponent("logger/web.key") }

    /// The key (its hex digits, which are the HMAC's key bytes) from its file, made if there is none; a key for
    /// this process alone (sessions end at a restart) when the file can be neither read nor made, said in the log.
    static func load(dataDirectory: String, logger: Logger) -> String {
        let path = path(dataDirectory: dataDirectory)
        func stored() -> String? {
            (try? String(contentsOfFile: path, encoding: .utf8)).map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
                .flatMap { SHA256.isDigest($0) ? $0 : nil }
        }
        for _ in 0..<2 {
            if let key = stored() { return key }
            let key = random()
            try? FileManager.default.createDirectory(
                atPath: (path as NSString).deletingLastPathComponent,
                withIntermediateDirectories: true
            )
            // Exclusive: of two loggers starting on one folder, one writes it and the other reads it.
            let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            if descriptor >= 0 {
                let bytes = Array((key + "\n").utf8)
                let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
                let synced = fsync(descriptor) == 0
                close(descriptor)
                if written == bytes.count && synced { return key }
                unlink(path)
            } else if errno != EEXIST {
                break
            } else if stored() == nil {
                // A file that holds no key (cut short, edited): replaced.
                unlink(path)
            }
        }
        logger.warning("cannot keep the web view's session key; logins end when the logger restarts", metadata: ["path": "\(path)"])
        return random()
    }

    /// 256 random bits (the system's generator) as 64 hex digits.
    private static func random() -> String { SHA256.hex(of: Data((0..<32).map { _ in UInt8.random(in: 0...255) })) }
}
