import Foundation
import GRDB
import Messaging
import Testing

/// What the pipeline tests share: the example's scripts behind a tracing wrapper, the oracle that computes a
/// run's summary from its inputs by calling the example's functions directly, and reading the stored summary.
enum Pipeline {
    static let examples = TestStack.repository + "/examples/pipeline"

    /// Runs the example's stage (`TRACE_ROLE=stage`) or merge (`merge`) and records each invocation in
    /// `$PIPELINE_STATE/<stage>.log` as `start|fail|held|done <run> <part>` lines. A per-part stage fails on purpose
    /// for part `FAIL_PART` on its first `FAIL_TIMES` attempts (counted in a file per stage and part), and holds part
    /// `HOLD_PART` of the first run that reaches it while the file `hold` exists, until that file is removed. A
    /// merge's `start` line carries how many `done` lines the run had in `$PREVIOUS_STAGE`'s log when it started.
    static let tracer = #"""
        import os, sys, time
        sys.path.insert(0, os.environ["PIPELINE_EXAMPLES"])
        import merge, stage

        state = os.environ["PIPELINE_STATE"]
        run, name = os.environ["BATON_RUN_ID"], os.environ["BATON_STAGE"]
        role = os.environ["TRACE_ROLE"]
        part = int(os.environ["BATON_PART"]) if role == "stage" else 0

        def log(word, detail=""):
            with open(os.path.join(state, name + ".log"), "a") as handle:
                handle.write(f"{word} {run} {part}{detail}\n")

        if role == "merge":
            previous = os.path.join(state, os.environ["PREVIOUS_STAGE"] + ".log")
            lines = open(previous).read().splitlines() if os.path.exists(previous) else []
            log("start", " " + str(sum(1 for line in lines if line.startswith(f"done {run} "))))
            code = merge.main()
            log("done")
            sys.exit(code)

        counter = os.path.join(state, f"attempts-{name}-{part}")
        attempt = (int(open(counter).read()) if os.path.exists(counter) else 0) + 1
        with open(counter, "w") as handle:
            handle.write(str(attempt))
        log("start")
        if part == int(os.environ.get("FAIL_PART", "-1")) and attempt <= int(os.environ.get("FAIL_TIMES", "0")):
            log("fail")
            print(f"failing part {part} on purpose (attempt {attempt})", file=sys.stderr)
            sys.exit(1)
        hold = os.path.join(state, "hold")
        if part == int(os.environ.get("HOLD_PART", "-1")) and os.path.exists(hold):
            claim = os.path.join(state, "held-run")
            try:
                descriptor = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                os.write(descriptor, run.encode())
                os.close(descriptor)
            except FileExistsError:
                pass
            if open(claim).read() == run:
                log("held")
                deadline = time.monotonic() + 50
                while os.path.exists(hold) and time.monotonic() < deadline:
                    time.sleep(0.05)
        code = stage.main()
        log("done")
        sys.exit(code)
        """#

    /// Writes the tracer into the stack's directory, with its state directory; returns the tracer's path.
    static func installTracer(in stack: TestStack) throws -> String {
        try FileManager.default.createDirectory(atPath: stack.directory + "/state", withIntermediateDirectories: true)
        let path = stack.directory + "/traced.py"
        try tracer.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// The YAML of a traced per-part stage.
    static func stage(_ name: String, stack: TestStack, env: [String: String] = [:]) -> String {
        traced(name, role: "stage", stack: stack, env: env)
    }

    /// The YAML of a traced merge, which counts the `done` lines of `previous` when it starts.
    static func merge(_ name: String, after previous: String, stack: TestStack) -> String {
        traced(name, role: "merge", stack: stack, env: ["PREVIOUS_STAGE": previous])
    }

    private static func traced(_ name: String, role: String, stack: TestStack, env: [String: String]) -> String {
        let variables = ["PIPELINE_EXAMPLES": examples, "PIPELINE_STATE": stack.directory + "/state", "TRACE_ROLE": role]
            .merging(env) { $1 }
            .sorted { $0.key < $1.key }
            .map { "\($0.key): \"\($0.value)\"" }
            .joined(separator: ", ")
        return """
                  - name: \(name)
                    mode: \(role == "merge" ? "merge" : "part")
                    command: [python3, \(stack.directory)/traced.py]
                    env: {\(variables)}

            """
    }

    /// One invocation log line: what happened, to which run and part (and, for a merge's start, a count).
    struct Line: Equatable {
        var word: String
        var run: String
        var part: Int
        var count: Int?
    }

    /// The lines of a stage's invocation log (empty while it does not exist).
    static func log(_ stage: String, stack: TestStack) -> [Line] {
        let text = (try? String(contentsOfFile: "\(stack.directory)/state/\(stage).log", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ").map(String.init)
            guard fields.count >= 3, let part = Int(fields[2]) else { return nil }
            return Line(word: fields[0], run: fields[1], part: part, count: fields.count > 3 ? Int(fields[3]) : nil)
        }
    }

    /// The stored parts of a run, by part (empty while nothing is stored): the built-in store keeps JSON lines as
    /// rows of `records`, so a part's bytes are its lines joined, each ended by a newline. The bytes are also checked
    /// against the part's recorded `size` and `sha256`, so a part whose rows do not add up to it reads as `nil`.
    static func stored(_ run: String, stack: TestStack) -> [Int: Data?] {
        let parts =
            (try? stack.read { db in
                try Row.fetchAll(db, sql: "SELECT part, size, sha256 FROM results WHERE run_id = ?", arguments: [run])
            }) ?? []
        var result: [Int: Data?] = [:]
        for row in parts {
            let part: Int = row["part"]
            let lines =
                (try? stack.read { db in
                    try String.fetchAll(
                        db,
                        sql: "SELECT data FROM records WHERE run_id = ? AND part = ? ORDER BY line",
                        arguments: [run, part]
                    )
                }) ?? []
            let bytes = Data(lines.map { $0 + "\n" }.joined().utf8)
            let consistent = bytes.count == row["size"] && SHA256.hex(of: bytes) == row["sha256"]
            result[part] = consistent ? bytes : nil
        }
        return result
    }

    /// The summary the pipeline must store for `run`: the example's algorithm, then each of `stages` (per part, in
    /// order), then its merge, called directly in one Python process.
    static func expected(run: String, parts: Int, rows: Int, stages: [String], stack: TestStack) async throws -> Data {
        let output = "\(stack.directory)/expected-\(UUID().uuidString)"
        let code = """
            import sys
            sys.path.insert(0, sys.argv[1])
            import algorithm, merge, stage
            run, count, rows, output = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
            parts = algorithm.parts(run, count, rows)
            for name in sys.argv[6:]:
                parts = [stage.transform(data, name, index, len(parts)) for index, data in enumerate(parts)]
            open(output, "wb").write(merge.summarise(run, parts))
            """
        let outcome = try await Scripts.run("python3", ["-c", code, examples, run, "\(parts)", "\(rows)", output] + stages)
        try #require(outcome.status == 0, "the oracle failed: \(outcome.output)")
        defer { try? FileManager.default.removeItem(atPath: output) }
        return try Data(contentsOf: URL(fileURLWithPath: output))
    }

    /// Reads the summary line's fields (for checks that do not go through the example's own code).
    static func fields(_ summary: Data) throws -> [String: Any] {
        try #require(JSONSerialization.jsonObject(with: summary) as? [String: Any])
    }
}
