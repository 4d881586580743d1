import Foundation
import Glibc
import Logging
import MetricsHTTP
import ServiceLifecycle
import Testing

/// `MetricsServer` against raw TCP clients that misbehave: no client may stall it or use it up.
///
/// Real sockets on 127.0.0.1; every blocking client call runs on a thread of its own, never on the
/// cooperative pool.
@Suite(.serialized)
struct MetricsServerTests {
    /// A request line of 100 KiB is refused (400) or closed quickly, and `/healthz` answers meanwhile.
    @Test(.timeLimit(.minutes(3)))
    func aHugeRequestLineIsRefusedWithoutStoppingHealthz() async throws {
        try await RunningServer.with(limits: .init(maxHeaderBytes: 16 * 1024)) { server in
            let port = server.port
            let line = Array("GET /".utf8) + [UInt8](repeating: UInt8(ascii: "a"), count: 100 * 1024) + Array(" HTTP/1.1\r\n\r\n".utf8)
            async let attacks = onThreads(2) { _ in (0..<5).map { _ in RawHTTP.send(line, to: port, readTimeout: 5) } }
            async let probes = onThreads(1) { _ in (0..<5).map { _ in RawHTTP.get(port: port, "/healthz", timeout: 5) } }
            let (replies, health) = await (attacks, probes)
            for reply in replies.joined() {
                // Answered 400/431, or closed: never left hanging until the client's timeout.
                #expect(reply.status == 400 || reply.status == 431 || (reply.status == nil && reply.closed), "\(reply)")
            }
            for reply in health[0] { #expect(reply.status == 200, "\(reply)") }
            let refused = RawHTTP.sample(server.metrics.exposition(), #"baton_http_connections_closed_total{reason="header_too_large"}"#)
            #expect(refused == 10, "\(server.metrics.exposition())")
        }
    }

    /// A client that sends a byte every 250 ms (never idle, never done) is closed after the request timeout.
    @Test(.timeLimit(.minutes(3)))
    func aSlowLorisIsClosedAfterTheRequestTimeout() async throws {
        try await RunningServer.with(limits: .init(requestTimeout: .seconds(1))) { server in
            let port = server.port
            let result = await onThreads(1) { _ in RawHTTP.trickle(to: port, every: 0.25, for: 10) }[0]
            #expect(result.closed, "still open after 10 s of trickling")
            // Closed by the timeout (1 s), not at once; loose upper bound for a loaded machine.
            #expect(result.after >= 0.8 && result.after < 8, "closed after \(result.after) s")
            let timeouts = RawHTTP.sample(server.metrics.exposition(), #"baton_http_connections_closed_total{reason="timeout"}"#)
            #expect(timeouts == 1)
            #expect(RawHTTP.get(port: port, "/healthz", timeout: 5).status == 200)
        }
    }

    /// 200 idle connections against a cap of 32: the longest-idle ones are closed, `/healthz` still answers, the
    /// server holds at most the cap, and once the clients close, nothing is left in CLOSE-WAIT.
    @Test(.timeLimit(.minutes(3)))
    func moreIdleConnectionsThanTheCapStillLetHealthzIn() async throws {
        let cap = 32
        try await RunningServer.with(limits: .init(maxConnections: cap, requestTimeout: .seconds(60))) { server in
            let port = server.port
            let idle = await onThreads(1) { _ in (0..<200).compactMap { _ in RawHTTP.connect(port: port, timeout: 2) } }[0]
            #expect(idle.count == 200)
            let health = await onThreads(1) { _ in RawHTTP.get(port: port, "/healthz", timeout: 5) }[0]
            #expect(health.status == 200, "\(health)")
            #expect(health.body.contains("\"status\":\"ok\""))
            // The kernel may still hold a few in the accept queue; once accepted, the server keeps at most the cap.
            let bounded = try await waitUntil { TCPTable.count(localPort: port, state: .established) <= cap }
            #expect(bounded, "\(TCPTable.count(localPort: port, state: .established)) connections held")
            let evicted = RawHTTP.sample(server.metrics.exposition(), #"baton_http_connections_closed_total{reason="evicted"}"#) ?? 0
            #expect(evicted >= Double(200 + 1 - cap))

            for fd in idle { close(fd) }
            let drained = try await waitUntil { TCPTable.count(localPort: port, state: .closeWait) == 0 }
            #expect(drained, "\(TCPTable.count(localPort: port, state: .closeWait)) sockets in CLOSE-WAIT")
            #expect(await onThreads(1) { _ in RawHTTP.get(port: port, "/healthz", timeout: 5) }[0].status == 200)
        }
    }

    /// The routes: metrics text, health JSON, a plain 404 for anything else.
    @Test(.timeLimit(.minutes(3)))
    func routes() async throws {
        try await RunningServer.with(limits: .init()) { server in
            let port = server.port
            let (metrics, health, other) = await onThreads(1) { _ in
                (RawHTTP.get(port: port, "/metrics"), RawHTTP.get(port: port, "/healthz"), RawHTTP.get(port: port, "/nothing"))
            }[0]
            #expect(metrics.status == 200)
            // What the registry holds, e.g. the server's own counters, all 0 so far.
            #expect(RawHTTP.sample(metrics.body, #"baton_http_connections_closed_total{reason="timeout"}"#) == 0, "\(metrics.body)")
            #expect(health.status == 200)
            #expect(health.body.contains("\"service\":\"test\"") && health.body.contains("\"instance\":\"here\""), "\(health.body)")
            #expect(other.status == 404)
            #expect(other.body == "not found: try /metrics or /healthz\n")
        }
    }
}

/// A `MetricsServer` run in a service group for one test, stopped gracefully after it.
struct RunningServer {
    let server: MetricsServer
    let port: Int
    let metrics: ServiceMetrics

    static func with(limits: MetricsServer.Limits, _ body: (RunningServer) async throws -> Void) async throws {
        let metrics = ServiceMetrics.prometheus()
        // Below the kernel's ephemeral range (32768 up), whose ports other tests' connections hold.
        let base = Int.random(in: 20_000...32_000)
        let server = MetricsServer(
            host: "127.0.0.1",
            port: base,
            metrics: metrics,
            service: "test",
            instance: "here",
            search: 64,
            limits: limits,
            logger: Logger(label: "test")
        )
        let group = ServiceGroup(configuration: .init(services: [server], logger: Logger(label: "test")))
        let running = Task { try await group.run() }
        do {
            guard try await waitUntil({ server.boundPort != nil }), let port = server.boundPort else {
                throw ServerTestError("the server did not listen")
            }
            try await body(RunningServer(server: server, port: port, metrics: metrics))
        } catch {
            await group.triggerGracefulShutdown()
            try? await running.value
            throw error
        }
        await group.triggerGracefulShutdown()
        try await running.value
    }
}

struct ServerTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Polls `condition` every 50 ms for at most 10 s.
/// Waits up to a minute: a wait, not a time target (the whole suite starting at once can keep a debug server
/// from listening for over 10 s).
func waitUntil(_ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + .seconds(60)
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(50))
    }
    return try await condition()
}

/// Runs `body` on `count` threads of their own (blocking socket calls stay off the cooperative pool).
func onThreads<T: Sendable>(_ count: Int, _ body: @escaping @Sendable (Int) -> T) async -> [T] {
    await withTaskGroup(of: (Int, T).self) { group in
        for index in 0..<count {
            group.addTask {
                await withCheckedContinuation { continuation in
                    Thread { continuation.resume(returning: (index, body(index))) }.start()
                }
            }
        }
        var results: [(Int, T)] = []
        for await result in group { results.append(result) }
        return results.sorted { $0.0 < $1.0 }.map(\.1)
    }
}

/// A blocking HTTP/1.1 client on raw sockets, able to misbehave.
enum RawHTTP {
    struct Reply: Sendable, CustomStringConvertible {
        /// The status code, if a status line came back.
        var status: Int?
        var body: String
        /// Whether the server closed (end of file or reset) rather than the read timing out.
        var closed: Bool
        var description: String { "status \(status.map(String.init) ?? "none"), closed \(closed), body \(body.prefix(200))" }
    }

    /// A connected socket with send and receive timeouts, or nil.
    static func connect(port: Int, timeout: Double) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var time = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard connected else {
            close(fd)
            return nil
        }
        return fd
    }

    /// Sends `bytes` (stopping at the first failure), then reads the reply until the server closes or `readTimeout`.
    static func send(_ bytes: [UInt8], to port: Int, readTimeout: Double) -> Reply {
        guard let fd = connect(port: port, timeout: readTimeout) else { return Reply(status: nil, body: "", closed: false) }
        defer { close(fd) }
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent <= 0 { break }
            offset += sent
        }
        return read(fd)
    }

    /// `GET path` with `Connection: close`.
    static func get(port: Int, _ path: String, timeout: Double = 5) -> Reply {
        send(Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8), to: port, readTimeout: timeout)
    }

    /// Starts a request and sends one more header byte every `every` seconds; returns whether the server closed
    /// the connection within `limit` seconds, and after how long.
    static func trickle(to port: Int, every: Double, for limit: Double) -> (closed: Bool, after: Double) {
        let start = Date()
        guard let fd = connect(port: port, timeout: 2) else { return (false, 0) }
        defer { close(fd) }
        var head = Array("GET /healthz HTTP/1.1\r\nX-Slow: ".utf8)
        _ = head.withUnsafeMutableBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        while Date().timeIntervalSince(start) < limit {
            var byte = UInt8(ascii: "a")
            if Glibc.send(fd, &byte, 1, Int32(MSG_NOSIGNAL)) <= 0 { return (true, Date().timeIntervalSince(start)) }
            var pending = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&pending, 1, Int32(every * 1000)) > 0 {
                // Readable: the server answered or closed; either way it is not waiting for us any more.
                var buffer = [UInt8](repeating: 0, count: 4096)
                let got = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
                if got <= 0 { return (true, Date().timeIntervalSince(start)) }
            }
        }
        return (false, Date().timeIntervalSince(start))
    }

    /// Reads until end of file, a reset, or the receive timeout, and parses what came.
    static func read(_ fd: Int32) -> Reply {
        var data = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65536)
        var closed = false
        while data.count < 1 << 20 {
            let got = recv(fd, &buffer, buffer.count, 0)
            if got > 0 {
                data += buffer[0..<got]
                continue
            }
            closed = got == 0 || errno == ECONNRESET || errno == EPIPE
            break
        }
        let text = String(decoding: data, as: UTF8.self)
        let status = text.hasPrefix("HTTP/1.1 ") ? Int(text.dropFirst(9).prefix(3)) : nil
        let body = text.range(of: "\r\n\r\n").map { String(text[$0.upperBound...]) } ?? ""
        return Reply(status: status, body: body, closed: closed)
    }

    /// The value of one sample line in a Prometheus exposition.
    static func sample(_ exposition: String, _ name: String) -> Double? {
        for line in exposition.split(separator: "\n") where line.hasPrefix(name + " ") {
            return Double(line.dropFirst(name.count + 1))
        }
        return nil
    }
}

/// Counts of this host's IPv4 TCP sockets (`/proc/net/tcp`) by local port and state.
enum TCPTable {
    enum State: String {
        case established = "01"
        case closeWait = "08"
    }

    static func count(localPort: Int, state: State) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/net/tcp", encoding: .utf8) else { return 0 }
        var count = 0
        for line in text.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ")
            guard fields.count > 3, let colon = fields[1].lastIndex(of: ":") else { continue }
            if Int(fields[1][fields[1].index(after: colon)...], radix: 16) == localPort, fields[3] == state.rawValue { count += 1 }
        }
        return count
    }
}
