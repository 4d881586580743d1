import CoreMetrics
import Foundation
import Glibc
import HTTPTypes
import HummingbirdCore
public import Logging
import Messaging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOPosix
public import ServiceLifecycle
import Synchronization

/// The HTTP endpoint orchestrators and Prometheus talk to: `GET /metrics` (Prometheus text format) and
/// `GET /healthz` (200 with a small JSON body while the service runs, 503 once it is stopping).
///
/// A port that is taken is an error in the log, not a reason to stop the service: it keeps doing its work
/// without the endpoint.
///
/// No client can stall the service through it. Hummingbird serves it on one SwiftNIO event-loop thread of its
/// own, and its request handling runs there too (a task executor on that loop), never on Swift's cooperative
/// pool, where the service does its work. Everything a client can make it hold is bounded (``Limits``): the
/// bytes of a request line and headers (SwiftNIO's parser, linear, counts them as they come; over the limit is a
/// 400 and a close), the time a connection may take to send a request and read the answer (a slow client is
/// closed), and the number of connections (when full, the connection idle the longest is closed so a new one
/// gets in: the endpoint never goes dead). Failed accepts (no fds left) back off and resume by themselves.
///
/// It is served by HummingbirdCore's bare `Server`, not Hummingbird's `Application`: the application runs a
/// date cache that wakes a task and the event loop every second, which was most of an idle service's CPU
/// (docs/PERFORMANCE.md, "Idle"). Two routes need no router; the `Date` header is formatted per response.
public final class MetricsServer: Service, Sendable {
    /// What one client can make the server hold.
    public struct Limits: Sendable, Equatable {
        /// Open connections at most; when full, the one idle the longest is closed for a new one.
        public var maxConnections: Int
        /// Bytes of request line and headers at most (a request over it gets 400 and a close).
        public var maxHeaderBytes: Int
        /// How long a connection may take to send a request and read its answer, or sit idle between requests.
        public var requestTimeout: Duration

        /// Creates limits (the defaults are those of `metrics:` in the configuration).
        public init(maxConnections: Int = 256, maxHeaderBytes: Int = 16 * 1024, requestTimeout: Duration = .seconds(10)) {
            self.maxConnections = maxConnections
            self.maxHeaderBytes = maxHeaderBytes
            self.requestTimeout = requestTimeout
        }
    }

    /// The address listened on.
    public let host: String
    /// The TCP port asked for.
    public let port: Int
    /// How many ports above `port` may be tried when it is taken (processors on one host share a setting).
    public let search: Int
    /// The limits applied to every client.
    public let limits: Limits
    private let logger: Logger
    private let metrics: ServiceMetrics
    private let service: String
    private let instance: String
    private let started = Date()
    private let stopping = Atomic<Bool>(false)
    private let listening = Mutex<Int?>(nil)
    private let web: WebRoutesSlot?

    /// Creates the server (it listens once run).
    /// - Parameters:
    ///   - host: An IPv4 address, e.g. `127.0.0.1`, or `0.0.0.0` for every interface.
    ///   - port: The TCP port.
    ///   - metrics: What `/metrics` shows.
    ///   - service: The service's name, shown by `/healthz`.
    ///   - instance: The instance's name, shown by `/healthz`.
    ///   - search: How many ports above `port` to try if it is taken.
    ///   - limits: What one client can make the server hold.
    ///   - logger: Where the port used is logged.
    ///   - web: Routes the service serves beside `/metrics` and `/healthz` (the logger's web view), once installed.
    public init(
        host: String,
        port: Int,
        metrics: ServiceMetrics,
        service: String,
        instance: String,
        search: Int = 0,
        limits: Limits = Limits(),
        logger: Logger,
        web: WebRoutesSlot? = nil
    ) {
        self.web = web
        self.host = host
        self.port = port
        self.search = search
        self.limits = limits
        self.logger = logger
        self.metrics = metrics
        self.service = service
        self.instance = instance
    }

    /// The port listened on, once listening (nil before, and when no port could be had).
    public var boundPort: Int? { listening.withLock { $0 } }

    public func run() async throws {
        let candidates = port...min(port + search, 65535)
        guard let chosen = candidates.first(where: { Self.isFree(host: host, port: $0) }) else {
            // The service's own work matters more than its metrics: say so loudly, and keep running without them.
            let range = search > 0 ? "ports \(port)–\(candidates.upperBound) are" : "port \(port) is"
            logger.error(
                "no /metrics or /healthz: \(range) in use on \(host) (set metrics.* or --metrics-port; 0 turns it off)"
            )
            try? await gracefulShutdown()
            return
        }
        guard Self.isIPv4(host) else { throw MetricsServerError("metrics.host \"\(host)\" is not an IPv4 address") }

        // One thread of its own: a slow or hostile client costs this thread's time, never the service's.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let closed = ClosedCounters(metrics: metrics)
        let table = ConnectionTable(capacity: max(1, limits.maxConnections), closed: closed)
        let timeout = TimeAmount(limits.requestTimeout)
        let headerBytes = max(256, limits.maxHeaderBytes)
        let channel = HTTP1Channel.Configuration(
            additionalChannelHandlers: [ConnectionGuard(table: table, timeout: timeout, closed: closed)],
            idleTimeout: nil,
            httpDecoderConfiguration: .init(maxHeaderFieldSize: headerBytes, maxHeaderListSize: headerBytes, maxHeaderFieldCount: 100)
        )
        var quiet = logger
        quiet.logLevel = .warning
        let server = Server(
            childChannelSetup: HTTP1Channel(
                responder: { [self] request, writer, channel in
                    var request = request
                    let address = channel.remoteAddress?.ipAddress ?? ""
                    let response = await web?.current != nil ? await routed(&request, from: address) : respond(to: request)
                    try await writer.write(response: response.head, body: response.body)
                },
                configuration: channel
            ),
            configuration: .init(address: .hostname(host, port: chosen), backlog: 256),
            onServerRunning: { [self] channel in self.listening.withLock { $0 = channel.localAddress?.port } },
            eventLoopGroup: group,
            logger: quiet
        )
        var metadata: Logger.Metadata = ["address": "http://\(host):\(chosen)"]
        if chosen != port { metadata["note"] = "port \(port) was in use" }
        logger.info("serving /metrics and /healthz", metadata: metadata)
        let executor = EventLoopTaskExecutor(group.next())
        await withGracefulShutdownHandler {
            do {
                try await withTaskExecutorPreference(executor) { try await server.run() }
                if !stopping.load(ordering: .relaxed) && !Task.isCancelled {
                    // Returning would stop the service's group: its work goes on without the endpoint.
                    logger.error("/metrics and /healthz on \(host):\(chosen) stopped unexpectedly; the service runs on without them")
                    try? await gracefulShutdown()
                }
            } catch  where stopping.load(ordering: .relaxed) || Task.isCancelled {
                // Stopped on purpose.
            } catch {
                // Taken between the check and the bind, or failed later: keep the service running without it.
                logger.error("no /metrics or /healthz on \(host):\(chosen): \(error)")
                try? await gracefulShutdown()
            }
        } onGracefulShutdown: {
            self.stopping.store(true, ordering: .relaxed)
        }
        listening.withLock { $0 = nil }
        executor.close()
        try? await group.shutdownGracefully()
    }

    /// The answer to a request when routes are installed: theirs, except for `/metrics` and `/healthz`.
    private func routed(_ request: inout Request, from address: String) async -> Response {
        var path = request.uri.path
        if path.count > 1, path.hasSuffix("/") { path.removeLast() }
        guard path != "/metrics", path != "/healthz", let routes = web?.current else { return respond(to: request) }
        var body = Data()
        if request.method == .post || request.method == .put {
            // A body announced too large is refused before any of it is read (and the connection closed after the
            // answer): a client sending `Content-Length: 99999999999` waits for nothing.
            if let length = request.headers[.contentLength], Int(length).map({ $0 > WebRoutesSlot.maxBody }) ?? true {
                var refused = Self.plain(.contentTooLarge, "request body over \(WebRoutesSlot.maxBody) bytes\n")
                refused.headers[.connection] = "close"
                return refused
            }
            do {
                let buffer = try await request.collectBody(upTo: WebRoutesSlot.maxBody)
                body = Data(buffer.readableBytesView)
            } catch is NIOTooManyBytesError {
                return Self.plain(.contentTooLarge, "request body over \(WebRoutesSlot.maxBody) bytes\n")
            } catch {
                // A body that could not be read (a malformed chunk, a connection gone): the request's fault.
                return Self.plain(.badRequest, "cannot read the request body\n")
            }
        }
        var headers: [String: String] = [:]
        for field in request.headers { headers[field.name.canonicalName] = field.value }
        var query: [String: String] = [:]
        for (name, value) in request.uri.queryParameters { query[String(name)] = String(value) }
        let reply = await routes.respond(
            to: WebRequest(method: request.method.rawValue, path: path, query: query, headers: headers, body: body, address: address)
        )
        var fields = HTTPFields()
        for (name, value) in reply.headers.sorted(by: { $0.key < $1.key }) {
            if let name = HTTPField.Name(name) { fields[name] = value }
        }
        fields[.date] = Self.httpDate(Int(time(nil)))
        let status = HTTPResponse.Status(code: reply.status)
        guard let stream = reply.stream else {
            return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: reply.body)))
        }
        return Response(
            status: status,
            headers: fields,
            body: ResponseBody { writer in
                // The writer lives in this closure; the stream writes through it one chunk at a time.
                let chunks = AsyncStream<Data>.makeStream(bufferingPolicy: .bufferingNewest(64))
                async let produced: Void = {
                    defer { chunks.continuation.finish() }
                    try await stream { data in
                        guard case .enqueued = chunks.continuation.yield(data) else { throw MetricsServerError("the client is gone") }
                    }
                }()
                for await chunk in chunks.stream { try await writer.write(ByteBuffer(bytes: chunk)) }
                try? await produced
                try await writer.finish(nil)
            }
        )
    }

    private static func plain(_ status: HTTPResponse.Status, _ text: String) -> Response {
        var response = Response(
            status: status,
            headers: [.contentType: "text/plain; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: text))
        )
        response.headers[.date] = httpDate(Int(time(nil)))
        return response
    }

    /// The answer to one request: `/metrics`, `/healthz`, or a plain 404 that says what is there.
    private func respond(to request: Request) -> Response {
        var path = request.uri.path
        if path.count > 1, path.hasSuffix("/") { path.removeLast() }
        var response: Response
        switch (request.method, path) {
        case (.get, "/metrics"):
            response = Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: metrics.exposition()))
            )
        case (.get, "/healthz"):
            let stopping = stopping.load(ordering: .relaxed)
            let body: [String: Any] = [
                "status": stopping ? "stopping" : "ok",
                "service": service,
                "instance": instance,
                "uptime_s": Int(Date().timeIntervalSince(started)),
                "version": BatonVersion.current,
            ]
            let json = (try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])) ?? Data()
            response = Response(
                status: stopping ? .serviceUnavailable : .ok,
                headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(bytes: json + Data("\n".utf8)))
            )
        default:
            response = Response(
                status: .notFound,
                headers: [.contentType: "text/plain; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: "not found: try /metrics or /healthz\n"))
            )
        }
        response.headers[.date] = Self.httpDate(Int(time(nil)))
        return response
    }

    /// An HTTP date (RFC 9110, IMF-fixdate), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
    package static func httpDate(_ seconds: Int) -> String {
        var clock = time_t(seconds)
        var parts = tm()
        guard gmtime_r(&clock, &parts) != nil else { return "" }
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(days[Int(parts.tm_wday) % 7]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon) % 12]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }
}

extension MetricsServer {
    /// Whether a TCP port can be listened on at `host` now (with SO_REUSEADDR, as the server binds). Binding alone
    /// is not enough: with SO_REUSEADDR a port held as the local end of a connection binds, but `listen` fails.
    public static func isFree(host: String, port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var on: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { return false }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        } && listen(fd, 1) == 0
    }

    static func isIPv4(_ host: String) -> Bool {
        var address = in_addr()
        return inet_pton(AF_INET, host, &address) == 1
    }
}

/// Why the metrics endpoint could not be served.
public struct MetricsServerError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// Runs jobs on one SwiftNIO event loop: with it as the task executor preference, the HTTP server's tasks
/// never touch Swift's cooperative pool. Once ``close()`` is called (before the loop is shut down), jobs go to
/// the global executor instead: a task of a connection that finishes after the server returned would otherwise be
/// scheduled on a loop that is gone (NIO drops it, with "Cannot schedule tasks on an EventLoop that has already
/// shut down", seen when a service stopped while clients were scraping it; a crash in later NIO versions).
final class EventLoopTaskExecutor: TaskExecutor {
    private let loop: any EventLoop
    private let closed = Mutex(false)

    init(_ loop: any EventLoop) { self.loop = loop }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let onLoop = closed.withLock { closed in
            // Under the lock, so that close() cannot come between the check and the loop taking the job.
            if !closed { loop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) } }
            return !closed
        }
        if !onLoop { globalConcurrentExecutor.enqueue(job) }
    }

    /// From now on, jobs run on the global executor; call before shutting the loop down.
    func close() { closed.withLock { $0 = true } }
}
