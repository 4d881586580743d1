import Foundation
import Glibc
import Messaging
import Testing

/// The pipeline's promises, from the README ("Pipelines: stages, parts, merge") and docs/CONFIGURATION.md
/// (`jobs[].stages[]`), checked from outside: real services, the example's Python scripts, and an oracle that
/// computes each run's summary by calling the same functions directly.
@Suite(.serialized)
struct PipelineTests {
    /// 64 parts go through a per-part stage and a merge; the one stored row is, byte for byte, the summary computed
    /// directly from the algorithm's deterministic output.
    /// The lease is long: the hub hands all 64 tasks out at once, and on a loaded machine the last ones a processor
    /// holds unstarted would outlast the default 30 s lease and be re-sent, which runs their command again (stage
    /// commands are at-least-once; README, "Pipelines"). That is not what this test is about.
    @Test(.timeLimit(.minutes(3)))
    func sixtyFourPartsAreScoredMergedAndStoredExactly() async throws {
        try await TestStack.with("pipe64", yaml: "") { stack in
            _ = try Pipeline.installTracer(in: stack)
            try stack.rewrite(
                yaml: """
                    processor:
                      retries: 3
                      backoff: 100ms
                      lease: 5m
                    jobs:
                      - name: scores
                        at: 2099-01-01T00:00:00Z
                        command: [python3, examples/pipeline/algorithm.py]
                        env: {PIPELINE_PARTS: "64", PIPELINE_ROWS: "4"}
                        timeout: 30s
                        stages:

                    """ + Pipeline.stage("score", stack: stack) + Pipeline.merge("summary", after: "score", stack: stack)
            )
            try stack.startServices(processors: 2)
            let run = try await stack.trigger("scores")
            let stored = try await stack.waitUntil(timeout: .seconds(120)) { !Pipeline.stored(run, stack: stack).isEmpty }
            try #require(
                stored,
                "nothing stored for \(run); processor: \(stack.stderr("processor-1")) algorithm: \(stack.stderr("algorithm"))"
            )

            let expected = try await Pipeline.expected(run: run, parts: 64, rows: 4, stages: ["score"], stack: stack)
            let rows = Pipeline.stored(run, stack: stack)
            #expect(Array(rows.keys) == [0], "the merge writes one part: \(rows.keys.sorted())")
            let row = try #require(rows[0] ?? nil, "the stored rows are not the part's size and sha256")
            #expect(row == expected, "stored \(String(decoding: row, as: UTF8.self))")
            // Checked without the example's code too: every part, every row, in part order.
            let summary = try Pipeline.fields(row)
            #expect(summary["parts"] as? Int == 64)
            #expect(summary["rows"] as? Int == 256)
            #expect(summary["in_order"] as? Bool == true)
            #expect(summary["run"] as? String == run)

            let score = Pipeline.log("score", stack: stack)
            #expect(score.filter { $0.word == "start" }.map(\.part).sorted() == Array(0..<64), "each part scored once")
            #expect(Pipeline.log("summary", stack: stack).filter { $0.word == "start" }.map(\.count) == [64])
        }
    }

    /// A part whose stage fails twice is retried alone; the merge waits for it; no other part runs again.
    @Test(.timeLimit(.minutes(2)))
    func aFailingPartIsRetriedAloneAndTheMergeWaitsForIt() async throws {
        try await TestStack.with("pipefail", yaml: "") { stack in
            _ = try Pipeline.installTracer(in: stack)
            try stack.rewrite(
                yaml: """
                    processor:
                      retries: 3
                      backoff: 100ms
                    jobs:
                      - name: flaky
                        at: 2099-01-01T00:00:00Z
                        command: [python3, examples/pipeline/algorithm.py]
                        env: {PIPELINE_PARTS: "8", PIPELINE_ROWS: "5"}
                        timeout: 30s
                        stages:

                    """ + Pipeline.stage("score", stack: stack, env: ["FAIL_PART": "3", "FAIL_TIMES": "2"])
                        + Pipeline.merge("summary", after: "score", stack: stack)
            )
            try stack.startServices(processors: 2)
            let run = try await stack.trigger("flaky")
            // While part 3 has not succeeded, the merge must not have started: checked at every poll.
            var mergedEarly = false
            let stored = try await stack.waitUntil(timeout: .seconds(120)) {
                let partDone = Pipeline.log("score", stack: stack).contains { $0.word == "done" && $0.part == 3 }
                if !partDone, !Pipeline.log("summary", stack: stack).isEmpty { mergedEarly = true }
                return !Pipeline.stored(run, stack: stack).isEmpty
            }
            try #require(stored, "nothing stored for \(run); processor: \(stack.stderr("processor-1"))")
            #expect(!mergedEarly, "the merge ran before part 3 succeeded")

            let score = Pipeline.log("score", stack: stack)
            for part in 0..<8 {
                let words = score.filter { $0.part == part && $0.word != "start" }.map(\.word)
                #expect(words == (part == 3 ? ["fail", "fail", "done"] : ["done"]), "part \(part): \(words)")
            }
            let merges = Pipeline.log("summary", stack: stack).filter { $0.word == "start" }
            #expect(merges.count == 1, "the merge ran \(merges.count) times")
            #expect(merges.first?.count == 8, "the merge started when \(merges.first?.count ?? 0) of 8 parts were done")
            let expected = try await Pipeline.expected(run: run, parts: 8, rows: 5, stages: ["score"], stack: stack)
            #expect(Pipeline.stored(run, stack: stack) == [0: expected])
        }
    }

    /// Adding a stage is a configuration edit and a restart: a new run goes through the new stage, and a run that
    /// was in flight (one part held in its first stage) finishes with the pipeline it started with.
    @Test(.timeLimit(.minutes(2)))
    func anAddedStageAppliesToNewRunsAndNotToRunsInFlight() async throws {
        try await TestStack.with("pipeedit", yaml: "") { stack in
            _ = try Pipeline.installTracer(in: stack)
            // A short lease: a part pushed to the processor that is busy with the held part waits in its one-message
            // queue until the lease runs out and is then sent to the idle one (docs/ARCHITECTURE.md, leases).
            let head = """
                processor:
                  lease: 2s
                jobs:
                  - name: grow
                    at: 2099-01-01T00:00:00Z
                    overlap: allow
                    command: [python3, examples/pipeline/algorithm.py]
                    env: {PIPELINE_PARTS: "4", PIPELINE_ROWS: "3"}
                    timeout: 30s
                    stages:

                """
            let first = Pipeline.stage("a", stack: stack, env: ["HOLD_PART": "0"])
            try stack.rewrite(yaml: head + first + Pipeline.merge("summary", after: "a", stack: stack))
            let hold = stack.directory + "/state/hold"
            _ = FileManager.default.createFile(atPath: hold, contents: nil)
            try stack.startServices(processors: 2)

            let old = try await stack.trigger("grow")
            let inFlight = try await stack.waitUntil(timeout: .seconds(30)) {
                let lines = Pipeline.log("a", stack: stack).filter { $0.run == old }
                return lines.contains { $0.word == "held" && $0.part == 0 }
                    && Set(lines.filter { $0.word == "done" }.map(\.part)) == [1, 2, 3]
            }
            try #require(inFlight, "run \(old) is not held in stage a: \(Pipeline.log("a", stack: stack))")

            try stack.rewrite(
                yaml: head + first + Pipeline.stage("b", stack: stack) + Pipeline.merge("summary", after: "b", stack: stack)
            )
            for name in ["algorithm", "processor-1", "processor-2"] { try await stack.terminate(name) }
            try stack.start("algorithm", "baton-algorithm")
            for index in 1...2 { try stack.start("processor-\(index)", "baton-processor", ["--name", "processor-\(index)"]) }

            let new = try await stack.trigger("grow")
            let newStored = try await stack.waitUntil(timeout: .seconds(40)) { !Pipeline.stored(new, stack: stack).isEmpty }
            try #require(newStored, "nothing stored for \(new); processor: \(stack.stderr("processor-1"))")
            #expect(Pipeline.stored(old, stack: stack).isEmpty, "the held run \(old) was stored while held")
            #expect(Set(Pipeline.log("b", stack: stack).filter { $0.run == new && $0.word == "done" }.map(\.part)) == [0, 1, 2, 3])

            try FileManager.default.removeItem(atPath: hold)
            let oldStored = try await stack.waitUntil(timeout: .seconds(30)) { !Pipeline.stored(old, stack: stack).isEmpty }
            try #require(oldStored, "nothing stored for \(old) once released; processor: \(stack.stderr("processor-1"))")

            #expect(!Pipeline.log("b", stack: stack).contains { $0.run == old }, "the run in flight went through the new stage")
            let merges = Pipeline.log("summary", stack: stack).filter { $0.word == "start" }
            #expect(merges.contains { $0.run == old } && merges.contains { $0.run == new })
            // A task pushed to the processor busy with the held part is re-sent to the idle one after its lease, and the
            // busy one may still run its copy once it is free: stage commands run at least once (README, "Pipelines";
            // a copy coming back to the processor that did the task is answered without running, see
            // staleDeliveryOfADoneTaskIsNotRunAgain). What is kept is once: the stored rows below.
            #expect(merges.filter { $0.run == old }.count >= 1)
            #expect(merges.filter { $0.run == new }.count >= 1)
            let expectedOld = try await Pipeline.expected(run: old, parts: 4, rows: 3, stages: ["a"], stack: stack)
            let expectedNew = try await Pipeline.expected(run: new, parts: 4, rows: 3, stages: ["a", "b"], stack: stack)
            #expect(Pipeline.stored(old, stack: stack) == [0: expectedOld])
            #expect(Pipeline.stored(new, stack: stack) == [0: expectedNew])
        }
    }

    /// A task waits at the hub, not in a busy processor's queue: with one processor held on part 0 for several
    /// leases, part 1 is not sent to it (so its lease cannot run out and it is never re-sent), and it runs once,
    /// when the processor asks for it.
    @Test(.timeLimit(.minutes(2)))
    func aTaskWaitsAtTheHubWhileTheProcessorIsBusy() async throws {
        try await TestStack.with("pipestale", yaml: "") { stack in
            _ = try Pipeline.installTracer(in: stack)
            try stack.rewrite(
                yaml: """
                    processor:
                      lease: 1s
                    jobs:
                      - name: stale
                        at: 2099-01-01T00:00:00Z
                        command: [python3, examples/pipeline/algorithm.py]
                        env: {PIPELINE_PARTS: "2", PIPELINE_ROWS: "3"}
                        timeout: 30s
                        stages:

                    """ + Pipeline.stage("score", stack: stack, env: ["HOLD_PART": "0"])
                        + Pipeline.merge("summary", after: "score", stack: stack)
            )
            let hold = stack.directory + "/state/hold"
            _ = FileManager.default.createFile(atPath: hold, contents: nil)
            try stack.startServices(processors: 1)
            let run = try await stack.trigger("stale")
            let held = try await stack.waitUntil(timeout: .seconds(30)) {
                Pipeline.log("score", stack: stack).contains { $0.word == "held" && $0.run == run }
            }
            try #require(held, "part 0 of \(run) is not held: \(stack.stderr("processor-1"))")
            try await Deliberately.wait(.seconds(3), because: "three leases: a task queued at the busy processor would be re-sent")
            let events = stack.loggedEvents().filter { $0.run == run }
            #expect(!events.contains { $0.type == "result.redelivered" }, "a task was re-sent while the processor was busy")
            #expect(!events.contains { $0.type == "result.sent" && $0.part == 1 }, "part 1 was sent to a processor that had not asked")
            try FileManager.default.removeItem(atPath: hold)
            let stored = try await stack.waitUntil(timeout: .seconds(30)) { !Pipeline.stored(run, stack: stack).isEmpty }
            try #require(stored, "nothing stored for \(run): \(stack.stderr("processor-1"))")
            let merged = try await stack.waitUntil(timeout: .seconds(10)) {
                Pipeline.log("summary", stack: stack).contains { $0.word == "done" }
            }
            #expect(merged)

            let expected = try await Pipeline.expected(run: run, parts: 2, rows: 3, stages: ["score"], stack: stack)
            #expect(Pipeline.stored(run, stack: stack) == [0: expected])
            let starts = Pipeline.log("score", stack: stack).filter { $0.word == "start" && $0.part == 1 }
            #expect(starts.count == 1, "part 1's stage ran \(starts.count) times")
        }
    }
}
