import FlyingFox
import FlyingSocks
import Foundation
import Glibc
public import Logging
import Messaging
public import ServiceLifecycle
import Synchronization

/// The HTTP endpoint orchestrators and Prometheus talk to: `GET /metrics` (Prometheus text format) and
/// `GET /healthz` (200 with a small JSON body while the service runs, 503 once it is stopping).
///
/// A port that is taken is an error in the log, not a reason to stop the service: it keeps doing its work
/// without the endpoint.
///
/// FlyingFox serves it without SwiftNIO: an epoll loop that blocks in the kernel while idle.
public final class MetricsServer: Service, Sendable {
    /// The address listened on.
    public let host: String
    /// The TCP port asked for.
    public let port: Int
    /// How many ports above `port` may be tried when it is taken (processors on one host share a setting).
    public let search: Int
    private let logger: Logger
    private let metrics: ServiceMetrics
    private let service: String
    private let instance: String
    private let started = Date()
    private let stopping = Atomic<Bool>(false)

    /// Creates the server (it listens once run).
    /// - Parameters:
    ///   - host: An IPv4 address, e.g. `127.0.0.1`, or `0.0.0.0` for every interface.
    ///   - port: The TCP port.
    ///   - metrics: What `/metrics` shows.
    ///   - service: The service's name, shown by `/healthz`.
    ///   - instance: The instance's name, shown by `/healthz`.
    ///   - search: How many ports above `port` to try if it is taken.
    ///   - logger: Where the port used is logged.
    public init(host: String, port: Int, metrics: ServiceMetrics, service: String, instance: String, search: Int = 0, logger: Logger) {
        self.host = host
        self.port = port
        self.search = search
        self.logger = logger
        self.metrics = metrics
        self.service = service
        self.instance = instance
    }

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
        let address: sockaddr_in
        do {
            address = try .inet(ip4: host, port: UInt16(chosen))
        } catch {
            throw MetricsServerError("metrics.host \"\(host)\" is not an IPv4 address")
        }
        var metadata: Logger.Metadata = ["address": "http://\(host):\(chosen)"]
        if chosen != port { metadata["note"] = "port \(port) was in use" }
        logger.info("serving /metrics and /healthz", metadata: metadata)
        let server = HTTPServer(address: address, timeout: 10, logger: .disabled)
        await server.appendRoute("GET /metrics") { [metrics] _ in
            HTTPResponse(
                statusCode: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: Data(metrics.exposition().utf8)
            )
        }
        await server.appendRoute("GET /healthz") { [self] _ in
            let stopping = stopping.load(ordering: .relaxed)
            let body: [String: Any] = [
                "status": stopping ? "stopping" : "ok",
                "service": service,
                "instance": instance,
                "uptime_s": Int(Date().timeIntervalSince(started)),
                "version": BatonVersion.current,
            ]
            let json = (try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])) ?? Data()
            return HTTPResponse(
                statusCode: stopping ? .serviceUnavailable : .ok,
                headers: [.contentType: "application/json"],
                body: json + Data("\n".utf8)
            )
        }
        await server.appendRoute("*") { _ in
            HTTPResponse(statusCode: .notFound, body: Data("not found: try /metrics or /healthz\n".utf8))
        }
        try await withGracefulShutdownHandler {
            do {
                try await server.run()
            } catch  where stopping.load(ordering: .relaxed) || Task.isCancelled {
                // Stopped on purpose.
            } catch {
                // Taken between the check and the bind, or failed later: keep the service running without it.
                logger.error("no /metrics or /healthz on \(host):\(chosen): \(error)")
                try? await gracefulShutdown()
            }
        } onGracefulShutdown: {
            self.stopping.store(true, ordering: .relaxed)
            Task { await server.stop(timeout: 1) }
        }
    }
}

extension MetricsServer {
    /// Whether a TCP port can be bound on `host` now (with SO_REUSEADDR, as the server binds).
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
        }
    }
}

/// Why the metrics endpoint could not be served.
public struct MetricsServerError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
