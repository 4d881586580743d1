import Foundation
import GRDB
import Messaging
import TestSupport
import Testing

@Suite(.serialized)
struct EndToEndTests {
    /// The Python example algorithm runs under the real services; every stored row is exactly a line the script wrote.
    @Test(.timeLimit(.minutes(2)))
    func pythonAlgorithmResultsAreStoredExactly() async throws {
        try await TestStack.with(
            "python",
            yaml: """
                jobs:
                  - name: walk
                    every: 1s
                    command: [python3, examples/algorithm.py]
                    env: {WALK_STEPS: "7", WORK_SECONDS: "0.05"}
                    timeout: 30s
                """
        ) { stack in
            try stack.startServices(processors: 2)
            let stored = try await stack.waitUntil(timeout: .seconds(45)) { stack.storedCount() >= 3 }
            await stack.stop()
            #expect(stored, "stored \(stack.storedCount()) results; algorithm stderr: \(stack.stderr("algorithm"))")

            let results = try stack.read { db in
                try Row.fetchAll(db, sql: "SELECT run_id, logical_time, job, sha256, format FROM results ORDER BY run_id")
            }
            #expect(results.count >= 3)
            for result in results {
                let runID: String = result["run_id"]
                let logicalTime: String = result["logical_time"]
                #expect(result["format"] == "jsonl")
                let records = try stack.read { db in
                    try String.fetchAll(db, sql: "SELECT data FROM records WHERE run_id = ? ORDER BY line", arguments: [runID])
                }
                // What the script writes for this run, computed by running it again with the same inputs.
                let expected = try await Self.runScript(runID: runID, logicalTime: logicalTime, directory: stack.directory)
                #expect(records.joined(separator: "\n") + "\n" == expected, "run \(runID)")
                #expect(records.count == 7)
                // The raw result is kept, and it is the script's output byte for byte.
                let raw = try String(contentsOfFile: "\(stack.dataDirectory)/raw/walk/\(runID).result", encoding: .utf8)
                #expect(raw == expected)
                #expect(SHA256.hex(of: Data(raw.utf8)) == result["sha256"])
            }
            // The script's `baton:progress` lines became progress events, not log lines.
            let events = try String(contentsOfFile: stack.dataDirectory + "/logs/events.jsonl", encoding: .utf8)
            #expect(events.contains("\"message\":\"step 7 of 7\""))
            #expect(events.contains("\"percent\":\"100.0\""))
            #expect(!events.contains("baton:progress"))
        }
    }

    /// A Python processor command receives each result on stdin and runs once per result.
    @Test(.timeLimit(.minutes(2)))
    func pythonProcessorCommandProcessesEachResultOnce() async throws {
        try await TestStack.with(
            "pyproc",
            yaml: """
                processor:
                  command: [python3, examples/processor.py]
                  env: {SUMMARY_DB: /tmp/PLACEHOLDER}
                jobs:
                  - name: walk
                    every: 1s
                    command: [python3, examples/algorithm.py]
                    env: {WALK_STEPS: "5", WORK_SECONDS: "0.01"}
                """
        ) { stack in
            let summary = stack.directory + "/summary.sqlite"
            let config = try String(contentsOfFile: stack.configPath, encoding: .utf8)
            try config.replacingOccurrences(of: "/tmp/PLACEHOLDER", with: summary).write(
                toFile: stack.configPath,
                atomically: true,
                encoding: .utf8
            )
            try stack.startServices(processors: 1)
            let done = try await stack.waitUntil(timeout: .seconds(45)) { stack.storedCount() >= 2 }
            await stack.stop()
            #expect(done, "processor stderr: \(stack.stderr("processor-1"))")
            let processed = try stack.read { db in try String.fetchAll(db, sql: "SELECT run_id FROM results WHERE format = 'command'") }
            let summarised = try DatabaseQueue(path: summary).read { db in
                try Row.fetchAll(db, sql: "SELECT run_id, steps FROM summary")
            }
            #expect(Set(summarised.map { $0["run_id"] as String }).isSuperset(of: processed))
            #expect(summarised.allSatisfy { ($0["steps"] as Int) == 5 })
        }
    }

    static func runScript(runID: String, logicalTime: String, directory: String) async throws -> String {
        let output = "\(directory)/expected-\(UUID().uuidString)"
        let environment = [
            "BATON_RUN_ID": runID, "BATON_JOB": "walk", "BATON_LOGICAL_TIME": logicalTime, "BATON_OUTPUT": output,
            "WALK_STEPS": "7", "WORK_SECONDS": "0",
        ]
        let outcome = try await Program.run(
            "/usr/bin/env",
            ["python3", "\(TestStack.repository)/examples/algorithm.py"],
            environment: environment,
            timeout: .seconds(60)
        )
        defer { try? FileManager.default.removeItem(atPath: output) }
        #expect(outcome.status == 0, "\(outcome.output)")
        return try String(contentsOfFile: output, encoding: .utf8)
    }
}
