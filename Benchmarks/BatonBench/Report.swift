import Foundation
import Messaging

/// Everything one run measured, the targets and whether each was met.
struct Report: Codable {
    struct Machine: Codable {
        var cpu: String
        var cores: Int
        var memoryGiB: Double
        var kernel: String
        var disk: String

        static func current(disk path: String) -> Machine {
            let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
            let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }?.split(separator: ":").last
            var name = utsname()
            uname(&name)
            let release = withUnsafeBytes(of: &name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            let mounts = (try? String(contentsOfFile: "/proc/mounts", encoding: .utf8)) ?? ""
            var mount: [Substring]?
            for line in mounts.split(separator: "\n") {
                let fields = line.split(separator: " ")
                guard fields.count > 2, path.hasPrefix(String(fields[1])) else { continue }
                if fields[1].count > (mount?[1].count ?? -1) { mount = fields }
            }
            return Machine(
                cpu: model.map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown",
                cores: ProcessInfo.processInfo.activeProcessorCount,
                memoryGiB: (Double(ProcessInfo.processInfo.physicalMemory) / Double(1 << 30) * 10).rounded() / 10,
                kernel: release,
                disk: mount.map { "\($0[0]) (\($0[2])) at \($0[1])" } ?? "unknown"
            )
        }
    }

    struct Handoff: Codable {
        var baton: Sample?
        /// The part of Baton's latency after the sender handed the result to its socket.
        var transit: Sample?
        var baseline: Sample?
        var ratioP50: Double? {
            guard let baton, let baseline, baseline.p50 > 0 else { return nil }
            return baton.p50 / baseline.p50
        }
        enum CodingKeys: String, CodingKey { case baton, transit, baseline, ratioP50 }
        init(baton: Sample?, transit: Sample?, baseline: Sample?) {
            self.baton = baton
            self.transit = transit
            self.baseline = baseline
        }
        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            baton = try container.decodeIfPresent(Sample.self, forKey: .baton)
            transit = try container.decodeIfPresent(Sample.self, forKey: .transit)
            baseline = try container.decodeIfPresent(Sample.self, forKey: .baseline)
        }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encodeIfPresent(baton, forKey: .baton)
            try container.encodeIfPresent(transit, forKey: .transit)
            try container.encodeIfPresent(baseline, forKey: .baseline)
            try container.encodeIfPresent(ratioP50, forKey: .ratioP50)
        }
    }

    struct ThroughputFigures: Codable {
        var baton: Scenarios.Throughput?
        /// Runs of many small parts: tasks/s.
        var batched: Scenarios.Throughput?
        var zmqMessagesPerSecond: Double = 0
        var sqliteBatchedRowsPerSecond: Double = 0
        var sqliteSingleRowsPerSecond: Double = 0
    }

    struct Target: Codable {
        var name: String
        var target: String
        var measured: String
        var met: Bool
    }

    var version = BatonVersion.current
    var date = Date()
    var machine: Machine
    var quick: Bool
    var seconds: Double = 0
    var handoff: [String: Handoff] = [:]
    var throughput = ThroughputFigures()
    var handoffCost: [String: Sample?] = [:]
    var timer: Scenarios.Timer?
    var idle: [String: Scenarios.Idle] = [:]
    /// A Swift process of the same build that only waits: what the runtime alone costs at rest.
    var idleFloor: Scenarios.Idle?
    var recovery: Scenarios.Recovery?
    var pipeline: [Scenarios.PipelineParallelism] = []
    var hosts: [Scenarios.HostsThroughput] = []
    var scale: Scenarios.Scale?
    var ingest: [Scenarios.Ingest] = []
    var checksums: [Scenarios.Checksum] = []
    var targets: [Target] = []

    mutating func evaluate() {
        targets = []
        for label in ["64B", "1MiB"] {
            guard let entry = handoff[label], let ratio = entry.ratioP50, let baton = entry.baton else { continue }
            targets.append(
                .init(
                    name: "hand-off p50, \(label)",
                    target: "≤ 1.5 × raw libzmq one-way",
                    measured: "\(formatted(baton.p50)) ms = \(formatted(ratio, 1)) ×",
                    met: ratio <= 1.5
                )
            )
        }
        if let baton = throughput.batched ?? throughput.baton {
            targets.append(
                .init(
                    name: "durable throughput",
                    target: "≥ 50,000 small tasks/s",
                    measured: "\(Int(baton.resultsPerSecond)) /s (\(baton.partsPerRun) per run)",
                    met: baton.resultsPerSecond >= 50_000
                )
            )
        }
        if let timer, let lateness = timer.latenessMs {
            targets.append(
                .init(
                    name: "fire lateness p99, drift",
                    target: "≤ 1 ms, no drift",
                    measured: "p99 \(formatted(lateness.p99)) ms, drift \(formatted(timer.driftMs)) ms",
                    met: lateness.p99 <= 1 && abs(timer.driftMs) < 1
                )
            )
        }
        for (name, idle) in idle.sorted(by: { $0.key < $1.key }) {
            targets.append(
                .init(
                    name: "idle \(name)",
                    target: "≤ 1 ms CPU / 10 s, ≤ 15 MiB",
                    measured: "\(formatted(idle.cpuMsPer10s, 2)) ms, \(formatted(idle.rssMiB, 1)) MiB",
                    met: idle.cpuMsPer10s <= 1 && idle.rssMiB <= 15
                )
            )
        }
        if let recovery {
            let back = recovery.secondsToFullRateAfterRestart
            targets.append(
                .init(
                    name: "recovery",
                    target: "all stored once, full rate ≤ 1 s after restart",
                    measured:
                        "missing \(recovery.missing), full rate after \(back.map { formatted($0, 2) + " s" } ?? "never (in the run)")",
                    met: recovery.missing == 0 && (back ?? .infinity) <= 1
                )
            )
            targets.append(
                .init(
                    name: "recovery, last stored",
                    target: "≤ 1 s past the survivors' share",
                    measured:
                        "\(formatted(recovery.secondsToAllStored, 2)) s after the kill, ideal \(formatted(recovery.idealSecondsToAllStored, 2)) s: "
                        + "\(recovery.secondsPastIdeal >= 0 ? "+" : "")\(formatted(recovery.secondsPastIdeal, 2)) s",
                    met: recovery.missing == 0 && recovery.secondsPastIdeal <= 1
                )
            )
        }
        if !pipeline.isEmpty {
            let ratios = pipeline.map { $0.ratio ?? .infinity }
            targets.append(
                .init(
                    name: "pipeline parallelism",
                    target: "time to merge ≤ 1.25 × ideal, 1 to 8 processors",
                    measured: ratios.map { formatted($0, 2) + " ×" }.joined(separator: ", "),
                    met: ratios.allSatisfy { $0 <= 1.25 }
                )
            )
        }
        targets += hostsTargets()
        targets += ingestTargets()
    }

    func table() -> String {
        var lines: [String] = []
        func row(_ cells: String...) { lines.append(cells.joined(separator: " | ")) }
        lines.append("Baton \(version) benchmark, \(machine.cpu), \(machine.cores) cores, \(machine.disk)\(quick ? " (QUICK)" : "")")
        lines.append("")
        row("hand-off latency (ms)", "Baton p50", "Baton p99", "of it in transit p50", "libzmq p50", "libzmq p99", "ratio p50")
        for label in ["64B", "1MiB"] {
            guard let entry = handoff[label] else { continue }
            row(
                label,
                entry.baton.map { formatted($0.p50) } ?? "-",
                entry.baton.map { formatted($0.p99) } ?? "-",
                entry.transit.map { formatted($0.p50) } ?? "-",
                entry.baseline.map { formatted($0.p50) } ?? "-",
                entry.baseline.map { formatted($0.p99) } ?? "-",
                entry.ratioP50.map { formatted($0, 1) } ?? "-"
            )
        }
        lines.append("")
        if let baton = throughput.baton {
            row("throughput", "Baton stored/s", "handed off/s", "libzmq msg/s", "SQLite rows/s (1000/txn)", "SQLite rows/s (1/txn)")
            row(
                "64B",
                "\(Int(baton.resultsPerSecond))",
                "\(Int(baton.handedOffPerSecond))",
                "\(Int(throughput.zmqMessagesPerSecond))",
                "\(Int(throughput.sqliteBatchedRowsPerSecond))",
                "\(Int(throughput.sqliteSingleRowsPerSecond))"
            )
            let cpu = baton.cpuMsPerResult.sorted { $0.key < $1.key }.map { "\($0.key) \(formatted($0.value))" }
            lines.append("CPU ms per stored result: " + cpu.joined(separator: ", "))
            if let batched = throughput.batched {
                row(
                    "64B × \(batched.partsPerRun) per run",
                    "\(Int(batched.resultsPerSecond))",
                    "\(Int(batched.handedOffPerSecond))",
                    "",
                    "",
                    ""
                )
                let cpu = batched.cpuMsPerResult.sorted { $0.key < $1.key }.map { "\($0.key) \(formatted($0.value))" }
                lines.append("CPU ms per stored task: " + cpu.joined(separator: ", "))
                if let producers = batched.producerCpuMsPerPart {
                    lines.append(
                        "of the algorithm's, writing each part's file as a user's program would (measured apart): \(formatted(producers))"
                    )
                }
            }
            lines.append("")
        }
        row("algorithm hand-off cost (ms)", "p50", "p99", "max")
        for label in ["1KiB", "1MiB", "64MiB"] {
            guard let entry = handoffCost[label], let sample = entry else { continue }
            row(label, formatted(sample.p50), formatted(sample.p99), formatted(sample.max))
        }
        lines.append("")
        if let timer, let lateness = timer.latenessMs {
            row(
                "timer, 100 ms × \(timer.fires) (ms)",
                "p50 \(formatted(lateness.p50))",
                "p99 \(formatted(lateness.p99))",
                "max \(formatted(lateness.max))",
                "drift \(formatted(timer.driftMs))"
            )
            lines.append("")
        }
        row("idle", "CPU ms / 10 s", "RSS MiB", "of it heap+stacks MiB")
        for (name, idle) in idle.sorted(by: { $0.key < $1.key }) {
            row(name, formatted(idle.cpuMsPer10s, 2), formatted(idle.rssMiB, 1), formatted(idle.anonymousMiB, 1))
        }
        if !idle.isEmpty {
            let all = idle.values
            row(
                "total (\(all.count) services)",
                formatted(all.map(\.cpuMsPer10s).reduce(0, +), 2),
                formatted(all.map(\.rssMiB).reduce(0, +), 1),
                formatted(all.map(\.anonymousMiB).reduce(0, +), 1)
            )
        }
        if let floor = idleFloor {
            row(
                "baseline: a Swift process that only waits",
                formatted(floor.cpuMsPer10s, 2),
                formatted(floor.rssMiB, 1),
                formatted(floor.anonymousMiB, 1)
            )
        }
        lines.append("")
        if let recovery {
            row(
                "recovery",
                "results \(recovery.results)",
                "killed at \(recovery.storedAtKill) stored",
                "lease \(formatted(recovery.lease, 1)) s"
            )
            row(
                "",
                "all stored \(formatted(recovery.secondsToAllStored, 2)) s after the kill (ideal \(formatted(recovery.idealSecondsToAllStored, 2)) s)",
                "missing \(recovery.missing)",
                "duplicates \(recovery.duplicateDeliveries)",
                "redelivered \(recovery.redeliveries)"
            )
            row(
                "",
                "rate before \(Int(recovery.ratePerSecondBeforeKill))/s",
                "full rate \(recovery.secondsToFullRateAfterRestart.map { formatted($0, 2) + " s" } ?? "not reached") after restart"
            )
            lines.append("")
        }
        if !pipeline.isEmpty {
            row(
                "pipeline parallelism",
                "processors",
                "to merge s",
                "ideal s",
                "ratio",
                "to stored s",
                "merge s",
                "run again",
                "tasks per processor"
            )
            for entry in pipeline {
                row(
                    "\(entry.parts) × \(formatted(entry.partSeconds, 1)) s",
                    "\(entry.processors)",
                    entry.secondsToMerge.map { formatted($0, 2) } ?? "-",
                    formatted(entry.idealSeconds, 2),
                    entry.ratio.map { formatted($0, 2) } ?? "-",
                    entry.secondsToStored.map { formatted($0, 2) } ?? "-",
                    entry.mergeSeconds.map { formatted($0, 2) } ?? "-",
                    "\(entry.startedAgain)",
                    entry.tasksPerProcessor.sorted { $0.key < $1.key }.map { "\($0.value)" }.joined(separator: " ")
                )
            }
            lines.append("")
        }
        lines += hostsTable()
        lines += ingestTable()
        lines += scaleTable()
        row("target", "wanted", "measured", "met")
        for target in targets { row(target.name, target.target, target.measured, target.met ? "yes" : "NO") }
        lines.append("")
        lines.append("total \(formatted(seconds, 0)) s")
        return lines.joined(separator: "\n")
    }
}
