import AlgorithmService
import Config
import Foundation
import Glibc
import TestSupport
import LoggerService
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
        /// Wall time of `baton runs --job J --from <a day before the last> --to <the last>`, median, s (the logger's run
        /// history; absent in reports from before it).
        var runsSeconds: Double?
        /// Time to render and send the web view's timeline of a week of the job (`/timeline?span=7d&job=J`), median,
        /// s, and its size in bytes.
        var timelineSeconds: Double?
        var timelineBytes: Int?
    }

    static let webToken = "bench-token-0123456789"

    /// The run history as the logger folds it from a minutely run's events: fired, accepted, run for 40 s, stored.
    static func historyEvents(job: String, base: Int64, range: Range<Int>) -> [StatusEvent] {
        var events: [StatusEvent] = []
        events.reserveCapacity(range.count * 8)
        for index in range {
            let slot = ScaleSeeding.time(base: base, index: index)
            let run = RunID.make(job: job, logicalTime: slot)
            func event(_ type: String, _ seconds: Double, part: Int? = nil, _ attributes: [String: String] = [:]) -> StatusEvent {
                StatusEvent(
                    type: type,
                    source: "algorithm",
                    instance: "algorithm",
                    time: slot.addingTimeInterval(seconds),
                    job: job,
                    run: run,
                    part: part,
                    attributes: attributes
                )
            }
            events += [
                event(EventType.runScheduled, 0.001, ["lateness_ms": "0.4", "trigger": "schedule"]),
                event(EventType.runAccepted, 0.002),
                event(EventType.runStarted, 0.003, ["attempt": "1"]),
                event(EventType.runFinished, 40, ["duration_ms": "39997", "parts": "1", "size": "1024"]),
                event(EventType.stageReady, 40.001, ["stage": "store", "stage_index": "0", "parts": "1"]),
                event(EventType.taskSucceeded, 40.01, part: 0, ["stage_index": "0", "processor": "processor-1"]),
                event(EventType.stageDone, 40.01, ["stage": "store", "stage_index": "0"]),
                event(EventType.pipelineFinished, 40.01, ["stages": "1"]),
            ]
        }
        return events
    }

    /// GET `path` on the loopback with the web token, read to the end: status, bytes, seconds.
    static func webGet(port: Int, _ path: String) -> (status: Int, bytes: Int, seconds: Double) {
        let start = Date()
        guard let fd = RawHTTP.connect(port: port, timeout: 30) else { return (0, 0, 0) }
        defer { close(fd) }
        let request = Array(
            "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(webToken)\r\nConnection: close\r\n\r\n".utf8
        )
        _ = request.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var data = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let got = recv(fd, &buffer, buffer.count, 0)
            guard got > 0 else { break }
            data += buffer[0..<got]
        }
        let seconds = Date().timeIntervalSince(start)
        let head = String(decoding: data.prefix(12), as: UTF8.self)
        return (Int(head.dropFirst(9).prefix(3)) ?? 0, data.count, seconds)
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
                web:
                  enabled: true
                  token: \(Self.webToken)

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
            // The logger's run history, as it would have folded these runs' events (the template run's too).
            let history = try await RunHistory.open(path: RunHistory.path(dataDirectory: stack.dataDirectory))
            let folded = range.lowerBound..<(seeded == total - 1 ? total : seeded)
            let events = Self.historyEvents(job: job, base: base, range: folded)
            for start in stride(from: 0, to: events.count, by: 40_000) {
                try await history.record(Array(events[start..<min(start + 40_000, events.count)]))
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
            var status: [Double] = [], audit: [Double] = [], runs: [Double] = [], timeline: [Double] = []
            var summary = ""
            var clean = false
            var bytes = 0
            let last = ScaleSeeding.time(base: base, index: total - 1)
            let dayBefore = Timestamp.format(last.addingTimeInterval(-86_400))
            let lastText = Timestamp.format(last.addingTimeInterval(1))
            _ = stack.wait(timeout: 30) { Self.webGet(port: stack.basePort + 10, "/login").status == 200 }
            for _ in 0..<3 {
                let statusRun = try stack.cli(["status"])
                status.append(statusRun.seconds)
                let auditRun = try stack.cli(["audit"])
                audit.append(auditRun.seconds)
                summary = auditRun.output.split(separator: "\n").last.map(String.init) ?? ""
                clean = auditRun.status == 0
                let runsRun = try stack.cli(["runs", "--job", job, "--from", dayBefore, "--to", lastText])
                if runsRun.status == 0 { runs.append(runsRun.seconds) }
                let page = Self.webGet(port: stack.basePort + 10, "/timeline?span=7d&job=\(job)&end=\(lastText)")
                if page.status == 200 {
                    timeline.append(page.seconds)
                    bytes = page.bytes
                }
            }
            func median(_ values: [Double]) -> Double? { values.isEmpty ? nil : values.sorted()[values.count / 2] }
            stack.stop()
            results.append(
                ScaleHistory(
                    runs: size,
                    seedSeconds: seedSeconds,
                    statusSeconds: status.sorted()[status.count / 2],
                    auditSeconds: audit.sorted()[audit.count / 2],
                    auditSummary: summary,
                    auditClean: clean,
                    runsSeconds: median(runs),
                    timelineSeconds: median(timeline),
                    timelineBytes: bytes
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
