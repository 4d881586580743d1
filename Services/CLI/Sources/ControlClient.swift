import ServiceKit
import ArgumentParser
import Foundation
import Messaging
import Config
import ZMQ

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
