import ArgumentParser
import Foundation
import Messaging
import Config
import ZMQ

/// One request on a REQ socket, with a bounded wait for the reply.
struct RequestClient {
    let context: Context
    let endpoint: String
    var timeout: Duration = .seconds(5)

    /// Sends a request and decodes the reply; nil if nobody answered within the timeout.
    func ask<Request: WireMessage, Reply: WireMessage>(_ request: Request, expecting: Reply.Type) async throws -> Reply? {
        try await askWithPayload(request, expecting: Reply.self)?.message
    }

    /// Sends a request and decodes the reply with its payload frame, if any; nil if nobody answered in time.
    func askWithPayload<Request: WireMessage, Reply: WireMessage>(
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

/// Sends one command to the scheduler's `control` socket and waits (a bounded time) for the answer.
struct ControlClient {
    let context: Context
    let endpoint: String
    var timeout: Duration = .seconds(5)

    /// Sends a request; prints a clear message and exits non-zero if the scheduler does not answer or refuses.
    func send(_ request: ControlRequest, command: String) async throws -> ControlReply {
        guard
            let reply = try await RequestClient(context: context, endpoint: endpoint, timeout: timeout).ask(
                request,
                expecting: ControlReply.self
            )
        else {
            Console.error(
                "baton \(command): the scheduler at \(endpoint) did not answer within \(DurationText.format(timeout)); is baton-scheduler running?"
            )
            throw ExitCode(3)
        }
        guard reply.ok else {
            Console.error("baton \(command): \(reply.error ?? "refused")")
            throw ExitCode(1)
        }
        return reply
    }
}
