import AlgorithmService
import Config
import Foundation
import Glibc
import Messaging
import ProcessorService
import SchedulerService
import ServiceKit

extension Scenarios {
    struct ScaleHistory: Codable {
        /// Minutely runs kept (a day is 1,440, a month 43,200), each finished and stored.
        var runs: Int
        var seedSeconds: Double
        /// Wall time of the `baton status` command, median, s.
        var statusSeconds: Double
        /// Wall time of the `baton audit` command, median, s.
        var auditSeconds: Double
        /// What the audit said (its last line), and whether it found no violation.
        var auditSummary: String
        var auditClean: Bool
    }

    /// `baton status` and `baton audit` against the logger, scheduler and algorithm as real processes, over the
    /// last `sizes` minutes' runs of a minutely job (a day, then a month), each run finished and its result
    /// stored. The scheduler's fires are recorded with its own ``SchedulerState/record(_:now:)``, all in one
    /// transaction; the algorithm's ledger and outbox and the processor's result store are copies of one real
    /// run (``ScaleSeeding``). The job is paused so that no new run joins in while the commands are timed.
    func scaleHistory(sizes: [Int], port: Int) async throws -> [ScaleHistory] {
        let job = "minutely"
        let total = sizes.max() ?? 0
        let end = Int64(Date().timeIntervalSince1970) / 60 * 60 - 60
        let base = end - Int64(total - 1) * 60
        let stack = try BenchStack(
            root: root,
            name: "scale-history",
            basePort: port,
            yaml: """
                jobs:
                  - name: \(job)
                    cron: "* * * * *"
                    builtin: demo
                    duration: 0s
                    result_size: 1024

                """
        )
        defer { stack.stop() }
        let configuration = try Configuration.load(path: stack.configPath, environment: [:])
        let template = total - 1
        let templateID = ScaleSeeding.runID(job: job, base: base, index: template)
        try await makeTemplate(
            configuration,
            stack: stack,
            job: job,
            runID: templateID,
            time: ScaleSeeding.time(base: base, index: template)
        )
        var results: [ScaleHistory] = []
        var seeded = total - 1  // indices seeded..<total are in the stores
        for size in sizes.sorted() {
            let started = Date()
            let range = (total - size)..<seeded
            let state = try await SchedulerState(path: SchedulerService.statePath(configuration))
            _ = try await state.record(
                (range.lowerBound..<(seeded == total - 1 ? total : seeded)).map { index in
                    let time = ScaleSeeding.time(base: base, index: index)
                    let request = RunRequest(
                        runID: RunID.make(job: job, logicalTime: time),
                        job: job,
                        logicalTime: time,
                        firedAt: time,
                        trigger: .schedule
                    )
                    return SchedulerState.Record(request, state: .finished)
                }
            )
            try await state.setPaused(job: job, true)
            for path in [AlgorithmService.outboxPath(configuration), configuration.storePath] {
                try ScaleSeeding.copy(path: path, template: templateID, job: job, base: base, range: range)
            }
            seeded = total - size
            let seedSeconds = Date().timeIntervalSince(started)
            say("  scale: \(size) minutely runs kept (seeded in \(formatted(seedSeconds, 1)) s); status and audit")
            try stack.start("logger", "baton-logger")
            usleep(300_000)
            try stack.start("scheduler", "baton-scheduler")
            try stack.start("algorithm", "baton-algorithm")
            // Up when the audit gets its answers (it exits 3 while the scheduler or the algorithm is not there).
            _ = stack.wait(timeout: 60) { (try? stack.cli(["audit"]).status).map { $0 != 3 } ?? false }
            var status: [Double] = [], audit: [Double] = []
            var summary = ""
            var clean = false
            for _ in 0..<3 {
                let statusRun = try stack.cli(["status"])
                status.append(statusRun.seconds)
                let auditRun = try stack.cli(["audit"])
                audit.append(auditRun.seconds)
                summary = auditRun.output.split(separator: "\n").last.map(String.init) ?? ""
                clean = auditRun.status == 0
            }
            stack.stop()
            results.append(
                ScaleHistory(
                    runs: size,
                    seedSeconds: seedSeconds,
                    statusSeconds: status.sorted()[status.count / 2],
                    auditSeconds: audit.sorted()[audit.count / 2],
                    auditSummary: summary,
                    auditClean: clean
                )
            )
        }
        return results
    }

    /// One run of the minutely job made as the services make it: accepted, run, handed off, sent, stored by
    /// the built-in store, acknowledged. Its rows are what every seeded run copies.
    private func makeTemplate(_ configuration: Configuration, stack: BenchStack, job: String, runID: String, time: Date) async throws {
        let outbox = try await Outbox(path: AlgorithmService.outboxPath(configuration))
        let ledger = RunLedger(outbox: outbox)
        let handOff = ResultHandOff(ledger: ledger, doorbell: Doorbell())
        let data = stack.dataDirectory
        try FileManager.default.createDirectory(
            atPath: RawResults.directory(dataDirectory: data, job: job),
            withIntermediateDirectories: true
        )
        let partial = RawResults.partialPath(dataDirectory: data, job: job, runID: runID)
        // About what the demo algorithm writes with result_size 1024: JSON lines.
        let lines = (0..<16).map { #"{"index":\#($0),"value":0.\#(1000 + $0 * 37),"label":"sample \#($0) of the run"}"# }
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: partial))
        _ = try await ledger.accept(RunRequest(runID: runID, job: job, logicalTime: time, firedAt: time, trigger: .schedule))
        _ = try await ledger.markRunning(runID)
        _ = try await handOff.handOff(
            runID: runID,
            job: job,
            partial: partial,
            outputDirectory: RawResults.outputDirectory(partial: partial),
            final: RawResults.resultPath(dataDirectory: data, job: job, runID: runID)
        )
        guard let entry = try await outbox.entry(runID: runID, part: 0) else { throw BenchError("\(runID) was not handed off") }
        try await outbox.markSent(runID: runID, part: 0, leaseDeadline: Date().addingTimeInterval(30))
        let store = try await ResultStore(path: configuration.storePath)
        _ = try await store.store(entry.header, payload: try Data(contentsOf: URL(fileURLWithPath: entry.path)), processor: "processor-1")
        guard try await outbox.markAcked(runID: runID, part: 0, processor: "processor-1") else {
            throw BenchError("\(runID) could not be acknowledged")
        }
    }
}

extension BenchStack {
    /// Runs the `baton` command line on this stack's configuration to its end: exit status, wall time in
    /// seconds, standard output.
    func cli(_ arguments: [String]) throws -> (status: Int32, seconds: Double, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binaries + "/baton")
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["BATON_CONFIG"] = configPath
        process.environment = environment
        let output = directory + "/cli.out"
        _ = FileManager.default.createFile(atPath: output, contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: output)
        process.standardError = FileHandle.nullDevice
        let start = Date()
        try process.run()
        process.waitUntilExit()
        let seconds = Date().timeIntervalSince(start)
        return (process.terminationStatus, seconds, (try? String(contentsOfFile: output, encoding: .utf8)) ?? "")
    }
}
