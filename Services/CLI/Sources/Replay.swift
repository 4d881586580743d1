import ArgumentParser
import Foundation
import Logging
import Messaging
import ProcessorService
import Config
import ServiceKit

extension Baton {
    /// `baton replay`: process kept raw results again, without running the algorithm.
    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Process kept raw results again (without running the algorithm): by run id, by job and time range, or all dead letters.",
            discussion: """
                Each raw result is fetched from baton-algorithm on its algorithm_control socket (so the algorithm must \
                be running; the command says so and exits 3 when it is not), checked against its recorded sha256 there \
                and again here (a corrupt file is reported and never stored), and processed here as a processor would \
                into the deployment's result store (store.url, or else store.path: the product's output) or --store: the built-in store, or \
                processor.command. A result already stored is left as it is unless --overwrite is given; one stored with \
                another sha256 is a conflict, reported as failed and kept aside, unless --overwrite is given. Replaying \
                into the deployment's own store tells the algorithm each part was delivered (a dead letter becomes acked).

                Jobs with stages: a task of the store stage is replayed here as above; a dead task of any other stage \
                (a command, split or merge) is put back in the algorithm's queue, and the processors run it again (the \
                algorithm commits its output; its stage's last task makes the next stage, e.g. the merge, once). \
                RUN --from-stage NAME runs the run's pipeline again from that stage, with its kept input: the stage's \
                and later stages' tasks are made anew at the algorithm, and the processors do them.
                """
        )

        @OptionGroup var options: ServiceOptions

        @Argument(help: ArgumentHelp("Run ids to replay (all their parts).", valueName: "run-id"))
        var runIDs: [String] = []

        @OptionGroup var selection: ResultSelection

        @Flag(help: "Replay every dead-lettered result.")
        var dead = false

        @Option(
            help: ArgumentHelp(
                "Store into this SQLite file instead of the configured store (e.g. a fresh one). Built-in store only: refused when processor.command is set.",
                valueName: "path"
            )
        )
        var store: String?

        @Flag(help: "Replace results already stored instead of leaving them as they are.")
        var overwrite = false

        @Option(
            name: .customLong("from-stage"),
            help: ArgumentHelp("Run one run's pipeline again from this stage (by name), with its kept input.", valueName: "name")
        )
        var fromStage: String?

        func validate() throws {
            if runIDs.isEmpty && selection.isEmpty && !dead {
                throw ValidationError("say what to replay: run ids, --job (with --from/--to), a time range, or --dead")
            }
            if fromStage != nil, runIDs.count != 1 || !selection.isEmpty || dead || store != nil || overwrite {
                throw ValidationError(
                    "--from-stage takes exactly one run id, and none of --job, --from, --to, --dead, --store, --overwrite"
                )
            }
        }

        /// Why `--store` cannot be honoured with this configuration, if it cannot: a processor command stores
        /// results itself, wherever it was written to store them (the production database, typically), so a
        /// replay meant for a scratch store would write there. Refused rather than guessed at.
        static func storeRefusal(store: String?, configuration: Configuration) -> String? {
            guard let store, !configuration.processor.command.isEmpty else { return nil }
            return """
                baton replay: --store \(store) redirects only the built-in store, but this configuration has processor.command \
                (\(configuration.processor.command.joined(separator: " "))), which stores results itself, wherever it stores them: \
                replaying through it would write to its own (production) store, not to \(store). Nothing was replayed. \
                To replay into a scratch store, use a configuration whose processor.command writes there (or that has no \
                processor.command, for the built-in store), and run baton replay with that --config.
                """
        }

        func run() async throws {
            let configuration = try options.loadConfiguration(command: "replay")
            let context = try options.clientContext(configuration, command: "replay")
            if let refusal = Self.storeRefusal(store: store, configuration: configuration) {
                Console.error(refusal)
                throw ExitCode(2)
            }
            let algorithm = AlgorithmClient(context: context, endpoint: configuration.endpoints.algorithmControl, command: "replay")
            if let fromStage, let runID = runIDs.first {
                try await Self.rerun(runID: runID, fromStage: fromStage, algorithm: algorithm)
                return
            }
            // Long enough for a large raw result to come through.
            let fetcher = AlgorithmClient(
                context: context,
                endpoint: configuration.endpoints.algorithmControl,
                command: "replay",
                timeout: .seconds(120)
            )
            func parts(_ request: AlgorithmRequest) async throws -> [AlgorithmReply.Part] {
                try await algorithm.ask(request).parts ?? []
            }
            var entries: [AlgorithmReply.Part] = []
            if dead {
                entries += try await parts(
                    AlgorithmRequest(
                        command: .results,
                        state: .dead,
                        job: selection.job,
                        from: selection.from?.date,
                        to: selection.to?.date
                    )
                )
            }
            if !selection.isEmpty, !dead {
                entries += try await parts(
                    AlgorithmRequest(command: .results, job: selection.job, from: selection.from?.date, to: selection.to?.date)
                )
            }
            for runID in runIDs {
                let found = try await parts(AlgorithmRequest(command: .results, run: runID))
                if found.isEmpty { Console.error("baton replay: no result recorded for run \(runID)") }
                entries += found
            }
            let intoLiveStore = store == nil
            // --store names another SQLite file; without it, the deployment's store (PostgreSQL when store.url is set).
            let resultStore =
                if let store { try await ResultStore(path: store) } else { try await ResultStore.open(configuration, name: "baton replay") }
            let handler = ResultHandler(configuration: configuration, store: resultStore, instance: "replay")
            var logger = Logger(label: "baton.replay")
            logger.logLevel = Logger.Level(rawValue: configuration.log.level) ?? .info
            var tally = (stored: 0, duplicate: 0, failed: 0, requeued: 0)
            let (atHub, here, passed) = Self.sort(entries)
            if passed > 0 {
                Console.line(
                    "\(passed) task(s) of stages before the store are not dead and not replayed (--from-stage runs a stage again)"
                )
            }
            for entry in atHub {
                do {
                    guard store == nil else {
                        throw ReplayFailure(
                            "not requeued: its stage runs at the processors, which store into the deployment's store, not --store"
                        )
                    }
                    try await Self.requeue(entry, algorithm: algorithm)
                    tally.requeued += 1
                } catch let exit as ExitCode {
                    throw exit
                } catch {
                    tally.failed += 1
                    Console.error("\(Self.name(entry)): failed: \(error)")
                }
            }
            for entry in here {
                let name = Self.name(entry)
                let stage = entry.header.stageIndex
                do {
                    // The algorithm checks its file against the recorded sha256; the bytes are checked again here,
                    // as they arrived.
                    let raw = try await fetcher.exchange(
                        AlgorithmRequest(command: .raw, run: entry.header.runID, part: entry.header.part, stage: stage)
                    )
                    guard raw.reply.ok, let payload = raw.payload else {
                        throw ReplayFailure(raw.reply.error ?? "the algorithm sent no bytes")
                    }
                    guard payload.count == entry.header.size, SHA256.hex(of: payload) == entry.header.sha256 else {
                        throw ReplayFailure("the bytes received do not match the recorded sha256 \(entry.header.sha256): not stored")
                    }
                    let message = ResultMessage(header: entry.header, payload: payload)
                    let outcome = try await Self.store(message, handler: handler, store: resultStore, overwrite: overwrite, logger: logger)
                    if case .conflict(let stored) = outcome {
                        // Refused (and kept aside in the store's conflicts table); the dead letter stays as it is.
                        throw ReplayFailure(
                            "conflict: stored with sha256 \(stored), this result has sha256 \(entry.header.sha256); not stored (--overwrite replaces it)"
                        )
                    }
                    if intoLiveStore, entry.state != .acked {
                        let marked = try await algorithm.exchange(
                            AlgorithmRequest(command: .delivered, run: entry.header.runID, part: entry.header.part, stage: stage)
                        )
                        guard marked.reply.ok else {
                            throw ReplayFailure(marked.reply.error ?? "the algorithm did not record the delivery")
                        }
                    }
                    switch outcome {
                    case .stored:
                        tally.stored += 1
                        Console.line("\(name): stored")
                    case .duplicate:
                        tally.duplicate += 1
                        Console.line("\(name): already stored, unchanged")
                    case .conflict:
                        break
                    }
                } catch let exit as ExitCode {
                    throw exit  // the algorithm stopped answering: said so already
                } catch {
                    tally.failed += 1
                    Console.error("\(name): failed: \(error)")
                }
            }
            Console.line(
                "replayed \(atHub.count + here.count): \(tally.stored) stored, \(tally.duplicate) already stored, \(tally.failed) failed"
                    + (atHub.isEmpty ? "" : ", \(tally.requeued) requeued at the algorithm")
            )
            if tally.failed > 0 { throw ExitCode(1) }
        }
    }
}

/// Why one part was not replayed, as printed.
struct ReplayFailure: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) { self.description = description }
}
