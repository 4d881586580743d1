import ArgumentParser
import Foundation
import Messaging
import ServiceKit
import Config

extension Baton {
    /// `baton results`: the algorithm's results and their delivery state.
    struct Results: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List results and their delivery state: pending, sent, acked, or dead (dead-lettered).",
            discussion: """
                A job with stages lists one task per stage and part (`RUN  stage score  part 3/64  acked`; --json \
                adds stage and stageIndex).

                Asks baton-algorithm on its algorithm_control socket (endpoints.algorithm_control), so it needs the \
                algorithm running; it says so and exits 3 when it is not. A dead result failed \
                1 + processor.retries times (its last error ends with the last lines its processor command wrote on \
                standard error), or was refused as a conflict: a processor has its key (run, part) stored with another \
                sha256 (--state conflict lists those; the refused bytes are kept in the store's conflicts table). Fix \
                the cause and bring it back with `baton replay --dead` (a conflict needs --overwrite to replace what is stored).
                """
        )

        @OptionGroup var options: ServiceOptions

        @Option(
            help: ArgumentHelp(
                "Only results in this state: pending, sent, acked, dead, or conflict (dead as a conflict).",
                valueName: "state"
            )
        )
        var state: String?

        @OptionGroup var selection: ResultSelection

        @Flag(help: "One JSON object per line.")
        var json = false

        /// The `--state` that lists parts dead-lettered as conflicts (the outbox's cause for them).
        static let conflict = "conflict"

        func validate() throws {
            if let state, state != Self.conflict, DeliveryState(rawValue: state) == nil {
                throw ValidationError("--state must be pending, sent, acked, dead or conflict (got \"\(state)\")")
            }
        }

        func run() async throws {
            let configuration = try options.loadConfiguration(command: "results")
            let context = try options.clientContext(configuration, command: "results")
            let conflicts = state == Self.conflict
            let reply = try await AlgorithmClient(context: context, endpoint: configuration.endpoints.algorithmControl, command: "results")
                .ask(
                    AlgorithmRequest(
                        command: .results,
                        state: conflicts ? .dead : state.flatMap(DeliveryState.init),
                        cause: conflicts ? Self.conflict : nil,
                        job: selection.job,
                        from: selection.from?.date,
                        to: selection.to?.date
                    )
                )
            for entry in reply.parts ?? [] {
                if json {
                    let data = try JSONSerialization.data(
                        withJSONObject: Self.object(entry),
                        options: [.sortedKeys, .withoutEscapingSlashes]
                    )
                    Console.line(String(decoding: data, as: UTF8.self))
                } else {
                    Console.line(Self.line(entry))
                }
            }
            if !json {
                let counts = reply.counts ?? [:]
                Console.line(DeliveryState.allCases.map { "\($0.rawValue): \(counts[$0.rawValue] ?? 0)" }.joined(separator: ", "))
            }
        }

        /// One task as a line: `RUN part 0  acked  failures=0` for a job without stages (as before pipelines),
        /// `RUN  stage score  part 3/64  acked  failures=0` for a stage of a pipeline.
        static func line(_ entry: AlgorithmReply.Part) -> String {
            let header = entry.header
            var line =
                if let stage = header.stage {
                    "\(header.runID)  stage \(stage.name)  part \(header.part)/\(header.parts)  \(entry.state)"
                } else {
                    "\(header.runID) part \(header.part)  \(entry.state)"
                }
            if let cause = entry.cause { line += " (\(cause))" }
            line += "  failures=\(entry.failures)"
            if let error = entry.lastError { line += "  last error: \(error)" }
            return line
        }

        /// One task as a JSON object (`--json`); `stage` is the stage's name, `store` for a job without stages.
        static func object(_ entry: AlgorithmReply.Part) -> [String: Any] {
            let header = entry.header
            var object: [String: Any] = [
                "runId": header.runID, "part": header.part, "parts": header.parts, "job": header.job,
                "logicalTime": Timestamp.format(header.logicalTime), "state": entry.state.rawValue,
                "deliveries": header.attempt - 1, "failures": entry.failures, "size": header.size,
                "sha256": header.sha256, "path": entry.path, "stageIndex": header.stageNumber,
                "stage": header.stage?.name ?? StageSpec.store.name,
            ]
            if let error = entry.lastError { object["lastError"] = error }
            if let cause = entry.cause { object["cause"] = cause }
            return object
        }
    }
}
