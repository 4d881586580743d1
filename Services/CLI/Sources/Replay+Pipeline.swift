import ArgumentParser
import Foundation
import Logging
import Messaging
import ProcessorService

// `baton replay` for jobs with stages. Only the store stage ends in the result store, so only its tasks are
// replayed here; any other stage's output must be committed by the algorithm (the pipeline's hub), so its dead
// tasks go back to the hub's queue and the processors do them, and `--from-stage` asks the hub to rerun.
extension Baton.Replay {
    /// How a part is named in what replay prints.
    static func name(_ entry: AlgorithmReply.Part) -> String {
        guard let stage = entry.header.stage else { return "\(entry.header.runID) part \(entry.header.part)" }
        return "\(entry.header.runID) stage \(stage.name) part \(entry.header.part)"
    }

    /// The parts to requeue at the hub (dead tasks of stages that hand on), the parts to replay here (results of
    /// jobs without stages, and tasks of the store stage), and how many tasks of other stages were passed over
    /// (done or at work: running them again is `--from-stage`).
    static func sort(_ entries: [AlgorithmReply.Part]) -> (atHub: [AlgorithmReply.Part], here: [AlgorithmReply.Part], passed: Int) {
        var seen = Set<String>()
        var atHub: [AlgorithmReply.Part] = []
        var here: [AlgorithmReply.Part] = []
        var passed = 0
        for entry in entries {
            // A run id and --dead may both name a part.
            guard seen.insert("\(entry.header.runID)#\(entry.header.stageNumber)#\(entry.header.part)").inserted else { continue }
            guard let stage = entry.header.stage, stage.producesOutput else {
                here.append(entry)
                continue
            }
            if entry.state == .dead { atHub.append(entry) } else { passed += 1 }
        }
        return (atHub, here, passed)
    }

    /// Puts one dead task back in the hub's queue.
    static func requeue(_ entry: AlgorithmReply.Part, algorithm: AlgorithmClient) async throws {
        let answer = try await algorithm.exchange(
            AlgorithmRequest(command: .requeue, run: entry.header.runID, part: entry.header.part, stage: entry.header.stageNumber)
        )
        guard answer.reply.ok else { throw ReplayFailure(answer.reply.error ?? "the algorithm did not requeue it") }
        if answer.reply.requeued == 0 {
            Console.line("\(name(entry)): no longer dead, left as it is")
        } else {
            Console.line("\(name(entry)): requeued at the algorithm; a processor runs it again")
        }
    }

    /// Stores one part as its stage says: a job without stages through the processor's own handling (its
    /// command, or the built-in store), a store stage's task through the built-in store.
    static func store(
        _ message: ResultMessage,
        handler: ResultHandler,
        store: ResultStore,
        overwrite: Bool,
        logger: Logger
    ) async throws -> ResultStore.Outcome {
        guard message.header.stage != nil else { return try await handler.process(message, overwrite: overwrite, logger: logger) }
        if overwrite { try await store.delete(runID: message.header.runID, part: message.header.part) }
        switch try await handler.handle(message, logger: logger) {
        case .stored(let outcome): return outcome
        case .produced: throw ReplayFailure("not a task of the store stage")
        }
    }

    /// `baton replay RUN --from-stage NAME`: the hub makes the stage's tasks again from its kept input.
    static func rerun(runID: String, fromStage name: String, algorithm: AlgorithmClient) async throws {
        guard (try? JobName.validate(name, field: "stage")) != nil else {
            // Not a name a stage can have: say which names the run's stages do have.
            let stages = try await algorithm.ask(AlgorithmRequest(command: .stages, run: runID)).stages ?? []
            let names = stages.map(\.name).joined(separator: ", ")
            Console.error(
                "baton replay: run \(runID) has no stage \"\(name)\""
                    + (stages.isEmpty ? " (it has no stages here)" : "; its stages: \(names)")
            )
            throw ExitCode(1)
        }
        let reply = try await algorithm.ask(AlgorithmRequest(command: .rerun, run: runID, stageName: name))
        for stage in reply.stages ?? [] {
            Console.line(
                "\(runID): stage \(stage.name) (\(stage.stage + 1) of \(stage.stages)) made again from its kept input: \(stage.parts) task(s)"
            )
        }
        Console.line("\(runID): rerunning from stage \(name); the processors do it (baton status shows its progress)")
    }
}
