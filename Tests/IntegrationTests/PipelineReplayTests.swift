import Foundation
import GRDB
import Messaging
import Testing

/// A pipeline's dead task, with real processes: a per-part stage that fails for one part is dead-lettered and
/// the merge waits; after the fix, `baton replay --dead` completes the run and the merge runs once; `baton
/// replay RUN --from-stage` runs the merge alone again; `baton audit` names the dead task, then finds nothing.
@Suite(.serialized)
struct PipelineReplayTests {
    /// The algorithm's four parts, two JSON lines each.
    static let parts = (0..<4).map { "{\"v\":\"p\($0)\"}\n{\"w\":\"q\($0)\"}\n" }

    @Test(.timeLimit(.minutes(4)))
    func aDeadPartReplayedAfterTheFixCompletesTheRunAndTheMergeRunsOnce() async throws {
        try await TestStack.with("pipereplay", yaml: "") { stack in
            let dir = stack.directory
            let scripts: [String: String] = [
                "algorithm.sh": Self.parts.enumerated().map { "printf '%s' '\($0.element)' > \"$BATON_OUTPUT_DIR/00\($0.offset)\"" }
                    .joined(separator: "\n"),
                // Part 2 fails until the fix (the flag file); every run of a part is logged.
                "upper.sh": """
                if [ "$BATON_PART" = 2 ] && [ ! -e \(dir)/fixed ]; then echo "part 2 is broken" >&2; exit 1; fi
                echo "$BATON_PART" >> \(dir)/upper.log
                tr 'a-z' 'A-Z' > "$BATON_OUTPUT"
                """,
                "merge.sh": """
                echo "$BATON_PARTS" >> \(dir)/merge.log
                cat > "$BATON_OUTPUT"
                """,
            ]
            for (name, text) in scripts { try text.write(toFile: "\(dir)/\(name)", atomically: true, encoding: .utf8) }
            try stack.rewrite(
                yaml: """
                    processor:
                      retries: 0
                      backoff: 100ms
                      lease: 5s
                    jobs:
                      - name: piped
                        every: 1h
                        anchor: \(Timestamp.format(Date().addingTimeInterval(1800)))
                        command: [sh, \(dir)/algorithm.sh]
                        stages:
                          - name: upper
                            command: [sh, \(dir)/upper.sh]
                          - name: total
                            mode: merge
                            command: [sh, \(dir)/merge.sh]
                    """
            )
            try stack.startServices(processors: 2)
            let run = try await stack.trigger("piped")
            let dead = try await stack.waitUntil(timeout: .seconds(90)) {
                stack.outboxCounts()["dead"] == 1 && stack.outboxCounts()["acked"] == 3
            }
            try #require(dead, "outbox: \(stack.outboxCounts()); processor: \(stack.stderr("processor-1").suffix(800))")
            #expect(try Self.tasks(stack, stage: 1) == 0, "the merge waits for every part")
            #expect(!FileManager.default.fileExists(atPath: "\(dir)/merge.log"))
            let audited = try await stack.baton(["audit"])
            #expect(audited.status == 1, "\(audited.output)")
            #expect(audited.output.contains("stage upper (1 of 3): 1 dead task(s)"), "\(audited.output)")

            FileManager.default.createFile(atPath: "\(dir)/fixed", contents: nil)
            let replay = try await stack.baton(["replay", "--dead"])
            #expect(replay.status == 0, "\(replay.output)")
            #expect(replay.output.contains("\(run) stage upper part 2: requeued"), "\(replay.output)")
            let stored = try await stack.waitUntil(timeout: .seconds(90)) {
                stack.storedCount() == 1 && stack.outboxCounts() == ["acked": 6]
            }
            try #require(stored, "outbox: \(stack.outboxCounts()); stored: \(stack.storedCount())")
            #expect(try Self.lines("\(dir)/merge.log") == ["1"], "the merge ran once, on its one task")
            #expect(try Self.lines("\(dir)/upper.log").sorted() == ["0", "1", "2", "3"], "each part ran once to success")
            let expected = Data(Self.parts.map { $0.uppercased() }.joined().utf8)
            try Self.expectStored(stack, run: run, equals: expected)
            let clean = try await stack.baton(["audit"])
            #expect(clean.status == 0, "\(clean.output)")
            #expect(clean.output.contains("pipelines 1 (in flight 0), tasks 6"), "\(clean.output)")

            // The merge again, from its kept input: only the merge and the store after it run.
            let rerun = try await stack.baton(["replay", run, "--from-stage", "total"])
            #expect(rerun.status == 0, "\(rerun.output)")
            #expect(rerun.output.contains("stage total (2 of 3) made again from its kept input: 1 task(s)"), "\(rerun.output)")
            let merged = try await stack.waitUntil(timeout: .seconds(90)) {
                (try? Self.lines("\(dir)/merge.log").count) == 2 && stack.outboxCounts() == ["acked": 6]
            }
            #expect(merged, "outbox: \(stack.outboxCounts()); processor: \(stack.stderr("processor-1").suffix(800))")
            #expect(try Self.lines("\(dir)/upper.log").count == 4, "the parts were not redone")
            try Self.expectStored(stack, run: run, equals: expected)

            let unknown = try await stack.baton(["replay", run, "--from-stage", "nope"])
            #expect(unknown.status == 1, "\(unknown.output)")
            #expect(unknown.output.contains("its stages: upper, total, store"), "\(unknown.output)")
        }
    }

    static func lines(_ path: String) throws -> [String] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
    }

    static func tasks(_ stack: TestStack, stage: Int) throws -> Int {
        try stack.read(stack.outboxPath) {
            try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM outbox WHERE stage = ?", arguments: [stage]) ?? 0
        }
    }

    /// The one stored row is the merge of the parts, computed here from the algorithm's output, by the store stage.
    static func expectStored(_ stack: TestStack, run: String, equals expected: Data) throws {
        let rows = try stack.read { db in
            try Row.fetchAll(db, sql: "SELECT run_id, part, size, sha256, stage FROM results")
        }
        #expect(rows.count == 1)
        let row = try #require(rows.first)
        #expect(row["run_id"] as String == run)
        #expect(row["part"] as Int == 0)
        #expect(row["size"] as Int == expected.count)
        #expect(row["sha256"] as String == SHA256.hex(of: expected))
        #expect(row["stage"] as String? == "store")
        let records = try stack.read { db in
            try String.fetchAll(db, sql: "SELECT data FROM records WHERE run_id = ? ORDER BY line", arguments: [run])
        }
        #expect(records == String(decoding: expected, as: UTF8.self).split(separator: "\n").map(String.init))
    }
}
