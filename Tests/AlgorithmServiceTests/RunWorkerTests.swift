import AlgorithmService
import Foundation
import Logging
import Messaging
import Config
import ServiceKit
import ServiceLifecycleTestKit
import TestSupport
import Testing
import ZMQ

/// The run worker without processes: the scheduler's side of `runs` and `reports` is played by the test over
/// `inproc://` sockets, the ledger and outbox are real, and back-offs wait on a manual clock.
struct RunWorkerTests {
    struct Harness {
        let runs: AsyncSocket
        let reports: AsyncSocket
        let bus: Bus
        let outbox: Outbox
        let ledger: RunLedger
        let clock: ManualClock
        let dataDirectory: String

        func send(_ request: RunRequest) async throws { try await runs.send(Wire.encode(request)) }
        func send(_ cancel: RunCancel) async throws { try await runs.send(Wire.encode(cancel)) }

        /// The next report about `runID` (reports about others are passed over).
        func report(_ runID: String) async throws -> RunReport {
            while true {
                let report = try Wire.decode(RunReport.self, from: try await receive(reports)).message
                if report.runID == runID { return report }
            }
        }
    }

    static func withWorker(
        _ jobs: [Configuration.Job],
        drain: Duration = .seconds(30),
        _ body: (Harness, Task<Void, any Error>) async throws -> Void
    ) async throws {
        let scratch = Scratch("worker")
        defer { scratch.remove() }
        let context = Context()
        let bus = try await Bus(context: context)
        let outbox = try await Outbox(path: scratch.directory + "/algorithm/outbox.sqlite")
        let ledger = RunLedger(outbox: outbox)
        var configuration = Configuration()
        configuration.dataDirectory = scratch.directory
        configuration.jobs = jobs
        configuration.algorithm.drain = drain
        let (runsEndpoint, reportsEndpoint) = ("inproc://runs-\(UUID().uuidString)", "inproc://reports-\(UUID().uuidString)")
        let scheduler = try await AsyncSocket(context: context, configuration: .init(type: .push, bind: [runsEndpoint]))
        let reports = try await AsyncSocket(context: context, configuration: .init(type: .pull, bind: [reportsEndpoint]))
        let workerRuns = try await AsyncSocket(context: context, configuration: .init(type: .pull, connect: [runsEndpoint]))
        let workerReports = try await AsyncSocket(context: context, configuration: .init(type: .push, connect: [reportsEndpoint]))
        let clock = ManualClock()
        let worker = RunWorker(
            configuration: configuration,
            runs: workerRuns.channel.inbound,
            reports: workerReports.channel.outbound,
            ledger: ledger,
            doorbell: Doorbell(),
            publisher: bus.publisher,
            logger: Logger(label: "test"),
            clock: clock
        )
        let running = Task { try await worker.run() }
        let harness = Harness(
            runs: scheduler,
            reports: reports,
            bus: bus,
            outbox: outbox,
            ledger: ledger,
            clock: clock,
            dataDirectory: scratch.directory
        )
        do {
            try await body(harness, running)
        } catch {
            running.cancel()
            throw error
        }
        running.cancel()
        _ = try? await running.value
        for socket in [scheduler, reports, workerRuns, workerReports] { await socket.close() }
        await bus.close()
    }

    static func request(_ job: String, _ seconds: Double = 60) -> RunRequest {
        let slot = Date(timeIntervalSince1970: seconds)
        return RunRequest.scheduled(job: job, slot: slot, firedAt: Date())
    }

    /// A run goes accepted → running → finished; its sealed result is in the outbox with its checksum.
    @Test(.timeLimit(.minutes(5)))
    func aRunIsRunAndItsResultHandedOff() async throws {
        let job = Configuration.Job(name: "demo", every: .seconds(60), algorithm: .demo(duration: .zero, resultSize: 2000))
        try await Self.withWorker([job]) { harness, _ in
            let request = Self.request("demo")
            try await harness.send(request)
            #expect(try await harness.report(request.runID).state == .accepted)
            #expect(try await harness.report(request.runID).state == .running)
            #expect(try await harness.report(request.runID).state == .finished)
            let finished = try await harness.bus.next(EventType.runFinished)
            let entry = try #require(try await harness.outbox.entry(runID: request.runID, part: 0))
            let bytes = try Data(contentsOf: URL(fileURLWithPath: entry.path))
            #expect(entry.path == RawResults.resultPath(dataDirectory: harness.dataDirectory, job: "demo", runID: request.runID))
            #expect(bytes.count >= 2000 && SHA256.hex(of: bytes) == entry.header.sha256)
            #expect(finished.attributes?["sha256"] == entry.header.sha256)
            // The same request again is answered with the run's state, and nothing runs twice.
            try await harness.send(request)
            #expect(try await harness.report(request.runID).state == .finished)
            #expect(try await harness.ledger.run(request.runID)?.state == .finished)
        }
    }

    /// A request for a job this algorithm does not know fails at once, in the words users know.
    @Test(.timeLimit(.minutes(5)))
    func anUnknownJobFails() async throws {
        try await Self.withWorker([]) { harness, _ in
            let request = Self.request("ghost")
            try await harness.send(request)
            #expect(try await harness.report(request.runID).state == .accepted)
            let failed = try await harness.report(request.runID)
            #expect(failed.state == .failed)
            #expect(failed.detail == "unknown job \"ghost\": not in this algorithm's configuration")
        }
    }

    /// A failing command is tried again after its back-off, which waits on the injected clock (no real
    /// second passes), and fails the run after its last attempt, with the command's stderr in the reason.
    @Test(.timeLimit(.minutes(5)))
    func aFailedAttemptIsRetriedAfterItsBackOffThenFails() async throws {
        var job = Configuration.Job(
            name: "flaky",
            every: .seconds(60),
            algorithm: .command(.init(argv: ["sh", "-c", "echo broken >&2; exit 3"]))
        )
        job.retries = 1
        try await Self.withWorker([job]) { harness, _ in
            let request = Self.request("flaky")
            try await harness.send(request)
            #expect(try await harness.report(request.runID).state == .accepted)
            #expect(try await harness.report(request.runID).state == .running)
            let retry = try await harness.bus.next(EventType.runFailed)
            #expect(retry.attributes?["retry"] == "true" && retry.attributes?["attempt"] == "1")
            await harness.clock.waitForSleeper()
            harness.clock.advance(by: .seconds(1))
            #expect(try await harness.report(request.runID).state == .running)
            let failed = try await harness.report(request.runID)
            #expect(failed.state == .failed)
            #expect(failed.detail?.contains("status 3") == true && failed.detail?.contains("broken") == true)
            #expect(try await harness.ledger.run(request.runID)?.state == .failed)
        }
    }

    /// A cancel stops a running run: it ends `cancelled`, with the reason, and leaves no partial file.
    @Test(.timeLimit(.minutes(5)))
    func aCancelStopsARunningRun() async throws {
        let job = Configuration.Job(name: "slow", every: .seconds(60), algorithm: .demo(duration: .seconds(600), resultSize: 10))
        try await Self.withWorker([job]) { harness, _ in
            let request = Self.request("slow")
            try await harness.send(request)
            #expect(try await harness.report(request.runID).state == .accepted)
            #expect(try await harness.report(request.runID).state == .running)
            try await harness.send(RunCancel(runID: request.runID, reason: "replaced by slow@later"))
            let cancelled = try await harness.report(request.runID)
            #expect(cancelled.state == .cancelled && cancelled.detail == "replaced by slow@later")
            #expect(try await harness.ledger.run(request.runID)?.state == .cancelled)
            let folder = RawResults.directory(dataDirectory: harness.dataDirectory, job: "slow")
            #expect(try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".partial") }.isEmpty)
        }
    }

    /// On graceful shutdown a running run gets the drain (waited on the worker's clock), then is stopped: it
    /// stays `running` in the ledger, to run again at the next start, and leaves no partial file.
    @Test(.timeLimit(.minutes(5)))
    func aRunStillRunningAfterTheDrainIsStoppedAndKeptForTheNextStart() async throws {
        let job = Configuration.Job(name: "slow", every: .seconds(60), algorithm: .demo(duration: .seconds(600), resultSize: 10))
        try await testGracefulShutdown { trigger in
            try await Self.withWorker([job], drain: .seconds(10)) { harness, running in
                let request = Self.request("slow")
                try await harness.send(request)
                #expect(try await harness.report(request.runID).state == .accepted)
                #expect(try await harness.report(request.runID).state == .running)
                trigger.triggerGracefulShutdown()
                await harness.clock.waitForSleeper()
                harness.clock.advance(by: .seconds(10))
                try await running.value
                #expect(try await harness.ledger.run(request.runID)?.state == .running)
                let folder = RawResults.directory(dataDirectory: harness.dataDirectory, job: "slow")
                #expect(try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".partial") }.isEmpty)
            }
        }
    }
}
