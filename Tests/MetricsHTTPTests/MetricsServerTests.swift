import Foundation
import Glibc
import Logging
import MetricsHTTP
import ServiceLifecycle
import TestSupport
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
            async let attacks = Blocking.onThreads(2) { _ in (0..<5).map { _ in RawHTTP.send(line, to: port, readTimeout: 5) } }
            async let probes = Blocking.onThreads(1) { _ in (0..<5).map { _ in RawHTTP.get(port: port, "/healthz", timeout: 5) } }
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
            let result = await Blocking.onThread { RawHTTP.trickle(to: port, every: 0.25, for: 10) }
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
            let idle = await Blocking.onThread { (0..<200).compactMap { _ in RawHTTP.connect(port: port, timeout: 2) } }
            #expect(idle.count == 200)
            let health = await Blocking.onThread { RawHTTP.get(port: port, "/healthz", timeout: 5) }
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
            #expect(await Blocking.onThread { RawHTTP.get(port: port, "/healthz", timeout: 5) }.status == 200)
        }
    }

    /// The routes: metrics text, health JSON, a plain 404 for anything else.
    @Test(.timeLimit(.minutes(3)))
    func routes() async throws {
        try await RunningServer.with(limits: .init()) { server in
            let port = server.port
            let (metrics, health, other) = await Blocking.onThread {
                (RawHTTP.get(port: port, "/metrics"), RawHTTP.get(port: port, "/healthz"), RawHTTP.get(port: port, "/nothing"))
            }
            #expect(metrics.status == 200)
            // What the registry holds, e.g. the server's own counters, all 0 so far.
            #expect(RawHTTP.sample(metrics.body, #"baton_http_connections_closed_total{reason="timeout"}"#) == 0, "\(metrics.body)")
            #expect(health.status == 200)
            #expect(health.body.contains("\"service\":\"test\"") && health.body.contains("\"instance\":\"here\""), "\(health.body)")
            #expect(other.status == 404)
            #expect(other.body == "not found: try /metrics or /healthz\n")
        }
    }

    /// The `Date` header's format (RFC 9110's example, and a date with one-digit fields).
    @Test func httpDates() {
        #expect(MetricsServer.httpDate(784_111_777) == "Sun, 06 Nov 1994 08:49:37 GMT")
        #expect(MetricsServer.httpDate(1_798_761_599) == "Thu, 31 Dec 2026 23:59:59 GMT")
        #expect(MetricsServer.httpDate(0) == "Thu, 01 Jan 1970 00:00:00 GMT")
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
