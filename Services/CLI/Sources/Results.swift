import AlgorithmService
import ArgumentParser
import Foundation
import Messaging
import ServiceKit
import Storage

extension Baton {
    /// `baton results`: the algorithm's results and their delivery state.
    struct Results: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List results and their delivery state: pending, sent, acked, or dead (dead-lettered).",
            discussion: """
                Reads <data_dir>/algorithm/outbox.sqlite, so run it where baton-algorithm runs. A dead result failed \
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

        func validate() throws {
            if let state, state != Outbox.conflictCause, DeliveryState(rawValue: state) == nil {
                throw ValidationError("--state must be pending, sent, acked, dead or conflict (got \"\(state)\")")
            }
        }

        func run() async throws {
            let configuration = try options.loadConfiguration(command: "results")
            let outbox = try Outbox(path: AlgorithmService.outboxPath(configuration))
            let conflicts = state == Outbox.conflictCause
            let entries = try await outbox.entries(
                state: conflicts ? .dead : state.flatMap(DeliveryState.init),
                cause: conflicts ? Outbox.conflictCause : nil,
                job: selection.job,
                from: selection.from?.date,
                to: selection.to?.date
            )
            for entry in entries {
                if json {
                    var object: [String: Any] = [
                        "runId": entry.header.runID, "part": entry.header.part, "job": entry.header.job,
                        "logicalTime": Timestamp.format(entry.header.logicalTime), "state": entry.state.rawValue,
                        "deliveries": entry.header.attempt - 1, "failures": entry.failures, "size": entry.header.size,
                        "sha256": entry.header.sha256, "path": entry.path,
                    ]
                    if let error = entry.lastError { object["lastError"] = error }
                    if let cause = entry.cause { object["cause"] = cause }
                    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
                    Console.line(String(decoding: data, as: UTF8.self))
                } else {
                    var line = "\(entry.header.runID) part \(entry.header.part)  \(entry.state)"
                    if let cause = entry.cause { line += " (\(cause))" }
                    line += "  failures=\(entry.failures)"
                    if let error = entry.lastError { line += "  last error: \(error)" }
                    Console.line(line)
                }
            }
            if !json {
                let counts = try await outbox.counts()
                Console.line(["pending", "sent", "acked", "dead"].map { "\($0): \(counts[$0] ?? 0)" }.joined(separator: ", "))
            }
        }
    }
}
