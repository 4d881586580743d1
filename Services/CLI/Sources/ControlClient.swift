import ArgumentParser
import Foundation
import Messaging
import Config
import ZMQ

/// One request on a REQ socket, with a bounded wait for the reply.
struct RequestClient {
    let endpoint: String
    var timeout: Duration = .seconds(5)

    /// Sends a request and decodes the reply; nil if nobody answered within the timeout.
    func ask<Request: WireMessage, Reply: WireMessage>(_ request: Request, expecting: Reply.Type) async throws -> Reply? {
        let context = Context()
        let socket = try await AsyncSocket(
            context: context,
            configuration: .init(type: .request, options: [.requestRelaxed(true), .requestCorrelate(true)], connect: [endpoint])
        )
        let frames: [Data]?
        do {
            try await socket.send(Wire.encode(request))
            frames = try await socket.receive(timeout: timeout)
        } catch {
            await socket.close()
            throw error
        }
        await socket.close()
        return try frames.map { try Wire.decode(Reply.self, from: $0).message }
    }
}

/// Sends one command to the scheduler's `control` socket and waits (a bounded time) for the answer.
struct ControlClient {
    let endpoint: String
    var timeout: Duration = .seconds(5)

    /// Sends a request; prints a clear message and exits non-zero if the scheduler does not answer or refuses.
    func send(_ request: ControlRequest, command: String) async throws -> ControlReply {
        guard let reply = try await RequestClient(endpoint: endpoint, timeout: timeout).ask(request, expecting: ControlReply.self) else {
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
