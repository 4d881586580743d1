import AlgorithmService
import Config
import Foundation
import Messaging

extension Scenarios {
    // MARK: 9. Scale curves: costs as the kept history grows

    struct ScaleKept: Codable {
        /// Finished tasks (and runs) kept in the outbox when measured.
        var tasks: Int
        /// How long seeding up to this size took (copies of a real finished run, see ``ScaleSeeding``).
        var seedSeconds: Double
        /// ``ResultHandOff`` of a 1 KiB result, ms.
        var handOffMs: Sample?
        /// Median time of each algorithm-side query, ms.
        var queryMs: [String: Double]
    }

    /// The queries timed at each size, in the order the table shows them.
    static let scaleQueries = [
        "backlog", "next due", "unfinished runs", "results --run", "results 1 h", "stages --run", "counts", "runs (audit)",
    ]

    /// Hand-off cost and the algorithm's queries with `sizes` finished tasks kept (one run, one part, acknowledged,
    /// one a minute), grown in place: the outbox of the first size is extended to the next.
    func scaleKept(sizes: [Int], port: Int) async throws -> [ScaleKept] {
        let stack = try BenchStack(root: root, name: "scale-kept", basePort: port, yaml: "")
        defer { stack.stop() }
        let pipeline = try await Pipeline(stack: stack, lease: .seconds(30), deliver: false)
        let outboxPath = AlgorithmService.outboxPath(try Configuration.load(path: stack.configPath, environment: [:]))
        let control = AlgorithmControl(outbox: pipeline.outbox, ledger: pipeline.ledger)
        let job = "scale"
        let base: Int64 = 1_600_000_000 / 60 * 60
        let payload = Data((0..<1024).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        // The template: a real run, accepted, running, handed off, sent and acknowledged.
        let template = ScaleSeeding.runID(job: job, base: base, index: -1)
        _ = try await handOff(pipeline, runID: template, job: job, time: ScaleSeeding.time(base: base, index: -1), payload: payload)
        try await settle(pipeline.outbox, runID: template)
        var results: [ScaleKept] = []
        var seeded = 0
        for size in sizes {
            let started = Date()
            try ScaleSeeding.copy(path: outboxPath, template: template, job: job, base: base, range: seeded..<size)
            seeded = size
            let seedSeconds = Date().timeIntervalSince(started)
            say("  scale: \(size) finished tasks kept (seeded in \(formatted(seedSeconds, 1)) s)")
            var handOffs: [Double] = []
            for sample in 0..<20 {
                let runID = "cost@\(Timestamp.format(Date(timeIntervalSince1970: 1_900_000_000)))~\(size + sample + 2)"
                let duration = try await handOff(
                    pipeline,
                    runID: runID,
                    job: "cost",
                    time: Date(timeIntervalSince1970: 1_900_000_000),
                    payload: payload
                )
                handOffs.append(duration / .milliseconds(1))
                try await settle(pipeline.outbox, runID: runID)
            }
            let middle = size / 2
            let run = ScaleSeeding.runID(job: job, base: base, index: middle)
            let hour = (ScaleSeeding.time(base: base, index: middle), ScaleSeeding.time(base: base, index: middle + 59))
            var queries: [String: Double] = [:]
            queries["backlog"] = try await Self.median { _ = try await pipeline.outbox.backlog() }
            queries["next due"] = try await Self.median { _ = try await pipeline.outbox.nextDue() }
            queries["unfinished runs"] = try await Self.median { _ = try await pipeline.ledger.unfinished() }
            queries["results --run"] = try await Self.median {
                let parts = try await control.handle(AlgorithmRequest(command: .results, run: run)).reply.parts ?? []
                precondition(parts.count == 1, "results --run \(run): \(parts.count) parts")
            }
            queries["results 1 h"] = try await Self.median {
                let parts =
                    try await control.handle(AlgorithmRequest(command: .results, job: job, from: hour.0, to: hour.1)).reply.parts ?? []
                precondition(parts.count == 60, "results over an hour: \(parts.count) parts")
            }
            queries["stages --run"] = try await Self.median { _ = try await control.handle(AlgorithmRequest(command: .stages, run: run)) }
            queries["counts"] = try await Self.median { _ = try await pipeline.outbox.counts() }
            queries["runs (audit)"] = try await Self.median { _ = try await control.handle(AlgorithmRequest(command: .runs)) }
            results.append(ScaleKept(tasks: size, seedSeconds: seedSeconds, handOffMs: Sample(handOffs), queryMs: queries))
        }
        await pipeline.stop()
        return results
    }

    /// A 1 KiB result handed off as the algorithm does it (file written, run accepted and running, then the
    /// hand-off); returns the hand-off's own time.
    private func handOff(_ pipeline: Pipeline, runID: String, job: String, time: Date, payload: Data) async throws -> Duration {
        let data = pipeline.stack.dataDirectory
        try FileManager.default.createDirectory(
            atPath: RawResults.directory(dataDirectory: data, job: job),
            withIntermediateDirectories: true
        )
        let partial = RawResults.partialPath(dataDirectory: data, job: job, runID: runID)
        try payload.write(to: URL(fileURLWithPath: partial))
        try await pipeline.begin(runID: runID, job: job, time: time)
        return try await pipeline.handOff.handOff(
            runID: runID,
            job: job,
            partial: partial,
            outputDirectory: RawResults.outputDirectory(partial: partial),
            final: RawResults.resultPath(dataDirectory: data, job: job, runID: runID)
        ).duration
    }

    /// Sent and acknowledged, as a processor's ack leaves a task.
    private func settle(_ outbox: Outbox, runID: String) async throws {
        try await outbox.markSent(runID: runID, part: 0, leaseDeadline: Date().addingTimeInterval(30))
        guard try await outbox.markAcked(runID: runID, part: 0, processor: "processor-1") else {
            throw BenchError("\(runID) could not be acknowledged")
        }
    }

    /// The median of up to 7 timings of `body` in ms, fewer when they add up to over 3 s.
    static func median(_ body: () async throws -> Void) async throws -> Double {
        let clock = ContinuousClock()
        var samples: [Double] = []
        let start = clock.now
        while samples.count < 7 && (samples.count < 1 || clock.now - start < .seconds(3)) {
            let begin = clock.now
            try await body()
            samples.append((clock.now - begin) / .milliseconds(1))
        }
        return samples.sorted()[samples.count / 2]
    }
}
