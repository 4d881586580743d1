public import Foundation
public import Messaging
public import ZMQ

/// One request on a REQ socket, with a bounded wait for the reply.
public struct RequestClient: Sendable {
    let context: Context
    let endpoint: String
    var timeout: Duration

    /// A client of the REP or ROUTER socket at `endpoint`, waiting at most `timeout` for each reply.
    public init(context: Context, endpoint: String, timeout: Duration = .seconds(5)) {
        self.context = context
        self.endpoint = endpoint
        self.timeout = timeout
    }

    /// Sends a request and decodes the reply; nil if nobody answered within the timeout.
    public func ask<Request: WireMessage, Reply: WireMessage>(_ request: Request, expecting: Reply.Type) async throws -> Reply? {
        try await askWithPayload(request, expecting: Reply.self)?.message
    }

    /// Sends a request and decodes the reply with its payload frame, if any; nil if nobody answered in time.
    public func askWithPayload<Request: WireMessage, Reply: WireMessage>(
        _ request: Request,
        expecting: Reply.Type
    ) async throws -> (message: Reply, payload: Data?)? {
        let frames = try await context.withSocket(
            .init(type: .request, options: [.requestRelaxed(true), .requestCorrelate(true)], connect: [endpoint])
        ) { socket -> [Data]? in
            // Posted, not awaited: a REQ with no connection (a refused handshake drops it) would hold a send
            // forever, and the time limit must bound the whole exchange.
            guard socket.post(Wire.encode(request)) else { return nil }
            return try await socket.receive(timeout: timeout)
        }
        return try frames.map { try Wire.decode(Reply.self, from: $0) }
    }
}
