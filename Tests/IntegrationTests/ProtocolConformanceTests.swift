// Over 300 lines: the protocol's conformance in one place, each message and event against docs/protocol.schema.json
// and the doc's Python examples run as printed; split, a new message would be easy to leave out of one half.
import Foundation
import Messaging
import Testing
import ZMQ

/// `docs/PROTOCOL.md` and `docs/protocol.schema.json` are the contract third parties code against: every
/// message Baton encodes, and every event and reply a live stack produces, must match the schema (checked by
/// `scripts/protocol_check.py` with Python's `jsonschema`, not by Baton's own decoders), and the doc's Python
/// examples must run as printed against a live stack.
@Suite(.serialized)
struct ProtocolConformanceTests {
    static let time = Date(timeIntervalSince1970: 1_774_746_000.123)

    /// Writes `definition<TAB>json` lines and has the schema checked on them; returns the checker's output.
    static func check(_ documents: [(String, Data)], file: String) async throws -> Scripts.Outcome {
        let python = try #require(
            await Scripts.python(with: ["jsonschema"]),
            "no python3 with jsonschema (apt-get install python3-jsonschema)"
        )
        let lines = documents.map { "\($0.0)\t\(String(decoding: $0.1, as: UTF8.self))" }
        try (lines.joined(separator: "\n") + "\n").write(toFile: file, atomically: true, encoding: .utf8)
        return try await Scripts.run(python, ["scripts/protocol_check.py", file])
    }

    /// Every kind of message, with every optional field set and with none, as the services encode them.
    @Test func everyEncodedMessageMatchesTheSchema() async throws {
        let run = RunID.make(job: "hourly.v2", logicalTime: Self.time)
        let manual = run + "~manual"
        let sha = String(repeating: "ab", count: 32)
        func header<M: WireMessage>(_ message: M) -> (String, Data) { (M.kind, Wire.encode(message)[2]) }
        var documents: [(String, Data)] = [
            header(RunRequest(runID: run, job: "hourly.v2", logicalTime: Self.time, firedAt: Self.time, trigger: .schedule)),
            header(RunRequest(runID: manual, job: "hourly.v2", logicalTime: Self.time, firedAt: Self.time, trigger: .manual)),
            header(RunCancel(runID: run, reason: "replaced by a newer run")),
            header(RunCancel(runID: run, reason: "cancelled by a user", queuedOnly: true)),
            header(Acknowledgement(runID: run, part: 0, processor: "host:12", duplicate: false)),
            header(LeaseRenewal(runID: run, part: 3, processor: "p1")),
            header(LeaseRenewal(runID: run, part: 3, processor: "p1", stage: 1)),
            header(WorkRequest(processor: "host:12", seq: 7, credit: 1)),
            header(
                Acknowledgement(
                    runID: run,
                    part: 1,
                    processor: "p1",
                    duplicate: false,
                    stage: 0,
                    outputs: [PartDigest(size: 3, sha256: sha)]
                )
            ),
            header(FailureReport(runID: run, part: 0, processor: "p1", reason: "exited with status 1", handBack: false)),
            header(ControlRequest(command: .jobs)),
            header(ControlRequest(command: .trigger, job: "hourly.v2")),
            header(ControlRequest(command: .backfill, job: "hourly.v2", from: Self.time, to: Self.time, rerun: true)),
            header(ControlRequest(command: .cancel, run: run)),
            header(ControlRequest(command: .cancel, job: "hourly.v2", queued: true)),
            header(ControlReply(ok: false, error: "no job \"x\"")),
            header(
                ControlReply(
                    ok: true,
                    message: "fired",
                    jobs: [
                        ControlReply.Job(
                            name: "hourly.v2",
                            schedule: "every 1h",
                            timeZone: "UTC",
                            next: Self.time,
                            paused: false,
                            running: [run],
                            lastRun: manual,
                            lastOutcome: "succeeded",
                            lastDurationMs: 1500,
                            policies: "misfire=all overlap=allow"
                        )
                    ],
                    runs: [manual]
                )
            ),
            header(StatusQuery()),
            header(StatusQuery.runs(job: "hourly.v2", state: "dead", from: Self.time, to: Self.time, limit: 10, run: run)),
            header(StatusReport(time: Self.time, error: "query header: field \"what\": missing")),
            header(Self.runsReport(run: run)),
            header(RunsReport(time: Self.time, error: "cannot read the run history: disk I/O error")),
            header(
                StatusReport(
                    time: Self.time,
                    services: [],
                    jobs: [StatusReport.Job(name: "hourly.v2", succeeded: 3, failed: 1)],
                    runs: [StatusReport.Run(run: run, job: "hourly.v2", state: "running")],
                    recent: [StatusReport.Run(run: manual, job: "hourly.v2", state: "succeeded")],
                    backlog: StatusReport.Backlog(pending: 1, sent: 0, dead: 0, time: Self.time),
                    errors: [
                        StatusReport.ErrorRecord(
                            time: Self.time,
                            source: "processor",
                            instance: "p1",
                            type: "log.error",
                            job: "hourly.v2",
                            run: run,
                            part: 0,
                            message: "boom"
                        )
                    ],
                    eventsLost: ["algorithm/host:1": 2],
                    diskFull: ["scheduler/host:2": "database or disk is full"],
                    pipelines: [
                        StatusReport.PipelineRun(
                            run: run,
                            job: "hourly.v2",
                            since: Self.time,
                            updated: Self.time,
                            stages: [
                                .init(index: 0, name: "score", parts: 4, done: 3, failed: 1, dead: 1),
                                .init(index: 1, name: "total", parts: nil, done: 0),
                            ]
                        )
                    ]
                )
            ),
        ]
        for state in RunState.allCases {
            documents.append(
                header(RunReport(runID: run, job: "hourly.v2", state: state, detail: "d", time: Self.time, askedAt: Self.time))
            )
        }
        documents.append(header(RunReport(runID: run, job: "hourly.v2", state: .accepted, time: Self.time)))
        let result = ResultHeader(
            runID: run,
            job: "hourly.v2",
            logicalTime: Self.time,
            part: 0,
            parts: 1,
            size: 5,
            sha256: sha,
            attempt: 1,
            leaseMs: 30_000,
            durableAtUs: 1_774_746_000_123_000
        )
        documents.append(("result", Wire.encode(result, payload: Data("hello".utf8))[2]))
        let request = RunRequest(runID: run, job: "hourly.v2", logicalTime: Self.time, firedAt: Self.time, trigger: .schedule)
        documents += [
            header(ControlRequest(command: .fires, job: "hourly.v2")),
            header(
                ControlReply(
                    fires: [ControlReply.Fire(request: request, state: .skipped, detail: "misfire policy skip")],
                    lastSlot: Self.time,
                    paused: false
                )
            ),
            header(AlgorithmRequest(command: .results)),
            header(AlgorithmRequest(command: .results, state: .dead, cause: "conflict", job: "hourly.v2", from: Self.time, to: Self.time)),
            header(AlgorithmRequest(command: .raw, run: run, part: 0)),
            header(AlgorithmRequest(command: .delivered, run: run, part: 0)),
            header(AlgorithmReply(ok: false, error: "no result recorded for run \(run) part 0")),
            header(
                AlgorithmReply(
                    ok: true,
                    parts: [
                        AlgorithmReply.Part(
                            header: result,
                            path: "/data/raw/r.result",
                            state: .dead,
                            failures: 2,
                            lastError: "e",
                            cause: "conflict"
                        )
                    ],
                    counts: ["dead": 1, "acked": 3]
                )
            ),
            header(AlgorithmReply(ok: true, runs: [AlgorithmReply.Run(request: request, state: .failed, attempts: 1, error: "boom")])),
            header(AlgorithmReply(ok: true, changed: true)),
            header(AlgorithmRequest(command: .delivered, run: run, part: 1, stage: 2)),
            header(AlgorithmRequest(command: .rerun, run: run, stageName: "total")),
            header(AlgorithmRequest(command: .requeue, run: run, part: 3, stage: 0)),
            header(AlgorithmRequest(command: .stages)),
            header(AlgorithmReply(ok: true, requeued: 1)),
            header(
                AlgorithmReply(
                    ok: true,
                    stages: [
                        AlgorithmReply.Stage(
                            run: run,
                            stage: 1,
                            name: "total",
                            mode: .merge,
                            builtin: nil,
                            stages: 3,
                            ready: true,
                            parts: 1,
                            tasks: 1,
                            done: 1,
                            dead: 0,
                            doneAt: Self.time
                        )
                    ]
                )
            ),
        ]
        let event = StatusEvent(
            type: EventType.runFinished,
            source: "algorithm",
            instance: "host:1",
            boot: Boot.id,
            seq: 7,
            time: Self.time,
            job: "hourly.v2",
            run: run,
            part: 0,
            attributes: ["duration_ms": "12", "size": "5", "sha256": sha]
        )
        documents.append(("event", event.frames[2]))
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("encoded-\(UUID().uuidString).tsv").path
        defer { try? FileManager.default.removeItem(atPath: file) }
        let outcome = try await Self.check(documents, file: file)
        #expect(outcome.status == 0, "\(outcome.output)")
    }

    /// The schema is strict enough to fail: documents that break the doc are refused by it.
    @Test func theSchemaRefusesWhatTheDocForbids() async throws {
        let bad: [(String, String)] = [
            (
                "event",
                #"{"type":"run.started","source":"algorithm","instance":"a","boot":"0123456789abcdef","seq":0,"time":"2026-01-01T00:00:00.000Z"}"#
            ),
            ("event", #"{"type":"run.started","source":"algorithm","instance":"a","seq":1,"time":"2026-01-01T00:00:00.000Z"}"#),
            (
                "run",
                #"{"runId":"NaN","job":"j","logicalTime":"2026-01-01T00:00:00.000Z","firedAt":"2026-01-01T00:00:00.000Z","trigger":"schedule"}"#
            ),
            ("ack", #"{"runId":"j@2026-01-01T00:00:00.000Z","part":0,"processor":"p"}"#),
            (
                "result",
                #"{"runId":"j@2026-01-01T00:00:00.000Z","job":"j","logicalTime":"2026-01-01T00:00:00.000Z","part":0,"parts":1,"size":1,"sha256":"ABC","attempt":1,"leaseMs":1}"#
            ),
            ("control", #"{"command":"backfill","job":"j"}"#),
        ]
        let python = try #require(await Scripts.python(with: ["jsonschema"]))
        for (definition, json) in bad {
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("bad-\(UUID().uuidString).tsv").path
            defer { try? FileManager.default.removeItem(atPath: file) }
            try "\(definition)\t\(json)\n".write(toFile: file, atomically: true, encoding: .utf8)
            let outcome = try await Scripts.run(python, ["scripts/protocol_check.py", file])
            #expect(outcome.status == 1, "accepted: \(definition) \(json)\n\(outcome.output)")
        }
    }

    /// The kinds of event a live stack's log must show.
    static let expectedKinds = [
        "run.scheduled", "run.finished", "run.failed", "run.cancelled", "result.stored", "result.acknowledged", "service.heartbeat",
    ]

    /// Waits until the stack's event log holds every kind of ``expectedKinds``.
    static func waitForExpectedKinds(_ stack: TestStack) async throws -> Bool {
        try await stack.waitUntil(timeout: .seconds(30)) { Set(stack.loggedEvents().map(\.type)).isSuperset(of: expectedKinds) }
    }

    /// Waits until the stack's event log holds an event of `type` for `run`.
    static func waitForLogged(_ stack: TestStack, _ type: String, run: String) async throws -> Bool {
        try await stack.waitUntil(timeout: .seconds(30)) { stack.loggedEvents().contains { $0.type == type && $0.run == run } }
    }

    /// A live stack with succeeding, failing, manual and cancelled runs: every event in the logger's event
    /// log, the status report and the control replies match the schema.
    @Test(.timeLimit(.minutes(2)))
    func everyEventAndReplyOfALiveStackMatchesTheSchema() async throws {
        let yaml = """
            jobs:
              - name: good
                every: 500ms
                command: ["/bin/sh", "-c", "printf '%s' \\"$BATON_RUN_ID\\" > \\"$BATON_OUTPUT\\""]
              - name: bad
                every: 1s
                retries: 1
                command: ["/bin/sh", "-c", "echo 'cannot open input.csv' >&2; exit 3"]
              - name: slow
                at: 2100-01-01T00:00:00Z
                command: ["/bin/sh", "-c", "sleep 30"]

            """
        try await TestStack.with("schema", yaml: yaml) { stack in
            try stack.startServices(processors: 1)
            let context = Context()
            func ask(_ endpoint: String, _ frames: [Data]) async throws -> Data? {
                let socket = try await AsyncSocket(
                    context: context,
                    configuration: .init(type: .request, connect: ["ipc://\(stack.directory)/\(endpoint)"])
                )
                try await socket.send(frames)
                let reply = try await socket.receive(timeout: .seconds(10))
                await socket.close()
                return reply.flatMap { $0.count > 2 ? $0[2] : nil }
            }
            #expect(try await stack.waitUntil(timeout: .seconds(30)) { stack.storedCount() >= 3 })
            var documents: [(String, Data)] = []
            let triggered = try #require(try await ask("control", Wire.encode(ControlRequest(command: .trigger, job: "slow"))))
            documents.append(("control.reply", triggered))
            let reply = try Wire.decode(ControlReply.self, from: [Data(Wire.protocolID.utf8), Data("control.reply".utf8), triggered])
            let slow = try #require(reply.message.runs?.first)
            // Cancelled while it runs, so the cancel stops a running command.
            let started = try await Self.waitForLogged(stack, EventType.runStarted, run: slow)
            #expect(started, "\(slow) did not start")
            documents.append(
                ("control.reply", try #require(try await ask("control", Wire.encode(ControlRequest(command: .cancel, run: slow)))))
            )
            documents.append(("control.reply", try #require(try await ask("control", Wire.encode(ControlRequest(command: .jobs))))))
            documents.append(("control.reply", try #require(try await ask("control", [Data("garbage".utf8)]))))
            // Every kind of event checked below is in the log before the status is asked for.
            _ = try await Self.waitForExpectedKinds(stack)
            documents.append(("query.reply", try #require(try await ask("query", Wire.encode(StatusQuery())))))
            documents.append(("query.reply", try #require(try await ask("query", Wire.encode(StatusQuery(what: "everything"))))))
            documents.append(("query.reply", try #require(try await ask("query", Wire.encode(StatusQuery.runs())))))
            documents.append(("query.reply", try #require(try await ask("query", Wire.encode(StatusQuery.runs(run: slow))))))
            let events = try String(contentsOfFile: stack.dataDirectory + "/logs/events.jsonl", encoding: .utf8)
                .split(separator: "\n").map { ("event", Data($0.utf8)) }
            let kinds = Set(
                events.compactMap { try? JSONSerialization.jsonObject(with: $0.1) as? [String: Any] }.compactMap { $0["type"] as? String }
            )
            for expected in Self.expectedKinds {
                #expect(kinds.contains(expected), "no \(expected) event among \(kinds.sorted())")
            }
            let outcome = try await Self.check(documents + events, file: stack.directory + "/live.tsv")
            #expect(outcome.status == 0, "\(outcome.output)")
        }
    }

    /// A runs report with every field set.
    static func runsReport(run: String) -> RunsReport {
        var entry = RunsReport.Run(run: run, job: "hourly.v2", slot: time, state: "dead")
        entry.trigger = "schedule"
        entry.scheduledAt = time
        entry.latenessMs = 0.4
        entry.acceptedAt = time
        entry.startedAt = time
        entry.finishedAt = time
        entry.endedAt = time
        entry.attempts = 2
        entry.durationMs = 1500
        entry.size = 64
        entry.parts = 3
        entry.dead = 1
        entry.error = "the command exited with status 1; stderr: boom"
        var stage = RunsReport.Stage(index: 0, name: "store", succeeded: 2, failed: 1, dead: 1)
        stage.parts = 3
        stage.readyAt = time
        stage.doneAt = time
        entry.stages = [stage]
        var task = RunsReport.Task(stage: 0, part: 2, state: "dead")
        task.attempts = 2
        task.processor = "processor-1"
        task.error = "boom"
        task.startedAt = time
        task.endedAt = time
        entry.tasks = [task]
        return RunsReport(time: time, runs: [entry], truncated: true)
    }

    /// The Python examples of docs/PROTOCOL.md, as printed (only their endpoints pointed at the test's stack):
    /// the subscriber decodes events, the status query answers, and the processor replaces baton-processor
    /// and stores every result exactly once, byte for byte.
    @Test(.timeLimit(.minutes(2)))
    func thePythonExamplesOfTheProtocolDocRunAsPrinted() async throws {
        let python = try #require(await Scripts.python(with: ["zmq"]), "no python3 with pyzmq (apt-get install python3-zmq)")
        let doc = try String(contentsOfFile: TestStack.repository + "/docs/PROTOCOL.md", encoding: .utf8)
        let blocks = doc.components(separatedBy: "```python\n").dropFirst().map { $0.components(separatedBy: "```")[0] }
        let subscriber = try #require(blocks.first { $0.contains("zmq.SUB") }, "no subscriber example")
        let query = try #require(blocks.first { $0.contains("\"query\"") }, "no status query example")
        let processor = try #require(blocks.first { $0.contains("zmq.DEALER") && $0.contains("b\"ready\"") }, "no processor example")
        let yaml = """
            jobs:
              - name: echo
                every: 400ms
                command: ["/bin/sh", "-c", "printf '%s' \\"$BATON_RUN_ID\\" > \\"$BATON_OUTPUT\\""]

            """
        // Over tcp, with CURVE as by default: the examples read the stack's key pair as they print it.
        let ports = try StatusTests.freePortRange(9)
        try await TestStack.with("pydoc", yaml: yaml, tcpPorts: ports) { stack in
            let names = ["runs", "control", "results", "acks", "status_in", "status_out", "query", "reports", "algorithm_control"]
            // Each example names its endpoint's config key in a comment, and its key file; point them at the stack.
            func pointed(_ code: String) -> String {
                code.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
                    guard let key = line.range(of: "# endpoints.").map({ line[$0.upperBound...].prefix { $0.isLetter || $0 == "_" } }),
                        let index = names.firstIndex(of: String(key)),
                        let start = line.range(of: "\"tcp://"), let end = line[start.upperBound...].firstIndex(of: "\"")
                    else {
                        return line.replacingOccurrences(of: "\"data/keys/baton.key\"", with: "\"\(stack.dataDirectory)/keys/baton.key\"")
                    }
                    return line.replacingCharacters(in: start.lowerBound...end, with: "\"tcp://127.0.0.1:\(ports + index)\"")
                }.joined(separator: "\n")
            }
            for (name, code) in [("subscriber", subscriber), ("query", query), ("processor", processor)] {
                try pointed(code).write(toFile: "\(stack.directory)/\(name).py", atomically: true, encoding: .utf8)
            }
            try stack.startServices(processors: 0)
            // The examples read the key pair the first service makes at its start: as a user would, they start
            // once it is there (a loaded machine took longer than the scripts to get to it).
            let keyed = try await stack.waitUntil(timeout: .seconds(30)) {
                FileManager.default.fileExists(atPath: "\(stack.dataDirectory)/keys/baton.key")
            }
            #expect(keyed, "no key pair: \(stack.stderr("logger").suffix(800))")
            async let listened = Scripts.run(python, ["subscriber.py"], directory: stack.directory, timeout: .seconds(8))
            let processed = try await Scripts.run(python, ["processor.py"], directory: stack.directory, timeout: .seconds(8))
            let asked = try await Scripts.run(python, ["query.py"], directory: stack.directory, timeout: .seconds(10))
            let heard = try await listened

            #expect(!heard.output.contains("Traceback"), "\(heard.output)")
            #expect(heard.output.contains("run."), "the subscriber printed no run events:\n\(heard.output)")
            #expect(
                asked.status == 0 && asked.output.contains("scheduler"),
                "status \(asked.status): \(asked.output)\nlogger running: \(stack.process("logger")?.isRunning ?? false) \(stack.process("logger").map { $0.isRunning ? "" : "\($0.terminationReason.rawValue) \($0.terminationStatus)" } ?? "")\n\(stack.stderr("logger"))"
            )
            #expect(!processed.output.contains("Traceback"), "\(processed.output)")

            // Oracle from the input: each stored file holds its own run id, and nothing is stored twice.
            let stored = (try? FileManager.default.contentsOfDirectory(atPath: "\(stack.directory)/stored")) ?? []
            let files = stored.filter { !$0.hasSuffix(".tmp") }
            #expect(files.count >= 5, "the example processor stored \(files.count): \(processed.output)")
            for file in files {
                let content = try String(contentsOfFile: "\(stack.directory)/stored/\(file)", encoding: .utf8)
                #expect(file == "\(content).0", "\(file) holds \(content)")
            }
            let printed = processed.output.split(separator: "\n").filter { $0.hasPrefix("stored ") }
            #expect(printed.count == Set(printed).count, "stored twice: \(printed)")
            // The algorithm counts them as acknowledged.
            #expect((stack.outboxCounts()["acked"] ?? 0) >= files.count - 1, "\(stack.outboxCounts())")
        }
    }
}
