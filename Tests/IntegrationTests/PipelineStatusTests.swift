import Foundation
import Messaging
import Testing

/// `baton status`, `baton results` and the hub's metrics for a pipeline, against real processes: an algorithm
/// writing parts into `$BATON_OUTPUT_DIR`, a per-part `sh` stage whose last part waits for a gate, a merge,
/// and the store.
struct PipelineStatusTests {
    /// How many parts the algorithm writes (the oracle for every count below).
    static let parts = 4

    static func yaml(_ directory: String) -> String {
        """
        jobs:
          - name: scores
            at: 2100-01-01T00:00:00Z
            command: [sh, \(directory)/algorithm.sh]
            stages:
              - name: score
                command: [sh, \(directory)/score.sh]
              - name: total
                mode: merge
                command: [sh, \(directory)/total.sh]

        """
    }

    static func writeScripts(in directory: String) throws {
        let scripts = [
            // Part i holds one JSON line {"n": i}.
            "algorithm.sh": """
            i=0
            while [ $i -lt \(parts) ]; do echo "{\\"n\\": $i}" > "$BATON_OUTPUT_DIR/part-$i.jsonl"; i=$((i + 1)); done
            """,
            // The last part is the deliberately slow one: it waits until the test opens the gate.
            "score.sh": """
            if [ "$BATON_PART" = "\(parts - 1)" ]; then
              while [ ! -e \(directory)/gate ]; do sleep 0.05; done
            fi
            cat > "$BATON_OUTPUT"
            """,
            "total.sh": #"cat > "$BATON_OUTPUT""#,
        ]
        for (name, text) in scripts { try (text + "\n").write(toFile: directory + "/" + name, atomically: true, encoding: .utf8) }
    }

    /// While the slow part runs, the run is in flight with stage `score` at parts - 1 of parts (and no later
    /// stage yet); once the gate opens its pipeline finishes and it leaves the report. `baton results` then lists
    /// every task with its stage and part, and the hub counted each under its stage.
    @Test(.timeLimit(.minutes(3)))
    func statusShowsAPipelinesStagesUntilItFinishes() async throws {
        let base = try StatusTests.freePortRange(4)
        try await TestStack.with("pipestatus", yaml: "", metricsPorts: base) { stack in
            try Self.writeScripts(in: stack.directory)
            try stack.rewrite(yaml: Self.yaml(stack.directory))
            // Two processors: one waits on the gate while the other does every other part.
            try stack.startServices(processors: 2)
            let runID = try await stack.trigger("scores")

            var seen: StatusReport?
            let waiting = try await stack.waitUntil(timeout: .seconds(60)) {
                seen = try? await StatusTests.status(stack)
                guard let pipeline = seen?.pipelines?.first(where: { $0.run == runID }) else { return false }
                return pipeline.stages.map(\.name) == ["score"] && pipeline.stages.first?.done == Self.parts - 1
            }
            #expect(waiting, "\(String(describing: seen?.pipelines))")
            let stage = try #require(seen?.pipelines?.first { $0.run == runID }?.stages.first)
            #expect(stage.parts == Self.parts)
            #expect(stage.done < Self.parts)
            #expect(stage.dead == 0 && stage.failed == 0)
            let text = try await stack.baton(["status"])
            #expect(text.output.contains("PIPELINES IN FLIGHT\n  \(runID)  score \(Self.parts - 1)/\(Self.parts)"), "\(text.output)")

            FileManager.default.createFile(atPath: stack.directory + "/gate", contents: nil)
            var after: StatusReport?
            let finished = try await stack.waitUntil(timeout: .seconds(60)) {
                after = try? await StatusTests.status(stack)
                guard let pipelines = after?.pipelines else { return false }
                return !pipelines.contains { $0.run == runID } && stack.outboxCounts()["acked"] == Self.parts + 2
            }
            #expect(finished, "status: \(String(describing: after?.pipelines)); outbox: \(stack.outboxCounts())")

            // Every task of the run, with its stage and part: the parts of score, one merge, one store.
            let listed = try await stack.baton(["results"])
            #expect(listed.status == 0)
            for part in 0..<Self.parts {
                #expect(listed.output.contains("\(runID)  stage score  part \(part)/\(Self.parts)  acked"), "\(listed.output)")
            }
            #expect(listed.output.contains("\(runID)  stage total  part 0/1  acked"), "\(listed.output)")
            #expect(listed.output.contains("\(runID)  stage store  part 0/1  acked"), "\(listed.output)")
            let json = try await stack.baton(["results", "--json"])
            let objects = json.output.split(separator: "\n").compactMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }
            let stages = objects.compactMap { object -> String? in
                guard let stage = object["stage"] as? String, let index = object["stageIndex"] as? Int else { return nil }
                return "\(index) \(stage)"
            }
            #expect(
                stages.sorted() == (Array(repeating: "0 score", count: Self.parts) + ["1 total", "2 store"]).sorted(),
                "\(json.output)"
            )

            let metrics = try await StatusTests.get(base + 2, "/metrics").body
            for (name, count) in [("score", Self.parts), ("total", 1), ("store", 1)] {
                let sample = #"baton_tasks_total{job="scores",stage="\#(name)",outcome="succeeded"}"#
                #expect(StatusTests.value(metrics, sample) == Double(count), "\(metrics)")
            }
        }
    }
}
