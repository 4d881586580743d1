import ArgumentParser
import Foundation
import Messaging
import Config
import ServiceKit
import ZMQ

/// Asks the algorithm, on its `algorithm_control` socket, for what only it keeps: result parts and their
/// delivery, its run ledger, and raw result bytes.
struct AlgorithmClient {
    let context: Context
    let endpoint: String
    /// The `baton` command asking, named in errors.
    let command: String
    var timeout: Duration = .seconds(10)

    /// The reply (and payload) to a request, refused or not; prints a clear message and exits 3 if the algorithm
    /// does not answer.
    func exchange(_ request: AlgorithmRequest) async throws -> (reply: AlgorithmReply, payload: Data?) {
        let client = RequestClient(context: context, endpoint: endpoint, timeout: timeout)
        guard let answer = try await client.askWithPayload(request, expecting: AlgorithmReply.self) else {
            Console.error(
                "baton \(command): the algorithm at \(endpoint) did not answer within \(DurationText.format(timeout)); is baton-algorithm running?"
            )
            throw ExitCode(3)
        }
        return (answer.message, answer.payload)
    }

    /// The reply to a request; prints the refusal and exits 1 if the algorithm refused it.
    func ask(_ request: AlgorithmRequest) async throws -> AlgorithmReply {
        let reply = try await exchange(request).reply
        guard reply.ok else {
            Console.error("baton \(command): \(reply.error ?? "refused")")
            throw ExitCode(1)
        }
        return reply
    }
}
