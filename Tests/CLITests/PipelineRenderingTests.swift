import Foundation
import Messaging
import Testing

@testable import CLI

/// How `baton status`, `baton results` and `baton watch` show a run's stages.
struct PipelineRenderingTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)
    let run = "scores@2027-01-15T10:00:00.000Z"

    /// Each run in flight on one line, its stages as done/total in pipeline order, trouble when there is some.
    @Test func statusShowsEachRunsStagesAsDoneOfTotal() {
        let pipelines = [
            StatusReport.PipelineRun(
                run: run,
                job: "scores",
                since: now.addingTimeInterval(-42),
                updated: now,
                stages: [
                    .init(index: 0, name: "score", parts: 64, done: 12, failed: 3, dead: 2),
                    .init(index: 1, name: "total", parts: 1, done: 0),
                    .init(index: 2, name: "store", parts: nil, done: 1),
                ]
            )
        ]
        let text = Baton.Status.renderPipelines(pipelines, now: now)
        #expect(text.contains("PIPELINES IN FLIGHT\n"))
        #expect(text.contains("  \(run)  score 12/64 (2 dead, 3 retried)  total 0/1  store 1/?  (since 42s ago)\n"), "\(text)")
        #expect(Baton.Status.renderPipelines([], now: now).hasSuffix("  none\n"))

        var report = StatusReport(time: now, pipelines: pipelines)
        #expect(Baton.Status.render(report, schedulerAnswered: true).contains("score 12/64"))
        report.pipelines = nil
        #expect(!Baton.Status.render(report, schedulerAnswered: true).contains("PIPELINES"), "a logger without pipelines")
    }

    func part(stage: StageSpec?, index: Int?, part: Int, parts: Int, state: DeliveryState) -> AlgorithmReply.Part {
        var header = ResultHeader(runID: run, job: "scores", logicalTime: now, part: part, parts: parts, size: 10, sha256: "ab", attempt: 2)
        header.stage = stage
        header.stageIndex = index
        header.stages = stage == nil ? nil : 3
        return AlgorithmReply.Part(header: header, path: "/raw/x", state: state, failures: 1, lastError: nil, cause: nil)
    }

    /// A pipeline's task shows its stage and part of parts; a task of a job without stages keeps the line it
    /// always had (scripts grep it).
    @Test func resultsShowTheStageAndPartOfEachTask() throws {
        let staged = part(stage: StageSpec(name: "score", command: ["sh"]), index: 0, part: 3, parts: 64, state: .acked)
        #expect(Baton.Results.line(staged) == "\(run)  stage score  part 3/64  acked  failures=1")
        let plain = part(stage: nil, index: nil, part: 0, parts: 1, state: .dead)
        #expect(Baton.Results.line(plain) == "\(run) part 0  dead  failures=1")

        let object = Baton.Results.object(staged)
        #expect(object["stage"] as? String == "score")
        #expect(object["stageIndex"] as? Int == 0)
        #expect(object["part"] as? Int == 3)
        #expect(object["parts"] as? Int == 64)
        let merge = Baton.Results.object(
            part(stage: StageSpec(name: "total", mode: .merge, command: ["sh"]), index: 1, part: 0, parts: 1, state: .pending)
        )
        #expect(merge["stageIndex"] as? Int == 1)
        #expect(Baton.Results.object(plain)["stage"] as? String == "store")
        #expect(Baton.Results.object(plain)["stageIndex"] as? Int == 0)
        _ = try JSONSerialization.data(withJSONObject: object)
    }

    /// `baton watch` draws a bar per stage from the hub's events, and drops the run when its pipeline finishes.
    @Test func watchDrawsABarPerStage() {
        func event(_ type: String, part: Int? = nil, _ attributes: [String: String]) -> StatusEvent {
            StatusEvent(
                type: type,
                source: "algorithm",
                instance: "algorithm",
                time: now,
                job: "scores",
                run: run,
                part: part,
                attributes: attributes
            )
        }
        var board = ProgressBoard()
        board.width = 400
        let parts = 4
        let announced = board.apply(event(EventType.stageReady, ["stage": "score", "stage_index": "0", "parts": "\(parts)"]))
        #expect(announced)
        #expect(board.line == "\(run) score [----------] 0/\(parts)")
        for index in 0..<parts / 2 {
            let changed = board.apply(event(EventType.taskSucceeded, part: index, ["stage_index": "0"]))
            #expect(changed)
        }
        #expect(board.line == "\(run) score [#####-----] \(parts / 2)/\(parts)")
        for index in parts / 2..<parts { board.apply(event(EventType.taskSucceeded, part: index, ["stage_index": "0"])) }
        board.apply(event(EventType.stageReady, ["stage": "total", "stage_index": "1", "parts": "1"]))
        #expect(board.line == "\(run) score [##########] \(parts)/\(parts) total [----------] 0/1")
        let finished = board.apply(event(EventType.pipelineFinished, ["stages": "2"]))
        #expect(finished)
        #expect(board.line.isEmpty)
    }
}
