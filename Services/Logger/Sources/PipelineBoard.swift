public import Foundation
public import Messaging

/// Runs whose pipeline is in flight, as the bus tells it: each run's stages with their parts done of total,
/// failed attempts and dead letters. Part of the logger's ``StatusBoard``; `baton watch` keeps one too, for
/// its bars.
///
/// A run enters with its first `stage.ready` and leaves with `pipeline.finished` (or a final `run.failed` or
/// `run.cancelled`). Task events of a run it does not know (its `stage.ready` was lost, or a finished run's
/// tasks replayed) are ignored rather than kept as a run that would never finish.
///
/// Pure: events come in with their own times, so tests feed it made-up events.
public struct PipelineBoard: Codable, Sendable, Equatable {
    /// How many runs are tracked; beyond it the one longest without news is dropped.
    public static let runLimit = 1000
    /// How many stages of one run are tracked (a pipeline longer than this shows its first ones).
    public static let stageLimit = 64
    /// How many dead parts of one stage are remembered by number (to see them come back after a replay).
    public static let deadPartLimit = 10_000

    struct Stage: Codable, Sendable, Equatable {
        var index: Int
        var name: String
        /// nil when its `stage.ready` was lost.
        var parts: Int?
        var done: Int = 0
        var failed: Int = 0
        /// Parts dead-lettered and not done since, by number.
        var dead: [Int] = []
    }

    struct Run: Codable, Sendable, Equatable {
        var run: String
        var job: String
        var since: Date
        var updated: Date
        var stages: [Stage] = []
    }

    private var runs: [String: Run] = [:]
    /// Runs that left the board, with when: a `stage.ready` published by the hub's hand-off can reach the bus just
    /// after the `pipeline.finished` of a fast processor's acknowledgement; within ``lateReady`` of the finish it
    /// is that, not a replay, and the run does not come back as in flight for good. The last 1,000 to 2,000 runs;
    /// absent from a board saved before it was kept.
    private var left: [String: Date]?
    /// How long after a run left a `stage.ready` for it is taken as late rather than as a replay (which a person
    /// or a script asks for, later than this).
    public static let lateReady: TimeInterval = 2

    /// An empty board.
    public init() {}

    /// Folds one event in; returns whether the board changed.
    @discardableResult
    public mutating func apply(_ event: StatusEvent) -> Bool {
        guard let id = event.run else { return false }
        let attributes = event.attributes ?? [:]
        let index = attributes["stage_index"].flatMap(Int.init) ?? 0
        switch event.type {
        case EventType.stageReady:
            guard (0..<Self.stageLimit).contains(index) else { return false }
            if runs[id] == nil, let leftAt = left?[id], event.time.timeIntervalSince(leftAt) < Self.lateReady { return false }
            var run = runs[id] ?? Run(run: id, job: event.job ?? RunID.job(of: id), since: event.time, updated: event.time)
            // A stage made ready again is a rerun from it (`baton replay --from-stage`): it and the later ones start over.
            run.stages.removeAll { $0.index >= index }
            let parts = attributes["parts"].flatMap(Int.init).map { max($0, 0) }
            run.stages.append(Stage(index: index, name: attributes["stage"] ?? "stage \(index)", parts: parts))
            run.updated = max(run.updated, event.time)
            runs[id] = run
            evictBeyondLimit()
            return true
        case EventType.taskSucceeded, EventType.taskFailed, EventType.stageDone, EventType.batchAcknowledged:
            guard var run = runs[id], (0..<Self.stageLimit).contains(index) else { return false }
            let position: Int
            if let found = run.stages.firstIndex(where: { $0.index == index }) {
                position = found
            } else {
                run.stages.append(Stage(index: index, name: attributes["stage"] ?? "stage \(index)", parts: nil))
                run.stages.sort { $0.index < $1.index }
                position = run.stages.firstIndex { $0.index == index } ?? run.stages.count - 1
            }
            var stage = run.stages[position]
            switch event.type {
            case EventType.stageDone:
                // Every task succeeded, whatever task events were lost.
                if let parts = stage.parts { stage.done = max(stage.done, parts) } else { stage.parts = stage.done }
                stage.dead = []
            case EventType.taskSucceeded:
                stage.done += 1
                if let part = event.part { stage.dead.removeAll { $0 == part } }
                if let parts = stage.parts { stage.done = min(stage.done, parts) }
            case EventType.batchAcknowledged:
                // Several small tasks settled at once (`tasks` of them, parts `part` to `last_part`).
                stage.done += min(max(attributes["tasks"].flatMap(Int.init) ?? 1, 1), 1_000_000)
                if let first = event.part, let last = attributes["last_part"].flatMap(Int.init), first <= last {
                    stage.dead.removeAll { (first...last).contains($0) }
                }
                if let parts = stage.parts { stage.done = min(stage.done, parts) }
            default:
                if attributes["dead"] == "true" {
                    if let part = event.part, !stage.dead.contains(part), stage.dead.count < Self.deadPartLimit {
                        stage.dead.append(part)
                    }
                } else {
                    stage.failed += 1
                    // Failing again after a replay: it is no longer dead.
                    if let part = event.part { stage.dead.removeAll { $0 == part } }
                }
            }
            run.stages[position] = stage
            run.updated = max(run.updated, event.time)
            runs[id] = run
            return true
        case EventType.pipelineFinished, EventType.runCancelled:
            return leave(id, at: event.time)
        case EventType.runFailed where attributes["retry"] != "true":
            return leave(id, at: event.time)
        default:
            return false
        }
    }

    /// Takes a run off the board and remembers when (see ``left``).
    private mutating func leave(_ id: String, at time: Date) -> Bool {
        var left = self.left ?? [:]
        left[id] = time
        if left.count > 2 * Self.runLimit {
            // The newest half kept, at one sort per thousand runs.
            let newest = left.sorted { ($0.value, $0.key) > ($1.value, $1.key) }.prefix(Self.runLimit)
            left = Dictionary(uniqueKeysWithValues: newest.map { ($0.key, $0.value) })
        }
        self.left = left
        return runs.removeValue(forKey: id) != nil
    }

    private mutating func evictBeyondLimit() {
        while runs.count > Self.runLimit, let stalest = runs.values.min(by: { ($0.updated, $0.run) < ($1.updated, $1.run) }) {
            runs[stalest.run] = nil
        }
    }

    /// How many runs are in flight.
    public var count: Int { runs.count }

    /// The runs in flight, oldest first, with their stages in order.
    public func report() -> [StatusReport.PipelineRun] {
        runs.values
            .sorted { ($0.since, $0.run) < ($1.since, $1.run) }
            .map { run in
                StatusReport.PipelineRun(
                    run: run.run,
                    job: run.job,
                    since: run.since,
                    updated: run.updated,
                    stages: run.stages.map {
                        StatusReport.StageProgress(
                            index: $0.index,
                            name: $0.name,
                            parts: $0.parts,
                            done: $0.done,
                            failed: $0.failed,
                            dead: $0.dead.count
                        )
                    }
                )
            }
    }
}
