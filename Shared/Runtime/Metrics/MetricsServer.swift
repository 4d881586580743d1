import FlyingFox
import FlyingSocks
import Foundation
import Messaging
public import ServiceLifecycle
import Synchronization

/// The HTTP endpoint orchestrators and Prometheus talk to: `GET /metrics` (Prometheus text format) and
/// `GET /healthz` (200 with a small JSON body while the service runs, 503 once it is stopping).
///
/// FlyingFox serves it without SwiftNIO: an epoll loop that blocks in the kernel while idle.
public final class MetricsServer: Service, Sendable {
    /// The address listened on.
    public let host: String
    /// The TCP port listened on.
    public let port: Int
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
    public init(host: String, port: Int, metrics: ServiceMetrics, service: String, instance: String) {
        self.host = host
        self.port = port
        self.metrics = metrics
        self.service = service
        self.instance = instance
    }

    public func run() async throws {
        let address: sockaddr_in
        do {
            address = try .inet(ip4: host, port: UInt16(port))
        } catch {
            throw MetricsServerError("metrics.host \"\(host)\" is not an IPv4 address")
        }
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
                throw MetricsServerError("cannot serve metrics on \(host):\(port): \(error)")
            }
        } onGracefulShutdown: {
            self.stopping.store(true, ordering: .relaxed)
            Task { await server.stop(timeout: 1) }
        }
    }
}

/// Why the metrics endpoint could not be served.
public struct MetricsServerError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
