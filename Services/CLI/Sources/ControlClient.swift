import ArgumentParser
import Foundation
import Messaging
import Runtime
import ZMQ

/// Sends one command to the scheduler's `control` socket and waits (a bounded time) for the answer.
struct ControlClient {
    let endpoint: String
    var timeout: Duration = .seconds(5)

    /// Sends a request; prints a clear message and exits non-zero if the scheduler does not answer or refuses.
    func send(_ request: ControlRequest, command: String) async throws -> ControlReply {
        let context = Context()
        let socket = try await AsyncSocket(
            context: context,
            configuration: .init(type: .request, options: [.requestRelaxed(true), .requestCorrelate(true)], connect: [endpoint])
        )
        defer { Task { await socket.close() } }
        try await socket.send(Wire.encode(request))
        guard let frames = try await socket.receive(timeout: timeout) else {
            await socket.close()
            Console.error(
                "baton \(command): the scheduler at \(endpoint) did not answer within \(DurationText.format(timeout)); is baton-scheduler running?"
            )
            throw ExitCode(3)
        }
        await socket.close()
        let reply = try Wire.decode(ControlReply.self, from: frames).message
        guard reply.ok else {
            Console.error("baton \(command): \(reply.error ?? "refused")")
            throw ExitCode(1)
        }
        return reply
    }
}
