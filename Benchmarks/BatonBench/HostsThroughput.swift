import Foundation
import Glibc
import Messaging
import TestSupport

extension Scenarios {
    // MARK: 8. Throughput over hosts

    struct HostsThroughput: Codable {
        var processors: Int
        var parts: Int
        var partSeconds: Double
        /// Parts through the stage per second: parts ÷ (the stage's `stage.done` − the run's hand-off).
        var partsPerSecond: Double?
        /// From the hand-off to the last part stored (`pipeline.finished`).
        var secondsToStored: Double?
        /// processors ÷ part time: what the processors could do if the hub cost nothing.
        var idealPartsPerSecond: Double
        /// How many of the stage's tasks each host's processors ran.
        var tasksPerHost: [String: Int]
        /// Stage tasks started more than once (re-sent after their lease ran out unstarted).
        var startedAgain: Int
        /// CPU seconds the hub's algorithm service and logger used during the run.
        var hubCPUSeconds: [String: Double]
        /// CPU seconds all processors used during the run, with the stage commands they ran (reaped children).
        var processorsCPUSeconds: Double?
        /// The machine's load average (1 min) at the end: how much else wanted the cores.
        var loadAverage: Double?
    }

    /// One run of a job whose algorithm writes `parts` small parts and a per-part stage of fixed cost
    /// (`sleep partSeconds`, then a copy) stored by the built-in store, on `processors` real `baton-processor`s
    /// spread evenly over two hosts (network namespaces, ``TestHosts``), with the logger, scheduler and
    /// algorithm on a third. Every link is TCP between the hosts' addresses. Triggered once every processor
    /// is up, so all of them share the hand-out.
    func hostsThroughput(processors: Int, parts: Int, partSeconds: Double, port: Int) async throws -> HostsThroughput {
        try await TestHosts.with(["a", "b", "c"]) { hosts in
            let stack = try BenchStack(
                root: root,
                name: "hosts-\(processors)",
                basePort: port,
                address: hosts.address("a"),
                yaml: """
                    jobs:
                      - name: fan
                        at: 2100-01-01T00:00:00Z
                        command: [sh, -c, 'for i in $(seq 10000 \(9999 + parts)); do echo "{\\"part\\":$i}" > "$BATON_OUTPUT_DIR/$i"; done']
                        stages:
                          - name: score
                            command: [sh, -c, 'sleep \(partSeconds); cat > "$BATON_OUTPUT"']

                    """
            )
            defer { stack.stop() }
            let hub = hosts.command(on: "a", [])
            try stack.start("logger", "baton-logger", wrapper: hub)
            try stack.start("scheduler", "baton-scheduler", wrapper: hub)
            try stack.start("algorithm", "baton-algorithm", wrapper: hub)
            let names = (1...processors).map { "\($0 % 2 == 1 ? "b" : "c")\(($0 + 1) / 2)" }
            for name in names {
                let host = String(name.prefix(1))
                // CURVE on (the default): the hub's key pair, made at its first start, is every processor's too.
                try stack.start(
                    name,
                    "baton-processor",
                    ["--name", name],
                    wrapper: hosts.command(on: host, []),
                    environment: [
                        "BATON_DATA_DIR": "\(stack.directory)/host-\(host)", "BATON_CURVE_KEY": "\(stack.dataDirectory)/keys/baton.key",
                    ]
                )
            }
            // Every processor has published (so it is connected), then a second for its results socket.
            let up = try await Self.waitFor(seconds: 60) {
                Set(stack.events(EventType.serviceStarted).map(\.instance)).isSuperset(of: names + ["algorithm", "scheduler"])
            }
            guard up else { throw TestHosts.Failure("not every service started: see \(stack.directory)") }
            try await Task.sleep(for: .seconds(1))
            let trigger = hosts.command(on: "a", [BenchStack.binaries + "/baton", "trigger", "fan", "--config", stack.configPath])
            let triggered = try await TestHosts.run(trigger[0], Array(trigger.dropFirst()))
            guard triggered.status == 0 else { throw TestHosts.Failure("baton trigger: \(triggered.output)") }
            let hubPids = ["algorithm", "logger"].compactMap { name in stack.pid(name).map { (name, $0) } }
            let cpuBefore = hubPids.map { BenchStack.cpuSeconds($0.1) }
            let processorPids = names.compactMap { stack.pid($0) }
            let processorsBefore = processorPids.map(Self.cpuSecondsWithChildren).reduce(0, +)
            _ = try await Self.waitFor(seconds: 60 + Double(parts) * partSeconds * 2) {
                !stack.events(EventType.pipelineFinished).isEmpty
            }
            let cpuAfter = hubPids.map { BenchStack.cpuSeconds($0.1) }
            let processorsAfter = processorPids.map(Self.cpuSecondsWithChildren).reduce(0, +)
            var load = [0.0, 0, 0]
            let loads = getloadavg(&load, 3)
            try await Task.sleep(for: .milliseconds(500))  // the last events reach the log
            let handOff = stack.events(EventType.runFinished).first?.time
            let scored = stack.events(EventType.stageDone).first { $0.attributes?["stage"] == "score" }?.time
            let stored = stack.events(EventType.pipelineFinished).first?.time
            let started = stack.events(EventType.taskStarted).filter { $0.attributes?["stage"] == "score" }
            let index = started.first?.attributes?["stage_index"]
            var tasks: [String: Int] = [:]
            for event in stack.events(EventType.taskSucceeded) where event.attributes?["stage_index"] == index {
                tasks[String((event.attributes?["processor"] ?? "?").prefix(1)), default: 0] += 1
            }
            let seconds = handOff.flatMap { start in scored.map { $0.timeIntervalSince(start) } }
            return HostsThroughput(
                processors: processors,
                parts: parts,
                partSeconds: partSeconds,
                partsPerSecond: seconds.map { Double(parts) / $0 },
                secondsToStored: handOff.flatMap { start in stored.map { $0.timeIntervalSince(start) } },
                idealPartsPerSecond: Double(processors) / partSeconds,
                tasksPerHost: tasks,
                startedAgain: started.count - Set(started.compactMap(\.part)).count,
                hubCPUSeconds: Dictionary(uniqueKeysWithValues: hubPids.indices.map { (hubPids[$0].0, cpuAfter[$0] - cpuBefore[$0]) }),
                processorsCPUSeconds: processorsAfter - processorsBefore,
                loadAverage: loads > 0 ? load[0] : nil
            )
        }
    }

    /// CPU seconds a process used so far, with its children that it has waited for (utime, stime, cutime and
    /// cstime in /proc/<pid>/stat): a processor with the stage commands it ran.
    static func cpuSecondsWithChildren(_ pid: Int32) -> Double {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = text.lastIndex(of: ")") else {
            return 0
        }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 14 else { return 0 }
        return fields[11...14].compactMap { Double($0) }.reduce(0, +) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// Waits until `condition` holds, checking every 200 ms, without holding a thread; false on timeout.
    static func waitFor(seconds: Double, _ condition: () -> Bool) async throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            try await Task.sleep(for: .milliseconds(200))
        }
        return condition()
    }
}

extension Report {
    /// The scaling of the hosts scenario from each processor count to the next (e.g. 2→4), by parts/s.
    var hostsScaling: [(from: Int, to: Int, ratio: Double?)] {
        zip(hosts, hosts.dropFirst()).map { low, high in
            (low.processors, high.processors, low.partsPerSecond.flatMap { base in high.partsPerSecond.map { $0 / base } })
        }
    }

    /// The hosts scenario's target: at least 1.8× from each processor count to its double.
    func hostsTargets() -> [Target] {
        guard hosts.count > 1 else { return [] }
        let scaling = hostsScaling
        return [
            .init(
                name: "throughput over hosts",
                target: "≥ 1.8× per doubling of processors (0.05 s per part)",
                measured: scaling.map { "\($0.from)→\($0.to) \($0.ratio.map { formatted($0, 2) } ?? "-")×" }.joined(separator: ", "),
                met: scaling.allSatisfy { ($0.ratio ?? 0) >= 1.8 }
            )
        ]
    }

    func hostsTable() -> [String] {
        guard !hosts.isEmpty else { return [] }
        var lines = [
            [
                "throughput over hosts", "processors", "parts/s", "ideal parts/s", "scaling", "to stored s", "run again",
                "tasks per host", "hub CPU s", "processors CPU s", "load",
            ].joined(separator: " | ")
        ]
        for (index, entry) in hosts.enumerated() {
            let scaling = index == 0 ? "-" : hostsScaling[index - 1].ratio.map { formatted($0, 2) + "×" } ?? "-"
            let tasks: String = entry.tasksPerHost.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            let hub: String = entry.hubCPUSeconds.sorted { $0.key < $1.key }.map { "\($0.key) \(formatted($0.value, 2))" }.joined(
                separator: ", "
            )
            let processorsCPU: String = entry.processorsCPUSeconds.map { formatted($0, 2) } ?? "-"
            let load: String = entry.loadAverage.map { formatted($0, 1) } ?? "-"
            let cells: [String] = [
                "\(entry.parts) × \(formatted(entry.partSeconds, 2)) s",
                "\(entry.processors)",
                entry.partsPerSecond.map { formatted($0, 1) } ?? "-",
                formatted(entry.idealPartsPerSecond, 1),
                scaling,
                entry.secondsToStored.map { formatted($0, 2) } ?? "-",
                "\(entry.startedAgain)",
                tasks, hub, processorsCPU, load,
            ]
            lines.append(cells.joined(separator: " | "))
        }
        return lines + [""]
    }
}
