public import Foundation
import Synchronization

/// A request to a service's HTTP port that is not `/metrics` or `/healthz`, for the routes a service adds there
/// (the logger's web view).
public struct WebRequest: Sendable {
    /// `GET`, `POST`, …
    public var method: String
    /// The path, without the query.
    public var path: String
    /// The query's parameters (the last of a repeated name), percent-decoded.
    public var query: [String: String]
    /// The headers, by lowercased name (the last of a repeated name).
    public var headers: [String: String]
    /// The body (at most ``WebRoutesSlot/maxBody`` bytes; a larger one is refused before the routes see it).
    public var body: Data
    /// The client's address (its IP, without the port); empty when not known.
    public var address: String

    /// Creates a request.
    public init(
        method: String,
        path: String,
        query: [String: String] = [:],
        headers: [String: String] = [:],
        body: Data = Data(),
        address: String = ""
    ) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.address = address
    }
}

/// The answer to a ``WebRequest``: a whole body, or a stream (server-sent events) written as it comes.
public struct WebReply: Sendable {
    /// Writes one chunk of a streamed body; throws once the client is gone.
    public typealias Write = @Sendable (Data) async throws -> Void

    /// The HTTP status.
    public var status: Int
    /// Headers, e.g. `Content-Type`.
    public var headers: [String: String]
    /// The body, when not streamed.
    public var body: Data
    /// Writes the body as it comes, when set (then `body` is not sent). The connection stays open while it runs;
    /// a stream must write at least once per `metrics.request_timeout`, or the connection is closed as idle.
    public var stream: (@Sendable (@escaping Write) async throws -> Void)?

    /// A whole reply.
    public init(status: Int = 200, headers: [String: String] = [:], body: Data = Data()) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A streamed reply.
    public init(status: Int = 200, headers: [String: String] = [:], stream: @escaping @Sendable (@escaping Write) async throws -> Void) {
        self.status = status
        self.headers = headers
        self.body = Data()
        self.stream = stream
    }
}

/// Routes a service serves beside `/metrics` and `/healthz`.
public protocol WebRoutes: Sendable {
    /// The answer, or nil for a path the routes do not serve (a 404).
    func respond(to request: WebRequest) async -> WebReply
}

/// Where a service puts its routes once it has what they need; the HTTP server asks it at each request, so the
/// routes can come after the server started (and go when the service stops).
public final class WebRoutesSlot: Sendable {
    /// The largest request body read.
    public static let maxBody = 64 * 1024
    private let routes = Mutex<(any WebRoutes)?>(nil)

    /// An empty slot.
    public init() {}

    /// Installs (or, with nil, removes) the routes.
    public func install(_ routes: (any WebRoutes)?) {
        self.routes.withLock { $0 = routes }
    }

    /// The routes installed, if any.
    public var current: (any WebRoutes)? { routes.withLock { $0 } }
}
