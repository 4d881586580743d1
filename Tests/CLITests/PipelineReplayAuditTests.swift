import ArgumentParser
import Foundation
import Messaging
import Testing

@testable import CLI

/// `baton replay` and `baton audit` for runs with stages, without processes: which tasks replay sends back to
/// the hub, which it stores itself; what the audit makes of a pipeline's stages.
struct PipelineReplayAuditTests {
    static let run = "j@1970-01-01T00:01:00.000Z"
    static let specs = [
        StageSpec(name: "upper", command: ["upper"]), StageSpec(name: "total", mode: .merge, command: ["total"]), .store,
    ]

    static func stage(
        _ index: Int,
        ready: Bool = true,
        parts: Int = 1,
        tasks: Int? = nil,
        done: Int? = nil,
        dead: Int = 0,
        complete: Bool? = nil
    ) -> AlgorithmReply.Stage {
        let tasks = ready ? tasks ?? parts : 0
        let done = ready ? done ?? (tasks - dead) : 0
        return AlgorithmReply.Stage(
            run: run,
            stage: index,
            name: specs[index].name,
            mode: specs[index].mode,
            builtin: specs[index].builtin,
            stages: specs.count,
            ready: ready,
            parts: ready ? parts : 0,
            tasks: tasks,
            done: done,
            dead: dead,
            doneAt: (complete ?? (ready && done == tasks)) ? Date(timeIntervalSince1970: 100) : nil
        )
    }

    static func audit(_ stages: [AlgorithmReply.Stage]) -> Findings {
        var findings = Findings()
        Baton.Audit.check(pipeline: stages, run: run, into: &findings)
        return findings
    }

    @Test func aCompletePipelineIsClean() {
        let findings = Self.audit([Self.stage(0, parts: 4), Self.stage(1), Self.stage(2)])
        #expect(findings.violations.isEmpty, "\(findings.violations)")
        #expect(findings.pipelines == 1 && findings.pipelinesInFlight == 0 && findings.tasks == 6)
    }

    @Test func aRunAtWorkIsListedNotCounted() {
        let findings = Self.audit([Self.stage(0, parts: 4, done: 3), Self.stage(1, ready: false), Self.stage(2, ready: false)])
        #expect(findings.violations.isEmpty, "\(findings.violations)")
        #expect(findings.pipelinesInFlight == 1)
        #expect(findings.notes.contains { $0.contains("in flight at stage upper, 3 of 4") }, "\(findings.notes)")
    }

    @Test func aDeadTaskAMissingStageAndASecondMergeAreViolations() {
        let dead = Self.audit([Self.stage(0, parts: 4, dead: 1), Self.stage(1, ready: false), Self.stage(2, ready: false)])
        #expect(dead.violations == ["\(Self.run): stage upper (1 of 3): 1 dead task(s); `baton replay --dead` after a fix"])
        #expect(dead.pipelinesInFlight == 0)

        let missing = Self.audit([Self.stage(0, parts: 4), Self.stage(1, ready: false), Self.stage(2, ready: false)])
        #expect(missing.violations.count == 1)
        #expect(missing.violations.first?.contains("stage total (2 of 3) was never made") == true, "\(missing.violations)")

        let twice = Self.audit([Self.stage(0, parts: 4), Self.stage(1, parts: 2), Self.stage(2, parts: 2)])
        #expect(twice.violations.contains { $0.contains("is a merge with 2 task(s), not exactly 1") }, "\(twice.violations)")

        let lost = Self.audit([Self.stage(0, parts: 4, tasks: 3), Self.stage(1), Self.stage(2)])
        #expect(lost.violations.contains { $0.contains("was given 4 task(s), the outbox holds 3") }, "\(lost.violations)")

        let unfinished = Self.audit([Self.stage(0, parts: 4, complete: false), Self.stage(1, ready: false), Self.stage(2, ready: false)])
        #expect(unfinished.violations.contains { $0.contains("every task is done, but the stage was not completed") })
    }

    @Test func theStoreStagesDeadTasksAreLeftToThePartByPartCheck() {
        let findings = Self.audit([Self.stage(0, parts: 4), Self.stage(1), Self.stage(2, dead: 1)])
        #expect(findings.violations.isEmpty, "named per part with the store check: \(findings.violations)")
        #expect(findings.pipelinesInFlight == 0, "a dead task is not in flight")
    }

    static func part(stage: Int?, part: Int = 0, state: DeliveryState) -> AlgorithmReply.Part {
        var header = ResultHeader(
            runID: run,
            job: "j",
            logicalTime: Date(timeIntervalSince1970: 60),
            part: part,
            parts: 1,
            size: 1,
            sha256: String(repeating: "0", count: 64)
        )
        if let stage {
            header.stageIndex = stage
            header.stages = specs.count
            header.stage = specs[stage]
        }
        return AlgorithmReply.Part(header: header, path: "/p", state: state, failures: 0, lastError: nil, cause: nil)
    }

    @Test func deadTasksOfStagesThatHandOnGoBackToTheHubAndTheStoresAreReplayedHere() {
        let entries = [
            Self.part(stage: 0, part: 0, state: .acked), Self.part(stage: 0, part: 1, state: .dead),
            Self.part(stage: 0, part: 1, state: .dead), Self.part(stage: 1, state: .dead), Self.part(stage: 2, state: .dead),
            Self.part(stage: nil, part: 7, state: .dead),
        ]
        let (atHub, here, passed) = Baton.Replay.sort(entries)
        #expect(atHub.map { "\($0.header.stageNumber).\($0.header.part)" } == ["0.1", "1.0"], "each once")
        #expect(here.map { $0.header.stage?.name ?? "none" } == ["store", "none"])
        #expect(passed == 1, "an acknowledged task is not redone")
        #expect(Baton.Replay.name(entries[1]) == "\(Self.run) stage upper part 1")
        #expect(Baton.Replay.name(entries[5]) == "\(Self.run) part 7")
    }

    @Test func fromStageTakesOneRunAndNothingElse() throws {
        let replay = try Baton.Replay.parse([Self.run, "--from-stage", "total"])
        #expect(replay.fromStage == "total")
        #expect(throws: (any Error).self) { try Baton.Replay.parse([Self.run, Self.run, "--from-stage", "total"]) }
        #expect(throws: (any Error).self) { try Baton.Replay.parse(["--dead", "--from-stage", "total"]) }
        #expect(throws: (any Error).self) { try Baton.Replay.parse([Self.run, "--from-stage", "total", "--overwrite"]) }
    }
}
