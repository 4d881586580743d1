import ArgumentParser
import Foundation
import TestSupport

/// `baton-bench`: Baton's benchmark suite. Every figure is measured next to a raw libzmq or SQLite baseline
/// in the same run, so ratios hold on a noisy machine. Targets are checked here, never in tests.
@main
struct BatonBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "baton-bench",
        abstract:
            "Measure hand-off latency, durable throughput, hand-off cost, timer accuracy, idle cost, recovery, pipeline parallelism, throughput over hosts, store ingest and scale curves.",
        discussion: "Build in release mode first (make bench does both). Uses TCP ports from --port up to --port+800 on 127.0."
            + "0.1 and the folder --dir on the disk being measured."
    )

    @Option(help: "Where the scenarios' data goes (deleted first).")
    var dir = ".bench"

    @Option(help: "The JSON report.")
    var output = "bench.json"

    @Option(help: "First TCP port used.")
    var port = 27600

    @Flag(help: "Shorter runs (a smoke test of the suite; the figures are not the reference ones).")
    var quick = false

    @Option(
        help:
            "Only these parts, comma-separated: latency, throughput, cost, timer, idle, recovery, pipeline, hosts, ingest, scale (or one of its curves: scale-kept, scale-parts, scale-large, scale-history)."
    )
    var only: String?

    @Flag(help: "Keep the scenarios' folders (logs, databases) for a look afterwards.")
    var keep = false

    /// The idle scenario's baseline: this process does nothing but wait in a Swift task until killed.
    @Flag(help: .hidden)
    var idleFloor = false

    func wanted(_ part: String) -> Bool { only.map { $0.split(separator: ",").contains(Substring(part)) } ?? true }

    func run() async throws {
        if idleFloor {
            // What any Swift service on Linux costs at rest: the runtime's threads and timers, nothing of Baton's.
            while true { try await Task.sleep(for: .seconds(86_400)) }
        }
        let root = URL(fileURLWithPath: dir).standardizedFileURL.path
        try? FileManager.default.removeItem(atPath: root)
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let scenarios = Scenarios(root: root, quick: quick) { print($0) }
        var report = Report(machine: .current(disk: root), quick: quick)
        let started = Date()
        let latencyCount = quick ? 100 : 500

        // A processor stored a 1 MiB demo result (about 8,000 JSON lines) in about 150 ms before issue 15 (now
        // SQLite's own rate, 20-50 ms here), so 1 MiB results come every 250 ms: the processor must be idle when
        // the next one arrives. The baseline uses the same pace.
        for (index, (label, size, pace)) in [("64B", 64, 10), ("1MiB", 1 << 20, 250)].enumerated() where wanted("latency") {
            let count = size > 1024 ? latencyCount / 5 : latencyCount
            print("hand-off latency, \(label) every \(pace) ms: raw libzmq baseline")
            let baseline = try Baselines.pushPullLatency(size: size, messages: count, pace: .milliseconds(pace), port: port + 2 + index)
            print("hand-off latency, \(label) every \(pace) ms: Baton")
            let baton = try scenarios.handoffLatency(size: size, every: pace, count: count, port: port + 100 + 20 * index)
            report.handoff[label] = .init(baton: Sample(baton.total), transit: Sample(baton.transit), baseline: Sample(baseline))
        }

        if wanted("throughput") {
            print("throughput: raw libzmq PUSH→PULL, 64-byte messages")
            report.throughput.zmqMessagesPerSecond = try Baselines.pushPullThroughput(size: 64, seconds: quick ? 1 : 3, port: port + 1)
            print("throughput: SQLite inserts, batches of 1000 and single-row transactions")
            report.throughput.sqliteBatchedRowsPerSecond = try Baselines.sqliteInserts(
                directory: root,
                batch: 1000,
                size: 64,
                seconds: quick ? 1 : 3
            )
            report.throughput.sqliteSingleRowsPerSecond = try Baselines.sqliteInserts(
                directory: root,
                batch: 1,
                size: 64,
                seconds: quick ? 1 : 3
            )
            let seconds = quick ? 5.0 : 20.0
            print("throughput: Baton, \(Int(seconds)) s of 64-byte results, 2 processors")
            report.throughput.baton = try await scenarios.throughput(seconds: seconds, processors: 2, producers: 2, port: port + 200)
            // Many small tasks: runs of 1,000 parts of 64 bytes, what issue 15's 50,000 tasks/s is about.
            print("throughput: Baton, \(Int(seconds)) s of runs of 1000 64-byte parts, 2 processors")
            report.throughput.batched = try await scenarios.throughput(
                seconds: seconds,
                processors: 2,
                producers: 2,
                partsPerRun: 1000,
                port: port + 210
            )
        }

        for (label, size, count) in [("1KiB", 1024, 50), ("1MiB", 1 << 20, 20), ("64MiB", 64 << 20, quick ? 2 : 5)] where wanted("cost") {
            print("algorithm hand-off cost, \(label)")
            report.handoffCost[label] = Sample(
                try await scenarios.handoffCost(size: size, count: quick ? min(count, 10) : count, port: port + 220)
            )
        }

        if wanted("timer") {
            let fires = quick ? 50 : 300
            print("timer: \(fires) fires at 100 ms")
            report.timer = try scenarios.timer(fires: fires, port: port + 240)
        }
        if wanted("idle") {
            print("idle cost: \(quick ? 5 : 20) s")
            (report.idle, report.idleFloor) = try scenarios.idle(seconds: quick ? 5 : 20, port: port + 260)
        }
        if wanted("recovery") {
            let results = quick ? 2000 : 10_000
            print("recovery: kill -9 of a processor with \(results) results in flight")
            report.recovery = try await scenarios.recovery(results: results, port: port + 280)
        }

        // 64 parts of 0.5 s each (shorter with --quick) on 1, 2, 4 and 8 processors: how close to ideal the
        // hand-out of per-part tasks gets.
        for (index, processors) in [1, 2, 4, 8].enumerated() where wanted("pipeline") {
            let parts = quick ? 16 : 64
            print("pipeline parallelism: \(parts) parts of 0.5 s, \(processors) processors")
            report.pipeline.append(
                try scenarios.pipelineParallelism(processors: processors, parts: parts, partSeconds: 0.5, port: port + 400 + 50 * index)
            )
        }

        // A stage of fixed cost (0.05 s per part) on 2, 4 and 8 processors spread over two hosts (network
        // namespaces, root only), the hub on a third: how throughput scales with processors on other hosts.
        if wanted("hosts") {
            if let reason = TestHosts.unavailable {
                print("throughput over hosts: skipped, \(reason)")
            } else {
                for (index, processors) in [2, 4, 8].enumerated() {
                    let parts = (quick ? 25 : 100) * processors
                    print("throughput over hosts: \(parts) parts of 0.05 s, \(processors) processors on two hosts")
                    report.hosts.append(
                        try await scenarios.hostsThroughput(
                            processors: processors,
                            parts: parts,
                            partSeconds: 0.05,
                            port: port + 600 + 20 * index
                        )
                    )
                }
            }
        }

        // The built-in store taking 1 MiB and 16 MiB of JSON lines (short and long lines) next to SQLite alone, and
        // the checksum of 1 MiB and 64 MiB next to sha256sum.
        if wanted("ingest") {
            let runs = quick ? 3 : 9
            for (label, size, lineSize) in [("1MiB × 100B", 1 << 20, 100), ("1MiB × 1KiB", 1 << 20, 1024), ("16MiB × 100B", 16 << 20, 100)]
                + [("16MiB × 1KiB", 16 << 20, 1024)]
            {
                print("store ingest, \(label) lines")
                report.ingest.append(
                    try await scenarios.ingest(label: label, size: size, lineSize: lineSize, runs: size > 1 << 20 ? max(3, runs / 3) : runs)
                )
            }
            for (label, size) in [("1MiB", 1 << 20), ("64MiB", 64 << 20)] {
                print("checksum, \(label)")
                report.checksums.append(try scenarios.checksum(label: label, size: size, runs: quick ? 3 : 5))
            }
        }

        // How each cost grows with the work: history kept, parts per run, result size (docs/PERFORMANCE.md,
        // "Scale curves").
        let curves = ["kept", "parts", "large", "history"].filter { wanted("scale") || wanted("scale-\($0)") }
        if !curves.isEmpty {
            report.scale = try await scenarios.scale(port: port + 700, parts: Set(curves))
        }

        report.seconds = Date().timeIntervalSince(started)
        report.evaluate()
        print("")
        print(report.table())
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        try encoder.encode(report).write(to: URL(fileURLWithPath: output))
        print("JSON: \(output)")
        if !keep { try? FileManager.default.removeItem(atPath: root) }
    }
}
