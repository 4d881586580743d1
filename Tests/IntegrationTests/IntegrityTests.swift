import Foundation
import GRDB
import Messaging
import ProcessorService

import Testing
import TestSupport
import ZMQ

/// A conflict is never a duplicate; failures carry their cause; `processor.retries` counts retries.
@Suite(.serialized)
struct IntegrityTests {
    /// A job `quick` whose hourly slots are half an hour away: it runs only when triggered (`run(_:)`), so a
    /// scheduler slow to start on a loaded machine cannot miss the run.
    static func job(extra: String = "", algorithm: String = "builtin: demo\n    duration: 1ms\n    result_size: 64") -> String {
        """
        \(extra)
        jobs:
          - name: quick
            every: 1h
            anchor: \(Timestamp.format(Timestamp.wholeMilliseconds(Date().addingTimeInterval(1800))))
            \(algorithm)
        """
    }

    /// Triggers one run of `quick` (`baton trigger`) and returns its id.
    static func run(_ stack: TestStack) async throws -> String {
        try await stack.trigger("quick")
    }

    /// What a processor says about one part, skipping its lease renewals.
    static func verdict(_ acks: AsyncSocket) async throws -> (ack: Acknowledgement?, nack: FailureReport?) {
        while let frames = try await acks.receive(timeout: .seconds(30)) {
            switch try Wire.kind(of: frames) {
            case Acknowledgement.kind: return (try Wire.decode(Acknowledgement.self, from: frames).message, nil)
            case FailureReport.kind: return (nil, try Wire.decode(FailureReport.self, from: frames).message)
            default: continue
            }
        }
        return (nil, nil)
    }

    /// A real processor fed by the test playing the algorithm (answering its asks): the same result twice is stored once and acknowledged as a
    /// duplicate; a result with the same key and another sha256 is refused (nack marked conflict), kept aside
    /// with both checksums, and announced as `result.conflict`; the first stored part stays as it was.
    @Test(.timeLimit(.minutes(2)))
    func processorRefusesAConflictAndAcknowledgesADuplicate() async throws {
        try await TestStack.with("conflict", yaml: "") { stack in
            try stack.start("logger", "baton-logger")
            let context = Context()
            let results = try await TaskHub(context: context, endpoint: "ipc://\(stack.directory)/results")
            let acks = try await AsyncSocket(context: context, configuration: .init(type: .pull, bind: ["ipc://\(stack.directory)/acks"]))
            let watcher = try await AsyncSocket(
                context: context,
                configuration: .init(
                    type: .subscribe,
                    options: [.subscribe(Array(EventType.resultConflict.utf8))],
                    connect: ["ipc://\(stack.directory)/status-out"]
                )
            )
            // The subscription must reach the logger before anything is published.
            try await stack.awaitSubscription(watcher, topic: EventType.resultConflict, context: context)
            try stack.start("processor-1", "baton-processor", ["--name", "p1"])

            let runID = RunID.make(job: "quick", logicalTime: Timestamp.wholeMilliseconds(Date()))
            func message(_ text: String) -> ResultMessage {
                let payload = Data(text.utf8)
                let header = ResultHeader(
                    runID: runID,
                    job: "quick",
                    logicalTime: RunID.parse(runID).flatMap { Timestamp.parse($0.timestamp) }!,
                    size: payload.count,
                    sha256: SHA256.hex(of: payload),
                    leaseMs: 5000
                )
                return ResultMessage(header: header, payload: payload)
            }
            let forged = message("{\"forged\":true}\n")
            let real = message("{\"real\":true}\n")

            try await results.send(forged.frames)
            let first = try await Self.verdict(acks)
            #expect(first.ack?.duplicate == false, "\(String(describing: first)); \(stack.stderr("processor-1").suffix(500))")
            try await results.send(forged.frames)
            let again = try await Self.verdict(acks)
            #expect(again.ack?.duplicate == true, "\(String(describing: again))")

            try await results.send(real.frames)
            let refused = try await Self.verdict(acks)
            #expect(refused.ack == nil, "a conflict must not be acknowledged: \(String(describing: refused))")
            #expect(refused.nack?.conflict == true)
            #expect(refused.nack?.handBack == false)
            #expect(refused.nack?.reason.contains("conflict") == true)
            #expect(refused.nack?.reason.contains(forged.header.sha256) == true)

            let (stored, kept) = try stack.read { db in
                (
                    try Row.fetchAll(db, sql: "SELECT run_id, sha256 FROM results").map {
                        "\($0["run_id"] as String) \($0["sha256"] as String)"
                    },
                    try Row.fetchAll(db, sql: "SELECT stored_sha256, received_sha256, payload, processor FROM conflicts")
                )
            }
            #expect(stored == ["\(runID) \(forged.header.sha256)"], "one row, the first one, unchanged")
            #expect(kept.count == 1)
            #expect(kept.first?["stored_sha256"] == forged.header.sha256)
            #expect(kept.first?["received_sha256"] == real.header.sha256)
            #expect(kept.first?["payload"] == real.payload)
            #expect(kept.first?["processor"] == "p1")

            let frames = try #require(try await watcher.receive(timeout: .seconds(10)))
            let event = try StatusEvent(frames: frames)
            #expect(event.type == EventType.resultConflict)
            #expect(event.run == runID)
            #expect(event.attributes?["stored_sha256"] == forged.header.sha256)
            #expect(event.attributes?["received_sha256"] == real.header.sha256)
            await results.close()
            await acks.close()
            await watcher.close()
        }
    }

    /// The whole pipeline: a forged result is already stored under the run's key; the real result, when the run
    /// finishes, is refused, dead-lettered at once as a conflict (never acknowledged), listed by
    /// `baton results --state conflict`; `baton replay --dead` refuses it again; with `--overwrite` it is stored.
    @Test(.timeLimit(.minutes(2)))
    func aConflictIsDeadLetteredAtOnceAndReplayedWithOverwrite() async throws {
        // The run takes 2 s: time to store the forged result under its id before the real one is handed off.
        let yaml = Self.job(
            extra: "processor:\n  retries: 5\n  backoff: 100ms\n  backoff_max: 200ms",
            algorithm: "builtin: demo\n    duration: 2s\n    result_size: 64"
        )
        try await TestStack.with("conflict2", yaml: yaml) { stack in
            let forged = Data("{\"forged\":true}\n".utf8)
            let store = try await ResultStore(path: stack.storePath)
            try stack.startServices(processors: 1)
            let runID = try await Self.run(stack)
            let logicalTime = try #require(RunID.parse(runID).flatMap { Timestamp.parse($0.timestamp) })
            let header = ResultHeader(
                runID: runID,
                job: "quick",
                logicalTime: logicalTime,
                size: forged.count,
                sha256: SHA256.hex(of: forged)
            )
            #expect(try await store.store(header, payload: forged, processor: "forger") == .stored(records: 1))
            let dead = try await stack.waitUntil(timeout: .seconds(60)) { stack.outboxCounts()["dead"] == 1 }
            #expect(dead, "outbox: \(stack.outboxCounts()); processor: \(stack.stderr("processor-1").suffix(800))")
            let row = try stack.read(stack.outboxPath) { db in
                try Row.fetchOne(
                    db,
                    sql: "SELECT state, cause, failures, deliveries, last_error, sha256 FROM outbox WHERE run_id = ?",
                    arguments: [runID]
                )
            }
            #expect(row?["state"] == "dead")
            #expect(row?["cause"] == "conflict")
            #expect(row?["deliveries"] == 1, "a conflict is not retried")
            #expect((row?["last_error"] as String?)?.contains("conflict") == true)
            let real: String = try #require(row?["sha256"])
            #expect(real != header.sha256)

            let listed = try await stack.baton(["results", "--state", "conflict"])
            #expect(listed.status == 0)
            #expect(listed.output.contains("\(runID) part 0  dead (conflict)"), "\(listed.output)")
            let other = try await stack.baton(["results", "--state", "acked"])
            #expect(!other.output.contains(runID), "\(other.output)")

            // The processor stays up: a dead letter is not delivered again unless replayed.
            let refused = try await stack.baton(["replay", "--dead"])
            #expect(refused.status != 0)
            #expect(refused.output.contains("conflict"), "\(refused.output)")
            #expect(try await store.storedSHA256(runID: runID, part: 0) == header.sha256)

            let replaced = try await stack.baton(["replay", "--dead", "--overwrite"])
            #expect(replaced.status == 0, "\(replaced.output)")
            #expect(replaced.output.contains("1 stored"), "\(replaced.output)")
            #expect(try await store.storedSHA256(runID: runID, part: 0) == real)
            #expect(stack.outboxCounts()["acked"] == 1)
        }
    }

    /// `processor.retries: 1` is one retry after the first attempt: a command that always fails runs exactly
    /// twice (counted by the command itself), and the dead letter carries the last lines of its stderr.
    @Test(.timeLimit(.minutes(2)))
    func failingProcessorCommandRunsRetriesPlusOneTimesAndItsDeadLetterShowsItsStderr() async throws {
        let attempts = "/tmp/bt-attempts-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: attempts) }
        let script = "echo x >> \(attempts); echo 'cannot reach the warehouse' >&2; echo \"giving up on $BATON_RUN_ID\" >&2; exit 1"
        let retries = 1
        let processor = """
            processor:
              command: [sh, -c, "\(script.replacingOccurrences(of: "\"", with: "\\\""))"]
              retries: \(retries)
              backoff: 100ms
              backoff_max: 200ms
              lease: 5s
            """
        try await TestStack.with("retries", yaml: Self.job(extra: processor)) { stack in
            try stack.startServices(processors: 1)
            let runID = try await Self.run(stack)
            let dead = try await stack.waitUntil(timeout: .seconds(60)) { stack.outboxCounts()["dead"] == 1 }
            #expect(dead, "outbox: \(stack.outboxCounts()); processor: \(stack.stderr("processor-1").suffix(800))")
            // Nothing runs after a dead letter: a wrong extra attempt would show within the backoff (100-200 ms).
            try await Deliberately.wait(.milliseconds(500), because: "an attempt after the dead letter must not come")
            let runs = (try? String(contentsOfFile: attempts, encoding: .utf8))?.split(separator: "\n").count ?? 0
            #expect(runs == retries + 1)
            let listed = try await stack.baton(["results", "--state", "dead"])
            #expect(listed.output.contains("failures=\(retries + 1)"), "\(listed.output)")
            #expect(listed.output.contains("exited with status 1"), "\(listed.output)")
            #expect(listed.output.contains("cannot reach the warehouse | giving up on \(runID)"), "\(listed.output)")
        }
    }

    /// A run whose command writes 30 lines on stderr and exits 1: its ledger record, and `baton status`,
    /// show the last 20 of them.
    @Test(.timeLimit(.minutes(2)))
    func failedRunRecordsTheLastLinesOfItsStderr() async throws {
        let command = "command: [sh, -c, \"for i in $(seq 10 39); do echo line-$i >&2; done; exit 1\"]"
        try await TestStack.with("stderr", yaml: Self.job(algorithm: command)) { stack in
            try stack.startServices(processors: 0)
            let runID = try await Self.run(stack)
            let failed = try await stack.waitUntil(timeout: .seconds(60)) {
                (try? stack.read(stack.outboxPath) { db in
                    try String.fetchOne(db, sql: "SELECT state FROM runs WHERE run_id = ?", arguments: [runID])
                }) == "failed"
            }
            #expect(failed, "algorithm: \(stack.stderr("algorithm").suffix(800))")
            let error = try stack.read(stack.outboxPath) { db in
                try String.fetchOne(db, sql: "SELECT error FROM runs WHERE run_id = ?", arguments: [runID])
            }
            let expected = (20...39).map { "line-\($0)" }.joined(separator: " | ")
            #expect(error == "the command exited with status 1; stderr: \(expected)")
            let shown = try await stack.waitUntil(timeout: .seconds(20)) {
                let status = try await stack.baton(["status"])
                return status.output.contains(expected)
            }
            let status = (try? await stack.baton(["status"]).output) ?? ""
            #expect(shown, "\(status)")
        }
    }
}
