import AlgorithmService
import Foundation
import Messaging
import ServiceKit
import TestSupport
import Testing
import ZMQ

/// `baton replay` and `baton audit` for pipelines, at the hub: a dead task requeued completes its stage and
/// makes the merge once; a rerun from a stage makes that stage again from its kept input; the stages are listed.
struct PipelineReplayTests {
    let scratch = Scratch("pipereplay")
    let run = "j@1"

    /// score (per part) → merge → store.
    static let pipeline = Pipeline(stages: [
        StageSpec(name: "score", command: ["score"]),
        StageSpec(name: "merge", mode: .merge, command: ["merge"]),
    ])

    static func digest(_ text: String) -> PartDigest {
        PartDigest(size: text.utf8.count, sha256: SHA256.hex(of: Data(text.utf8)))
    }

    /// The algorithm's three parts, and what `score` makes of each.
    static let inputs = ["a", "b", "c"].map { Outbox.StoredPart(path: "/in/\($0)", digest: digest($0)) }
    static let scored = ["A", "B", "C"].map { Outbox.StoredPart(path: "/score/\($0)", digest: digest($0)) }

    /// A run of ``pipeline`` whose algorithm finished with ``inputs``; its `score` tasks are pending.
    func finishedRun(doorbell: Doorbell? = nil, publisher: StatusPublisher? = nil) async throws -> (Outbox, AlgorithmControl) {
        let outbox = try await Outbox(path: scratch.path("outbox.sqlite"))
        let ledger = RunLedger(outbox: outbox)
        #expect(try await ledger.accept(Fixtures.request(run), pipeline: Self.pipeline) == nil)
        try await ledger.markRunning(run)
        try await ledger.finish(run, parts: Self.inputs)
        return (outbox, AlgorithmControl(outbox: outbox, ledger: ledger, publisher: publisher, doorbell: doorbell))
    }

    func tasks(_ outbox: Outbox, stage: Int) async throws -> [Outbox.Entry] {
        try await outbox.entries().filter { $0.header.runID == run && $0.header.stageNumber == stage }
    }

    func ack(_ outbox: Outbox, stage: Int, part: Int, outputs: [Outbox.StoredPart] = []) async throws -> Outbox.Settled {
        try #require(try await outbox.settle([.ack(runID: run, stage: stage, part: part, processor: "p", outputs: outputs)]).first)
    }

    @Test(.timeLimit(.minutes(1)))
    func aRequeuedDeadTaskCompletesItsStageAndTheMergeIsMadeOnce() async throws {
        let doorbell = Doorbell()
        let (outbox, control) = try await finishedRun(doorbell: doorbell)
        _ = try await ack(outbox, stage: 0, part: 0, outputs: [Self.scored[0]])
        _ = try await ack(outbox, stage: 0, part: 2, outputs: [Self.scored[2]])
        #expect(try await outbox.recordFailure(runID: run, stage: 0, part: 1, reason: "exit 1", permanent: true) == .dead)
        #expect(try await tasks(outbox, stage: 1).isEmpty, "the merge waits for every part")

        let listed = try #require(try await control.handle(AlgorithmRequest(command: .stages, run: run)).reply.stages)
        #expect(listed.map(\.name) == ["score", "merge", "store"])
        #expect(listed.map(\.ready) == [true, false, false])
        #expect(listed[0].parts == 3 && listed[0].done == 2 && listed[0].dead == 1 && listed[0].doneAt == nil)

        let requeued = try await control.handle(AlgorithmRequest(command: .requeue, run: run, stage: 0)).reply
        #expect(requeued.ok && requeued.requeued == 1, "only the dead task: \(requeued)")
        #expect(await doorbell.wait(), "the sender is woken")
        let again = try #require(try await tasks(outbox, stage: 0).first { $0.header.part == 1 })
        #expect(again.state == .pending && again.failures == 0 && again.lastError == nil)
        #expect(try await tasks(outbox, stage: 0).filter { $0.state == .acked }.count == 2, "the parts done stay done")

        let last = try await ack(outbox, stage: 0, part: 1, outputs: [Self.scored[1]])
        #expect(last.progress.contains(.ready(runID: run, job: "j", stage: 1, name: "merge", parts: 1)))
        #expect(try await ack(outbox, stage: 0, part: 1, outputs: [Self.scored[1]]).changed == false)
        let merges = try await tasks(outbox, stage: 1)
        #expect(merges.count == 1, "one merge, made once")
        // The oracle, from the inputs: the merge takes score's outputs in part order.
        #expect(merges.first?.header.sha256 == PartDigest.combined(Self.scored.map(\.digest)))
        #expect(try await outbox.mergeInputs(runID: run, stage: 1) == Self.scored)
        #expect(try await control.handle(AlgorithmRequest(command: .requeue, run: run, stage: 0)).reply.requeued == 0)
    }

    @Test(.timeLimit(.minutes(1)))
    func aRerunFromTheMergeMakesOnlyTheMergeAgainFromItsKeptInput() async throws {
        let context = Context()
        let bus = try await Bus(context: context)
        let doorbell = Doorbell()
        let (outbox, control) = try await finishedRun(doorbell: doorbell, publisher: bus.publisher)
        for part in 0..<3 { _ = try await ack(outbox, stage: 0, part: part, outputs: [Self.scored[part]]) }
        let merged = Outbox.StoredPart(path: "/merge/ABC", digest: Self.digest("ABC"))
        _ = try await ack(outbox, stage: 1, part: 0, outputs: [merged])
        let finished = try await ack(outbox, stage: 2, part: 0)
        #expect(finished.progress.contains(.finished(runID: run, job: "j", stages: 3)))

        let reply = try await control.handle(AlgorithmRequest(command: .rerun, run: run, stageName: "merge")).reply
        #expect(reply.ok, "\(reply)")
        #expect(reply.stages?.map(\.name) == ["merge"])
        #expect(reply.stages?.first?.parts == 1)
        #expect(await doorbell.wait())
        let ready = try await bus.next(EventType.stageReady)
        #expect(ready.attributes?["stage"] == "merge")
        await bus.close()

        #expect(try await tasks(outbox, stage: 0).allSatisfy { $0.state == .acked }, "score is not redone")
        #expect(try await tasks(outbox, stage: 1).map(\.state) == [.pending])
        #expect(try await tasks(outbox, stage: 2).isEmpty, "the store waits for the new merge")
        #expect(try await outbox.mergeInputs(runID: run, stage: 1) == Self.scored)
        let listed = try #require(try await control.handle(AlgorithmRequest(command: .stages, run: run)).reply.stages)
        #expect(listed.map(\.ready) == [true, true, false])
        #expect(listed[0].doneAt != nil && listed[1].doneAt == nil)
    }

    @Test func aRerunOfAnUnknownStageOrRunIsRefusedNamingTheStages() async throws {
        let (_, control) = try await finishedRun()
        let unknown = try await control.handle(AlgorithmRequest(command: .rerun, run: run, stageName: "nope")).reply
        #expect(!unknown.ok)
        #expect(unknown.error?.contains("its stages: score, merge, store") == true, "\(unknown)")
        let noRun = try await control.handle(AlgorithmRequest(command: .rerun, run: "j@2", stageName: "merge")).reply
        #expect(!noRun.ok)
        #expect(noRun.error?.contains("no run j@2") == true, "\(noRun)")
        let early = try await control.handle(AlgorithmRequest(command: .rerun, run: run, stageName: "store")).reply
        #expect(!early.ok, "the store has had no input yet: \(early)")
    }

    /// A merge made from part of its input would be made again when the input completes: refused until then.
    @Test func aRerunWaitsForTheStageBeforeToBeComplete() async throws {
        let (outbox, control) = try await finishedRun()
        _ = try await ack(outbox, stage: 0, part: 0, outputs: [Self.scored[0]])
        let early = try await control.handle(AlgorithmRequest(command: .rerun, run: run, stageName: "merge")).reply
        #expect(!early.ok)
        #expect(early.error?.contains("not complete") == true, "\(early)")
        #expect(try await tasks(outbox, stage: 1).isEmpty)
        let first = try await control.handle(AlgorithmRequest(command: .rerun, run: run, stage: 0)).reply
        #expect(first.ok, "the algorithm's output is complete: \(first)")
        #expect(try await tasks(outbox, stage: 0).map(\.state) == [.pending, .pending, .pending], "score made again")
    }

    /// `baton replay --dead` stores a dead task of the store stage itself and says it was delivered: that
    /// completes the run's pipeline, announced like a processor's ack.
    @Test(.timeLimit(.minutes(1)))
    func aDeliveredStoreTaskCompletesThePipeline() async throws {
        let context = Context()
        let bus = try await Bus(context: context)
        let (outbox, control) = try await finishedRun(publisher: bus.publisher)
        for part in 0..<3 { _ = try await ack(outbox, stage: 0, part: part, outputs: [Self.scored[part]]) }
        _ = try await ack(outbox, stage: 1, part: 0, outputs: [Outbox.StoredPart(path: "/merge/ABC", digest: Self.digest("ABC"))])
        try await outbox.markDead(runID: run, stage: 2, part: 0, reason: "conflict", cause: Outbox.conflictCause)
        let delivered = try await control.handle(AlgorithmRequest(command: .delivered, run: run, part: 0, stage: 2)).reply
        #expect(delivered.changed == true)
        #expect(try await bus.next(EventType.pipelineFinished).run == run)
        await bus.close()
        let listed = try #require(try await control.handle(AlgorithmRequest(command: .stages, run: run)).reply.stages)
        #expect(listed.allSatisfy { $0.doneAt != nil && $0.done == $0.tasks && $0.dead == 0 }, "\(listed)")
        let again = try await control.handle(AlgorithmRequest(command: .delivered, run: run, part: 0, stage: 2)).reply
        #expect(again.changed == false)
    }

    @Test func theNewCommandsNeedTheirFields() throws {
        let run = "j@1970-01-01T00:01:00.000Z"
        #expect(throws: ProtocolError.self) { try AlgorithmRequest(command: .rerun, run: run).validate() }
        #expect(throws: ProtocolError.self) { try AlgorithmRequest(command: .rerun, run: run, stage: 1, stageName: "merge").validate() }
        #expect(throws: ProtocolError.self) { try AlgorithmRequest(command: .rerun, stageName: "merge").validate() }
        #expect(throws: ProtocolError.self) { try AlgorithmRequest(command: .rerun, run: run, stageName: "no such").validate() }
        #expect(throws: ProtocolError.self) { try AlgorithmRequest(command: .requeue, run: run).validate() }
        #expect(throws: ProtocolError.self) { try AlgorithmRequest(command: .requeue, run: run, stage: -1).validate() }
        try AlgorithmRequest(command: .rerun, run: run, stageName: "merge").validate()
        try AlgorithmRequest(command: .requeue, run: run, stage: 0).validate()
        try AlgorithmRequest(command: .stages).validate()
    }

    @Test func stagesAreListedForOneRunOrForAll() async throws {
        let (outbox, control) = try await finishedRun()
        let ledger = RunLedger(outbox: outbox)
        #expect(try await ledger.accept(Fixtures.request("j@2"), pipeline: Self.pipeline) == nil)
        try await ledger.markRunning("j@2")
        try await ledger.finish("j@2", parts: Array(Self.inputs.prefix(2)))
        let one = try #require(try await control.handle(AlgorithmRequest(command: .stages, run: "j@2")).reply.stages)
        #expect(one.map(\.run) == ["j@2", "j@2", "j@2"])
        #expect(one.first?.parts == 2)
        let all = try #require(try await control.handle(AlgorithmRequest(command: .stages)).reply.stages)
        #expect(all.map(\.run) == ["j@1", "j@1", "j@1", "j@2", "j@2", "j@2"])
        #expect(try await outbox.stageOverview(runID: "j@3").isEmpty, "an unknown run has no stages")
    }
}
