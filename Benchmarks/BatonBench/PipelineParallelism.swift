import Foundation
import Glibc
import Messaging

extension Scenarios {
    // MARK: 7. Pipeline parallelism

    struct PipelineParallelism: Codable {
        var processors: Int
        var parts: Int
        var partSeconds: Double
        /// From the run's hand-off (`run.finished`) to the merge stage done (`stage.done` of `total`).
        var secondsToMerge: Double?
        /// From the hand-off to the stored merged row (`pipeline.finished`).
        var secondsToStored: Double?
        /// parts × part time / processors, plus one part's time (the merge).
        var idealSeconds: Double
        var ratio: Double? { secondsToMerge.map { $0 / idealSeconds } }
        /// How many of the per-part tasks each processor ran.
        var tasksPerProcessor: [String: Int]
        /// Per-part tasks started more than once: re-sent when their lease ran out while they waited, unstarted,
        /// in a busy processor's socket buffers (`result.redelivered`), and then run again.
        var startedAgain: Int
        /// From the merge's task becoming due (`stage.ready` of `total`) to its `stage.done`.
        var mergeSeconds: Double?

        enum CodingKeys: String, CodingKey {
            case processors, parts, partSeconds, secondsToMerge, secondsToStored, idealSeconds, ratio, tasksPerProcessor, startedAgain,
                mergeSeconds
        }
        init(
            processors: Int,
            parts: Int,
            partSeconds: Double,
            secondsToMerge: Double?,
            secondsToStored: Double?,
            tasksPerProcessor: [String: Int],
            startedAgain: Int,
            mergeSeconds: Double?
        ) {
            self.processors = processors
            self.parts = parts
            self.partSeconds = partSeconds
            self.secondsToMerge = secondsToMerge
            self.secondsToStored = secondsToStored
            idealSeconds = Double(parts) * partSeconds / Double(processors) + partSeconds
            self.tasksPerProcessor = tasksPerProcessor
            self.startedAgain = startedAgain
            self.mergeSeconds = mergeSeconds
        }
        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            processors = try container.decode(Int.self, forKey: .processors)
            parts = try container.decode(Int.self, forKey: .parts)
            partSeconds = try container.decode(Double.self, forKey: .partSeconds)
            secondsToMerge = try container.decodeIfPresent(Double.self, forKey: .secondsToMerge)
            secondsToStored = try container.decodeIfPresent(Double.self, forKey: .secondsToStored)
            idealSeconds = try container.decode(Double.self, forKey: .idealSeconds)
            tasksPerProcessor = try container.decode([String: Int].self, forKey: .tasksPerProcessor)
            startedAgain = try container.decode(Int.self, forKey: .startedAgain)
            mergeSeconds = try container.decodeIfPresent(Double.self, forKey: .mergeSeconds)
        }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(processors, forKey: .processors)
            try container.encode(parts, forKey: .parts)
            try container.encode(partSeconds, forKey: .partSeconds)
            try container.encodeIfPresent(secondsToMerge, forKey: .secondsToMerge)
            try container.encodeIfPresent(secondsToStored, forKey: .secondsToStored)
            try container.encode(idealSeconds, forKey: .idealSeconds)
            try container.encodeIfPresent(ratio, forKey: .ratio)
            try container.encode(tasksPerProcessor, forKey: .tasksPerProcessor)
            try container.encode(startedAgain, forKey: .startedAgain)
            try container.encodeIfPresent(mergeSeconds, forKey: .mergeSeconds)
        }
    }

    /// One run of a job whose algorithm writes `parts` parts, a per-part stage (`score`) that sleeps
    /// `partSeconds` and copies its input, a merge (`total`, a copy) and the built-in store, on `processors`
    /// real `baton-processor` processes. Timed from the `run.finished` event (the hand-off) to the merge's
    /// `stage.done`; both come from the algorithm service's clock.
    func pipelineParallelism(processors: Int, parts: Int, partSeconds: Double, port: Int) throws -> PipelineParallelism {
        let fireAt = Timestamp.format(Date().addingTimeInterval(3))
        let stack = try BenchStack(
            root: root,
            name: "pipeline-\(processors)",
            basePort: port,
            yaml: """
                processor:
                  lease: 30s
                jobs:
                  - name: fan
                    at: \(fireAt)
                    command: [sh, -c, 'for i in $(seq 1000 \(999 + parts)); do echo "{\\"part\\":$i}" > "$BATON_OUTPUT_DIR/$i"; done']
                    stages:
                      - name: score
                        command: [sh, -c, 'sleep \(partSeconds); cat > "$BATON_OUTPUT"']
                      - name: total
                        mode: merge
                        command: [sh, -c, 'cat > "$BATON_OUTPUT"']

                """
        )
        defer { stack.stop() }
        try stack.start("logger", "baton-logger")
        usleep(300_000)
        for index in 1...processors { try stack.start("processor-\(index)", "baton-processor", ["--name", "processor-\(index)"]) }
        try stack.start("algorithm", "baton-algorithm")
        try stack.start("scheduler", "baton-scheduler")
        _ = stack.wait(timeout: 60 + Double(parts) * partSeconds * 2) { !stack.events(EventType.pipelineFinished).isEmpty }
        usleep(500_000)  // the last events reach the log
        let handOff = stack.events(EventType.runFinished).first?.time
        let merged = stack.events(EventType.stageDone).first { $0.attributes?["stage"] == "total" }?.time
        let stored = stack.events(EventType.pipelineFinished).first?.time
        // Per-part tasks: who ran them, and how many were run again after their lease ran out unstarted.
        let started = stack.events(EventType.taskStarted).filter { $0.attributes?["stage"] == "score" }
        let index = started.first?.attributes?["stage_index"]
        var tasks: [String: Int] = [:]
        for event in stack.events(EventType.taskSucceeded) where event.attributes?["stage_index"] == index {
            tasks[event.attributes?["processor"] ?? "?", default: 0] += 1
        }
        let due = stack.events(EventType.stageReady).first { $0.attributes?["stage"] == "total" }?.time
        return PipelineParallelism(
            processors: processors,
            parts: parts,
            partSeconds: partSeconds,
            secondsToMerge: handOff.flatMap { start in merged.map { $0.timeIntervalSince(start) } },
            secondsToStored: handOff.flatMap { start in stored.map { $0.timeIntervalSince(start) } },
            tasksPerProcessor: tasks,
            startedAgain: started.count - Set(started.compactMap(\.part)).count,
            mergeSeconds: due.flatMap { start in merged.map { $0.timeIntervalSince(start) } }
        )
    }
}
