import AlgorithmService
import Foundation
import Messaging
import MetricsHTTP
import TestSupport
import Testing
import ZMQ

/// `baton_tasks_total{job,stage,outcome}`: the hub counts each task it settles or fails, by its stage's name.
struct TaskTallyTests {
    static let job = "scores"
    static let runID = "scores@1970-01-01T00:01:00.000Z"

    /// A run of job `scores` through a pipeline whose first stage is `score`, finished with `parts` parts,
    /// each task of `score` sent to a processor.
    static func runFinished(parts: Int, outbox: Outbox, scratch: Scratch) async throws {
        let ledger = RunLedger(outbox: outbox)
        let request = RunRequest(
            runID: runID,
            job: job,
            logicalTime: Date(timeIntervalSince1970: 60),
            firedAt: Date(timeIntervalSince1970: 60),
            trigger: .schedule
        )
        _ = try await ledger.accept(request, pipeline: Pipeline(stages: [StageSpec(name: "score", command: ["sh", "-c", "cat"])]))
        try await ledger.markRunning(runID)
        let stored = try (0..<parts).map { part in
            let data = Data("part \(part)\n".utf8)
            let path = scratch.directory + "/part-\(part)"
            try data.write(to: URL(fileURLWithPath: path))
            return Outbox.StoredPart(path: path, digest: PartDigest(size: data.count, sha256: SHA256.hex(of: data)))
        }
        try await ledger.finish(runID, parts: stored)
        for part in 0..<parts {
            try await outbox.markSent(runID: runID, stage: 0, part: part, leaseDeadline: Date().addingTimeInterval(30))
        }
    }

    static func count(_ metrics: ServiceMetrics, _ outcome: String) -> Double {
        RawHTTP.sample(metrics.exposition(), #"baton_tasks_total{job="\#(job)",stage="score",outcome="\#(outcome)"}"#) ?? 0
    }

    /// Two parts acknowledged, one failing until dead (two attempts), one refused as a conflict: the counts
    /// follow from what the processors said, each under the stage's name.
    @Test(.timeLimit(.minutes(5)))
    func tasksAreCountedPerStageAndOutcome() async throws {
        let metrics = ServiceMetrics.prometheus()
        try await AckReceiverTests.withReceiver(metrics: metrics) { outbox, processor, bus, scratch in
            let parts = 4
            try await Self.runFinished(parts: parts, outbox: outbox, scratch: scratch)
            for part in [0, 1] {
                try await processor.send(
                    Wire.encode(Acknowledgement(runID: Self.runID, part: part, processor: "p1", duplicate: false, stage: 0))
                )
            }
            try await processor.send(Wire.encode(FailureReport(runID: Self.runID, part: 2, processor: "p1", reason: "boom", stage: 0)))
            let retried = try await bus.next(EventType.taskFailed)
            #expect(retried.attributes?["dead"] == "false" && retried.part == 2)
            try await outbox.markSent(runID: Self.runID, stage: 0, part: 2, leaseDeadline: Date().addingTimeInterval(30))
            try await processor.send(Wire.encode(FailureReport(runID: Self.runID, part: 2, processor: "p1", reason: "boom", stage: 0)))
            try await processor.send(
                Wire.encode(FailureReport(runID: Self.runID, part: 3, processor: "p1", reason: "other sha", conflict: true, stage: 0))
            )
            // Both dead letters are announced as failed tasks of stage 0, for the status board.
            var dead: [Int] = []
            for _ in 0..<2 {
                let event = try await bus.next(EventType.taskFailed)
                #expect(event.attributes?["dead"] == "true" && event.attributes?["stage_index"] == "0")
                dead += event.part.map { [$0] } ?? []
            }
            #expect(dead.sorted() == [2, 3])
            let counted = try await Wait.until(timeout: .seconds(30)) {
                Self.count(metrics, "succeeded") == 2 && Self.count(metrics, "retry") == 1 && Self.count(metrics, "dead") == 2
            }
            #expect(counted, "\(metrics.exposition())")
        }
    }
}
