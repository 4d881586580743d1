import Foundation
import Glibc
import Messaging
import MetricsHTTP
import Testing
import ZMQ

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// `baton status` and the services' `/metrics` and `/healthz`, against real processes.
struct StatusTests {
    /// Services up with their details, a run in flight with its progress, a processor killed (down within
    /// three heartbeats) and started again (up), and the run history still there after the logger is killed
    /// and restarted.
    @Test(.timeLimit(.minutes(3)))
    func statusFollowsServicesRunsAndALoggerRestart() async throws {
        let yaml = """
            log:
              heartbeat: 300ms
            jobs:
              - name: slow
                at: 2100-01-01T00:00:00Z
                builtin: demo
                duration: 20s
                result_size: 1024

            """
        try await TestStack.with("status", yaml: yaml) { stack in
            try stack.start("logger", "baton-logger", environment: ["BATON_INSTANCE": "logger"])
            try stack.start("scheduler", "baton-scheduler", environment: ["BATON_INSTANCE": "scheduler"])
            try stack.start("algorithm", "baton-algorithm", environment: ["BATON_INSTANCE": "algorithm"])
            try stack.start("processor-1", "baton-processor", ["--name", "processor-1"])
            let allUp = try await stack.waitUntil(timeout: .seconds(60)) {
                let report = try? await Self.status(stack)
                return report?.services.filter { $0.state == "up" }.count == 4
            }
            let afterStart = try? await Self.status(stack)
            #expect(allUp, "\(String(describing: afterStart))")
            var report = try await Self.status(stack)
            let processor = try #require(report.services.first { $0.instance == "processor-1" })
            #expect(processor.service == "processor")
            #expect(processor.pid == stack.process("processor-1").map { Int($0.processIdentifier) })
            #expect(processor.host == ProcessInfo.processInfo.hostName)
            #expect(processor.version == BatonVersion.current)
            #expect(processor.uptimeSeconds != nil)
            #expect(report.jobs.map(\.name) == ["slow"])
            #expect(report.jobs.first?.schedule != nil, "the scheduler adds the schedule")

            // A run in flight, with the demo's progress.
            #expect(try await stack.baton(["trigger", "slow"]).status == 0)
            // Long enough (20 s) that a loaded machine, slow to start it and to answer, still sees it running.
            let inFlight = try await stack.waitUntil(timeout: .seconds(30)) {
                (try? await Self.status(stack))?.runs.contains { $0.state == "running" && ($0.percent ?? 0) > 0 } ?? false
            }
            let inFlightRuns = try? await Self.status(stack).runs
            #expect(inFlight, "\(String(describing: inFlightRuns))")
            // The text view of the same run, asked while it still runs (a loaded machine once took the whole 8 s between
            // the JSON answer above and a single text one).
            var text = try await stack.baton(["status"])
            let shown = try await stack.waitUntil(timeout: .seconds(30)) {
                text = try await stack.baton(["status"])
                return text.status == 0 && text.output.contains("RUNS IN FLIGHT\n  slow@")
            }
            #expect(shown, "\(text.output)")
            let finished = try await stack.waitUntil(timeout: .seconds(60)) {
                (try? await Self.status(stack))?.recent.first?.state == "succeeded"
            }
            #expect(finished)

            // kill -9 of the processor: down within three heartbeats (0.9 s, plus slack), up once restarted.
            kill(try #require(stack.process("processor-1")).processIdentifier, SIGKILL)
            let down = try await stack.waitUntil(timeout: .seconds(5)) {
                (try? await Self.status(stack))?.services.first { $0.instance == "processor-1" }?.state == "down"
            }
            #expect(down)
            try stack.start("processor-1", "baton-processor", ["--name", "processor-1"])
            let upAgain = try await stack.waitUntil(timeout: .seconds(10)) {
                let entry = (try? await Self.status(stack))?.services.first { $0.instance == "processor-1" }
                return entry?.state == "up" && entry?.restarts == 1
            }
            let servicesAgain = try? await Self.status(stack).services
            #expect(upAgain, "\(String(describing: servicesAgain))")

            // The history survives a logger killed without warning.
            report = try await Self.status(stack)
            let history = report.recent
            #expect(history.count == 1)
            let logger = try #require(stack.process("logger"))
            kill(logger.processIdentifier, SIGKILL)
            #expect(try await TestStack.exited(logger))
            let unanswered = try await stack.baton(["status", "--timeout", "500ms"])
            #expect(unanswered.status == 3)
            #expect(unanswered.output.contains("did not answer"), "\(unanswered.output)")
            try stack.start("logger", "baton-logger", environment: ["BATON_INSTANCE": "logger"])
            let back = try await stack.waitUntil(timeout: .seconds(60)) {
                let report = try? await Self.status(stack)
                return report?.services.filter { $0.state == "up" }.count == 4
            }
            #expect(back)
            report = try await Self.status(stack)
            #expect(report.recent == history)
            #expect(report.jobs.first?.lastOutcome == "succeeded")
        }
    }

    /// Malformed queries get an error reply naming the problem, and the logger goes on answering.
    @Test(.timeLimit(.minutes(1)))
    func malformedQueriesAreAnsweredWithAnError() async throws {
        try await TestStack.with("query", yaml: "") { stack in
            try stack.start("logger", "baton-logger")
            let context = Context()
            func ask(_ frames: [Data]) async throws -> StatusReport? {
                let socket = try await AsyncSocket(
                    context: context,
                    configuration: .init(type: .request, connect: ["ipc://\(stack.directory)/query"])
                )
                try await socket.send(frames)
                let reply = try await socket.receive(timeout: .seconds(10))
                await socket.close()
                return try reply.map { try Wire.decode(StatusReport.self, from: $0).message }
            }
            let unknown = try await ask(Wire.encode(StatusQuery(what: "everything")))
            #expect(unknown?.error?.contains("what") == true, "\(String(describing: unknown))")
            let garbage = try await ask([Data("not baton".utf8)])
            #expect(garbage?.error != nil)
            let good = try await ask(Wire.encode(StatusQuery()))
            #expect(good?.error == nil)
            #expect(good?.version == 1)
        }
    }

    /// Known work (three manual runs, queued should one still be running when the next is triggered, as on a
    /// loaded machine), then every service's `/metrics` is scraped over HTTP.
    @Test(.timeLimit(.minutes(2)))
    func metricsCountKnownWork() async throws {
        let yaml = """
            jobs:
              - name: counted
                at: 2100-01-01T00:00:00Z
                builtin: demo
                duration: 10ms
                result_size: 256
                overlap: queue

            """
        let base = try Self.freePortRange(4)
        try await TestStack.with("metrics", yaml: yaml, metricsPorts: base) { stack in
            try stack.startServices(processors: 1)
            let healthy = try await stack.waitUntil(timeout: .seconds(60)) {
                for port in base..<(base + 4) where (try? await Self.get(port, "/healthz"))?.status != 200 { return false }
                return true
            }
            #expect(healthy)
            let health = try await Self.get(base + 3, "/healthz")
            #expect(health.body.contains("\"service\":\"processor\""), "\(health.body)")
            #expect(health.body.contains("\"status\":\"ok\""))
            #expect(try await Self.get(base, "/nothing").status == 404)

            for _ in 0..<3 {
                let triggered = try await stack.baton(["trigger", "counted"])
                #expect(triggered.status == 0, "\(triggered.output)")
            }
            let stored = try await stack.waitUntil(timeout: .seconds(30)) { stack.storedCount() == 3 }
            #expect(stored)

            let scheduler = try await Self.get(base + 1, "/metrics").body
            #expect(Self.value(scheduler, #"baton_runs_fired_total{job="counted",trigger="manual"}"#) == 3, "\(scheduler)")
            let algorithm = try await Self.get(base + 2, "/metrics").body
            #expect(Self.value(algorithm, #"baton_runs_started_total{job="counted"}"#) == 3, "\(algorithm)")
            #expect(Self.value(algorithm, #"baton_runs_succeeded_total{job="counted"}"#) == 3)
            #expect(Self.value(algorithm, #"baton_run_duration_seconds_count{job="counted"}"#) == 3)
            #expect(Self.value(algorithm, #"baton_runs_failed_total{job="counted"}"#) == nil)
            let drained = try await stack.waitUntil(timeout: .seconds(10)) {
                let text = (try? await Self.get(base + 2, "/metrics").body) ?? ""
                return Self.value(text, #"baton_results_backlog{state="pending"}"#) == 0
                    && Self.value(text, #"baton_results_backlog{state="sent"}"#) == 0
            }
            #expect(drained)
            let processor = try await Self.get(base + 3, "/metrics").body
            #expect(Self.value(processor, #"baton_results_processed_total{job="counted",outcome="stored"}"#) == 3, "\(processor)")
            #expect(Self.value(processor, #"baton_handoff_latency_seconds_count"#) == 3)
            #expect(Self.value(processor, #"baton_processing_duration_seconds_count{job="counted"}"#) == 3)
            let logger = try await Self.get(base, "/metrics").body
            #expect((Self.value(logger, "baton_status_events_total") ?? 0) > 10, "\(logger)")
        }
    }

    static func status(_ stack: TestStack) async throws -> StatusReport {
        let result = try await stack.baton(["status", "--json", "--timeout", "2s"])
        guard result.status == 0 else { throw StatusTestError("baton status exited \(result.status): \(result.output)") }
        return try Timestamp.decoder().decode(StatusReport.self, from: Data(result.output.utf8))
    }

    /// The value of one sample line in a Prometheus exposition.
    static func value(_ exposition: String, _ sample: String) -> Double? {
        for line in exposition.split(separator: "\n") where line.hasPrefix(sample + " ") {
            return Double(line.dropFirst(sample.count + 1))
        }
        return nil
    }

    static func get(_ port: Int, _ path: String) async throws -> (status: Int, body: String) {
        var request = URLRequest(url: try #require(URL(string: "http://127.0.0.1:\(port)\(path)")))
        request.timeoutInterval = 2
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
    }

    /// The first of `count` consecutive TCP ports that are free on 127.0.0.1 now.
    static func freePortRange(_ count: Int) throws -> Int {
        for _ in 0..<50 {
            let base = Int.random(in: 20_000...32_000)  // below the ephemeral range other connections hold
            if (base..<(base + count)).allSatisfy({ MetricsServer.isFree(host: "127.0.0.1", port: $0) }) { return base }
        }
        throw StatusTestError("no free port range")
    }
}

struct StatusTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
