import Foundation
import LoggerService
import Messaging
import Testing

struct PipelineBoardTests {
    let start = Date(timeIntervalSince1970: 1_800_000_000)
    let run = "scores@2027-01-15T10:00:00.000Z"

    func event(
        _ type: String,
        run: String? = nil,
        part: Int? = nil,
        at offset: Double = 0,
        _ attributes: [String: String] = [:]
    ) -> StatusEvent {
        let id = run ?? self.run
        return StatusEvent(
            type: type,
            source: "algorithm",
            instance: "algorithm",
            seq: 1,
            time: start.addingTimeInterval(offset),
            job: RunID.job(of: id),
            run: id,
            part: part,
            attributes: attributes
        )
    }

    func ready(_ name: String, _ index: Int, parts: Int, run: String? = nil, at offset: Double = 0) -> StatusEvent {
        event(EventType.stageReady, run: run, at: offset, ["stage": name, "stage_index": "\(index)", "parts": "\(parts)"])
    }

    func succeeded(_ index: Int, part: Int) -> StatusEvent {
        event(EventType.taskSucceeded, part: part, ["stage_index": "\(index)", "processor": "p1", "outputs": "1"])
    }

    func failed(_ index: Int, part: Int, dead: Bool) -> StatusEvent {
        event(EventType.taskFailed, part: part, ["stage_index": "\(index)", "processor": "p1", "dead": "\(dead)"])
    }

    func stages(_ board: PipelineBoard) -> [StatusReport.StageProgress] {
        board.report().first { $0.run == run }?.stages ?? []
    }

    /// A pipeline of a per-part stage over `parts` parts, a merge and the store, driven through the events
    /// the hub publishes: every stage shows done of total as the tasks settle, and the run leaves at the end.
    @Test(arguments: [1, 4, 64])
    func stagesCountTheirPartsUntilThePipelineFinishes(parts: Int) {
        var board = PipelineBoard()
        board.apply(ready("score", 0, parts: parts))
        #expect(stages(board) == [.init(index: 0, name: "score", parts: parts, done: 0)])
        for part in 0..<parts - 1 { board.apply(succeeded(0, part: part)) }
        #expect(stages(board).first?.done == parts - 1)
        #expect(stages(board).first?.parts == parts)
        board.apply(succeeded(0, part: parts - 1))
        board.apply(event(EventType.stageDone, ["stage": "score", "stage_index": "0"]))
        board.apply(ready("total", 1, parts: 1))
        #expect(stages(board).map(\.name) == ["score", "total"])
        #expect(stages(board).map(\.done) == [parts, 0])
        board.apply(succeeded(1, part: 0))
        board.apply(event(EventType.stageDone, ["stage": "total", "stage_index": "1"]))
        board.apply(ready("store", 2, parts: 1))
        #expect(stages(board).map { "\($0.name) \($0.done)/\($0.parts ?? -1)" } == ["score \(parts)/\(parts)", "total 1/1", "store 0/1"])
        board.apply(succeeded(2, part: 0))
        board.apply(event(EventType.pipelineFinished, ["stages": "3"]))
        #expect(board.report().isEmpty)
    }

    /// A retried part counts a failure, a dead-lettered one a dead part until a replay brings it back.
    @Test func failuresAndDeadLettersAreCountedPerStage() {
        var board = PipelineBoard()
        board.apply(ready("score", 0, parts: 4))
        board.apply(succeeded(0, part: 0))
        board.apply(failed(0, part: 2, dead: false))
        board.apply(failed(0, part: 2, dead: false))
        board.apply(failed(0, part: 2, dead: true))
        board.apply(failed(0, part: 2, dead: true))
        #expect(stages(board) == [.init(index: 0, name: "score", parts: 4, done: 1, failed: 2, dead: 1)])
        // `baton replay --dead`: the part comes back and succeeds.
        board.apply(succeeded(0, part: 2))
        #expect(stages(board) == [.init(index: 0, name: "score", parts: 4, done: 2, failed: 2, dead: 0)])
    }

    /// `baton replay RUN --from-stage`: the stage made ready again starts over, and the later ones go.
    @Test func aStageMadeReadyAgainStartsOver() {
        var board = PipelineBoard()
        board.apply(ready("score", 0, parts: 2))
        board.apply(succeeded(0, part: 0))
        board.apply(succeeded(0, part: 1))
        board.apply(ready("total", 1, parts: 1))
        board.apply(ready("score", 0, parts: 2, at: 10))
        #expect(stages(board) == [.init(index: 0, name: "score", parts: 2, done: 0)])
    }

    /// Task events of a run never announced (its pipeline finished, then one task was replayed) do not make
    /// a run that would stay in flight forever; a run that failed or was cancelled leaves.
    @Test func onlyAnnouncedRunsAreInFlightUntilTheyEnd() {
        var board = PipelineBoard()
        board.apply(succeeded(0, part: 0))
        board.apply(failed(0, part: 0, dead: true))
        #expect(board.report().isEmpty)
        board.apply(ready("score", 0, parts: 2))
        board.apply(event(EventType.runFailed, ["retry": "true"]))
        #expect(board.count == 1)
        board.apply(event(EventType.runFailed, ["reason": "gave up"]))
        #expect(board.count == 0)
        board.apply(ready("score", 0, parts: 2))
        board.apply(event(EventType.runCancelled))
        #expect(board.count == 0)
    }

    /// The hub's hand-off can publish a run's `stage.ready` just after a fast processor's acknowledgement made its
    /// `pipeline.finished`: that late ready does not bring the run back as in flight for good; a replay asked for
    /// later does.
    @Test func aLateReadyAfterTheFinishIsNotARunInFlight() {
        var board = PipelineBoard()
        board.apply(event(EventType.stageDone, at: 1.003, ["stage": "store", "stage_index": "0"]))
        board.apply(event(EventType.pipelineFinished, at: 1.003, ["stages": "1"]))
        board.apply(ready("store", 0, parts: 1, at: 1.004))
        #expect(board.count == 0)
        board.apply(ready("store", 0, parts: 1, at: 60))
        #expect(board.report().map(\.run) == [run])
        board.apply(event(EventType.pipelineFinished, at: 61, ["stages": "1"]))
        #expect(board.count == 0)
    }

    /// A lost `stage.ready`: the stage shows with what is known, and its `stage.done` completes it.
    @Test func aStageWhoseAnnouncementWasLostStillShows() {
        var board = PipelineBoard()
        board.apply(ready("score", 0, parts: 3))
        board.apply(succeeded(1, part: 0))
        #expect(stages(board).map(\.index) == [0, 1])
        #expect(stages(board).last?.parts == nil)
        #expect(stages(board).last?.done == 1)
        board.apply(event(EventType.stageDone, ["stage": "total", "stage_index": "1"]))
        #expect(stages(board).last?.parts == 1)
    }

    /// Memory is bounded: at most ``PipelineBoard/runLimit`` runs (those longest without news go first), at
    /// most ``PipelineBoard/stageLimit`` stages per run, and nonsense stage numbers are refused.
    @Test func theBoardIsBounded() {
        var board = PipelineBoard()
        let extra = 10
        for index in 0..<PipelineBoard.runLimit + extra {
            board.apply(ready("score", 0, parts: 1, run: "job@\(index)", at: Double(index)))
        }
        #expect(board.count == PipelineBoard.runLimit)
        let kept = Set(board.report().map(\.run))
        #expect(!kept.contains("job@0"))
        #expect(!kept.contains("job@\(extra - 1)"))
        #expect(kept.contains("job@\(extra)"))
        #expect(kept.contains("job@\(PipelineBoard.runLimit + extra - 1)"))

        var one = PipelineBoard()
        let huge = one.apply(ready("huge", 1_000_000_000, parts: 1))
        let negative = one.apply(ready("negative", -1, parts: 1))
        #expect(!huge && !negative)
        for index in 0..<PipelineBoard.stageLimit + 5 { one.apply(ready("s\(index)", index, parts: 1)) }
        #expect(stages(one).count == PipelineBoard.stageLimit)
    }

    /// The logger's board carries the pipelines in its report, and they survive a save and load; a board
    /// saved before pipelines existed still loads.
    @Test func theStatusBoardReportsPipelinesAndKeepsThemAcrossASave() throws {
        var board = StatusBoard()
        board.apply(event(EventType.runFinished, ["duration_ms": "10"]), received: start)
        board.apply(ready("score", 0, parts: 4), received: start)
        board.apply(succeeded(0, part: 1), received: start)
        let report = board.report(now: start)
        #expect(report.runs.isEmpty, "the algorithm finished the run")
        #expect(report.pipelines?.map(\.run) == [run])
        #expect(report.pipelines?.first?.stages == [.init(index: 0, name: "score", parts: 4, done: 1)])
        let saved = try Timestamp.encoder().encode(board)
        let loaded = try Timestamp.decoder().decode(StatusBoard.self, from: saved)
        #expect(loaded == board)
        let old = try Timestamp.decoder().decode(
            StatusBoard.self,
            from: Data(#"{"services":{},"inFlight":{},"recent":[],"jobs":{},"errors":[],"lost":{}}"#.utf8)
        )
        #expect(old.report(now: start).pipelines == nil)
    }
}
