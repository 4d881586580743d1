// Over 300 lines: one function per benchmark scenario, each with its baseline beside it, as docs/PERFORMANCE.md
// lists them; they share nothing but BenchStack.
import AlgorithmService
import Foundation
import Glibc
import Messaging
import ProcessorService

/// Each measurement of the suite, against real processes (or Baton's own parts in process), on loopback TCP.
struct Scenarios {
    let root: String
    let quick: Bool
    let say: (String) -> Void

    // MARK: 1. Hand-off latency

    /// Result durable on the algorithm side → processor starts on it, in ms, with the processor idle in
    /// between: a job every `every` ms, the built-in algorithm with no computation, one processor. Read from
    /// the processor's `result.received` events (`handoff_us`: from the outbox commit's return to the processor
    /// starting on the result, both on this host's clock).
    /// Returns the latencies and, for each, the part after the sender handed the result to its socket
    /// (`transit_us`: socket threads, libzmq, TCP, the processor's receive and checks), both in ms.
    func handoffLatency(size: Int, every: Int, count: Int, port: Int) throws -> (total: [Double], transit: [Double]) {
        let stack = try BenchStack(
            root: root,
            name: "handoff-\(size)",
            basePort: port,
            yaml: """
                jobs:
                  - name: handoff
                    every: \(every)ms
                    builtin: demo
                    duration: 0s
                    result_size: \(size)

                """
        )
        defer { stack.stop() }
        try stack.start("logger", "baton-logger")
        usleep(300_000)
        try stack.start("processor-1", "baton-processor", ["--name", "processor-1"])
        try stack.start("algorithm", "baton-algorithm")
        try stack.start("scheduler", "baton-scheduler")
        let warmup = 20
        var samples: [(Double, Double)] = []
        _ = stack.wait(timeout: 120) {
            samples = stack.events(EventType.resultReceived).compactMap { event in
                guard let total = event.attributes?["handoff_us"].flatMap(Double.init) else { return nil }
                return (total, event.attributes?["transit_us"].flatMap(Double.init) ?? .nan)
            }
            return samples.count >= warmup + count
        }
        let kept = samples.dropFirst(warmup).prefix(count)
        return (kept.map { $0.0 / 1000 }, kept.map { $0.1 / 1000 }.filter { !$0.isNaN })
    }

    // MARK: 2. Durable throughput

    struct Throughput: Codable {
        /// CPU milliseconds per stored result: the algorithm side (this process: producers, sender, acks),
        /// all processors together, and the logger.
        var cpuMsPerResult: [String: Double] = [:]
        var resultsPerSecond: Double
        var handedOffPerSecond: Double
        var seconds: Double
        var processors: Int
        var producers: Int
        /// Tasks (parts) per run: 1, or many small parts per run (the batched path).
        var partsPerRun: Int = 1
        /// With many parts per run: the CPU milliseconds per part that the producers' own file writes cost
        /// (`open`, `write`, `close`, as a user's program writes its parts), measured apart before the run. It is
        /// part of the algorithm side's figure, but the user's program's work, not Baton's.
        var producerCpuMsPerPart: Double?
    }

    /// Small results through the pipeline into SQLite: producers hand off 64-byte results as fast as they can
    /// (seal + outbox commit, as the algorithm does), the sender and ack receiver drain the outbox, real
    /// processors store into `results.sqlite`. Stored results/s over the measured window.
    /// With `partsPerRun` above 1, each run is that many 64-byte parts, and the figures count parts.
    func throughput(seconds: Double, processors: Int, producers: Int, partsPerRun: Int = 1, port: Int) async throws -> Throughput {
        let stack = try BenchStack(root: root, name: "throughput-\(partsPerRun)", basePort: port, yaml: "")
        defer { stack.stop() }
        let payload = Data(#"{"value":42,"text":"a small result of 64 bytes......"}"#.utf8 + [0x0A])
        // Measured while nothing else runs in this process.
        let producerCost =
            partsPerRun > 1 ? try Self.fileWriteCost(in: stack.dataDirectory + "/calibration", parts: partsPerRun, payload: payload) : nil
        try stack.start("logger", "baton-logger")
        usleep(300_000)
        let pipeline = try await Pipeline(stack: stack, lease: .seconds(30))
        for index in 1...processors { try stack.start("processor-\(index)", "baton-processor", ["--name", "processor-\(index)"]) }
        let store = StoreCounter(path: stack.dataDirectory + "/results.sqlite")
        let produced = Counter()
        let stopAt = Date().addingTimeInterval(seconds + 4)
        let base = Date(timeIntervalSince1970: 1_900_000_000)
        let processorPids = (1...processors).compactMap { stack.pid("processor-\($0)") }
        let loggerPid = stack.pid("logger") ?? 0
        try await withThrowingTaskGroup(of: Void.self) { group in
            for producer in 0..<producers {
                group.addTask {
                    var index = producer
                    while Date() < stopAt {
                        try await pipeline.produce(index: index, base: base, payload: payload, parts: partsPerRun)
                        produced.add(partsPerRun)
                        index += producers
                    }
                }
            }
            group.addTask {
                try await Task.sleep(for: .seconds(3))  // warm-up
                func cpu() -> [String: Double] {
                    [
                        "algorithm": BenchStack.cpuSeconds(getpid()),
                        "processors": processorPids.map(BenchStack.cpuSeconds).reduce(0, +),
                        "logger": BenchStack.cpuSeconds(loggerPid),
                    ]
                }
                let cpu0 = cpu()
                let stored0 = await store.count(), produced0 = produced.value, start = Date()
                try await Task.sleep(for: .seconds(seconds))
                let elapsed = Date().timeIntervalSince(start)
                let stored1 = await store.count(), produced1 = produced.value
                let cpu1 = cpu()
                produced.cpu = cpu1.merging(cpu0) { after, before in (after - before) * 1000 / Double(max(stored1 - stored0, 1)) }
                produced.result = (Double(stored1 - stored0) / elapsed, Double(produced1 - produced0) / elapsed, elapsed)
            }
            try await group.waitForAll()
        }
        await pipeline.stop()
        let (stored, handed, elapsed) = produced.result
        return Throughput(
            cpuMsPerResult: produced.cpu,
            resultsPerSecond: stored,
            handedOffPerSecond: handed,
            seconds: elapsed,
            processors: processors,
            producers: producers,
            partsPerRun: partsPerRun,
            producerCpuMsPerPart: producerCost
        )
    }

    /// CPU milliseconds per part of writing five runs' worth of parts as `Pipeline.produce` writes them
    /// (`Pipeline.writeParts`), in folders of `parts` files (this process's CPU, so nothing else may run in it
    /// meanwhile).
    static func fileWriteCost(in directory: String, parts: Int, payload: Data) throws -> Double {
        let runs = 5
        let before = BenchStack.cpuSeconds(getpid())
        for run in 0..<runs { try Pipeline.writeParts(directory + "/run-\(run)", parts: parts, payload: payload) }
        return (BenchStack.cpuSeconds(getpid()) - before) * 1000 / Double(runs * parts)
    }

    // MARK: 3. Algorithm-side hand-off cost

    /// Result file closed → algorithm free for its next run (checksum, fsync file and directory, rename, the
    /// outbox transaction), in ms, with Baton's own hand-off, for a file of `size` random bytes.
    func handoffCost(size: Int, count: Int, port: Int) async throws -> [Double] {
        let stack = try BenchStack(root: root, name: "cost-\(size)", basePort: port, yaml: "")
        defer { stack.stop() }
        // Hand-offs only: no sender reading the files back while the next hand-off is timed.
        let pipeline = try await Pipeline(stack: stack, lease: .seconds(30), deliver: false)
        var random = SystemRandomNumberGenerator()
        let payload = Data((0..<size).map { _ in UInt8.random(in: 0...255, using: &random) })
        var samples: [Double] = []
        let directory = RawResults.directory(dataDirectory: stack.dataDirectory, job: "cost")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for index in 0..<count {
            let time = Date(timeIntervalSince1970: 1_900_000_000)
            let runID = "cost@\(Timestamp.format(time))~\(index + 2)"
            let partial = RawResults.partialPath(dataDirectory: stack.dataDirectory, job: "cost", runID: runID)
            let final = RawResults.resultPath(dataDirectory: stack.dataDirectory, job: "cost", runID: runID)
            try payload.write(to: URL(fileURLWithPath: partial))  // written and closed: the algorithm is done
            try await pipeline.begin(runID: runID, job: "cost", time: time)
            let handedOff = try await pipeline.handOff.handOff(
                runID: runID,
                job: "cost",
                partial: partial,
                outputDirectory: RawResults.outputDirectory(partial: partial),
                final: final
            )
            samples.append(handedOff.duration / .milliseconds(1))
            try? FileManager.default.removeItem(atPath: final)
        }
        await pipeline.stop()
        return samples
    }

    // MARK: 4. Timer

    struct Timer: Codable {
        var fires: Int
        var latenessMs: Sample?
        var driftMs: Double
    }

    /// Fire lateness at a 100 ms interval over `fires` fires (scheduler and logger only), from `run.scheduled`;
    /// drift is the mean lateness of the last 10 fires minus that of the first 10.
    func timer(fires: Int, port: Int) throws -> Timer {
        let stack = try BenchStack(
            root: root,
            name: "timer",
            basePort: port,
            yaml: """
                jobs:
                  - name: timer
                    every: 100ms
                    overlap: allow
                    builtin: demo
                    duration: 0s

                """
        )
        defer { stack.stop() }
        try stack.start("logger", "baton-logger")
        usleep(300_000)
        try stack.start("scheduler", "baton-scheduler")
        var lateness: [Double] = []
        _ = stack.wait(timeout: Double(fires) / 10 + 30) {
            lateness = stack.events(EventType.runScheduled).compactMap { $0.attributes?["lateness_ms"].flatMap(Double.init) }
            return lateness.count >= fires + 1
        }
        // The first fire after start-up is not timed by the grid; drop it.
        let values = Array(lateness.dropFirst().prefix(fires))
        let head = values.prefix(10), tail = values.suffix(10)
        let drift = tail.reduce(0, +) / Double(max(tail.count, 1)) - head.reduce(0, +) / Double(max(head.count, 1))
        return Timer(fires: values.count, latenessMs: Sample(values), driftMs: drift)
    }

    // MARK: 5. Idle cost

    struct Idle: Codable {
        var cpuMsPer10s: Double
        var rssMiB: Double
        /// Heap and stacks only (RSS also counts the executable's and libraries' mapped pages).
        var anonymousMiB: Double
    }

    /// CPU time per 10 s (all threads, from schedstat, nanosecond resolution) and resident memory of each
    /// service of an idle stack (a job that fires in 2100), metrics endpoints on; and, as the baseline, of a
    /// Swift process of the same build that only waits in a task (`baton-bench --idle-floor`).
    func idle(seconds: Double, port: Int) throws -> (services: [String: Idle], floor: Idle) {
        let stack = try BenchStack(
            root: root,
            name: "idle",
            basePort: port,
            yaml: """
                jobs:
                  - name: later
                    at: 2100-01-01T00:00:00Z
                    builtin: demo
                    duration: 1s

                """
        )
        defer { stack.stop() }
        try stack.start("logger", "baton-logger")
        usleep(300_000)
        for (name, executable) in [("scheduler", "baton-scheduler"), ("algorithm", "baton-algorithm"), ("processor", "baton-processor")] {
            try stack.start(name, executable)
        }
        try stack.start("floor", "baton-bench", ["--idle-floor"])
        sleep(5)  // start-up done, connections made
        let names = ["logger", "scheduler", "algorithm", "processor", "floor"]
        let pids = names.compactMap { stack.pid($0) }
        let used = BenchStack.cpuNanos(of: pids, during: seconds)
        var result: [String: Idle] = [:]
        for (index, name) in names.enumerated() {
            result[name] = Idle(
                cpuMsPer10s: Double(used[index]) / 1e6 / seconds * 10,
                rssMiB: Double(BenchStack.rssKiB(pids[index])) / 1024,
                anonymousMiB: Double(BenchStack.anonymousKiB(pids[index])) / 1024
            )
        }
        let floor = result.removeValue(forKey: "floor") ?? Idle(cpuMsPer10s: 0, rssMiB: 0, anonymousMiB: 0)
        return (result, floor)
    }

    // MARK: 6. Recovery

    struct Recovery: Codable {
        var results: Int
        var storedAtKill: Int
        var lease: Double
        var secondsToAllStored: Double
        var storedRows: Int
        var missing: Int
        var duplicateDeliveries: Int
        var redeliveries: Int
        var ratePerSecondBeforeKill: Double
        var secondsToFullRateAfterRestart: Double?
        /// What storing the rest would take if the kill lost nothing: the survivor alone (half the rate before the
        /// kill) until the restart, then both at the rate before.
        var idealSecondsToAllStored: Double = 0
        /// How much longer it took than that: the cost of the kill (issue 15: at most 1 s).
        var secondsPastIdeal: Double { secondsToAllStored - idealSecondsToAllStored }
    }

    /// 10,000 results handed off, two processors storing them; `kill -9` of one at 2,000 stored, restarted
    /// 0.5 s later (as `baton up` does). Time from the kill until every result is stored, results missing
    /// (must be 0), duplicates (deliveries of results already stored, which the store recognises), and how
    /// soon the rate is back.
    func recovery(results: Int, port: Int) async throws -> Recovery {
        let lease = 2.0
        let stack = try BenchStack(root: root, name: "recovery", basePort: port, yaml: "processor:\n  lease: 2s\n")
        defer { stack.stop() }
        try stack.start("logger", "baton-logger")
        usleep(300_000)
        let pipeline = try await Pipeline(stack: stack, lease: .seconds(lease))
        let base = Date(timeIntervalSince1970: 1_900_000_000)
        let payload = Data(#"{"value":42}"#.utf8 + [0x0A])
        say("  recovery: handing off \(results) results")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for producer in 0..<4 {
                group.addTask {
                    for index in stride(from: producer, to: results, by: 4) {
                        try await pipeline.produce(index: index, base: base, payload: payload)
                    }
                }
            }
            try await group.waitForAll()
        }
        let store = StoreCounter(path: stack.dataDirectory + "/results.sqlite")
        try stack.start("processor-1", "baton-processor", ["--name", "processor-1"])
        try stack.start("processor-2", "baton-processor", ["--name", "processor-2"])
        var samples: [(time: Double, stored: Int)] = []
        let clock = Date()
        func sample() async -> Int {
            let stored = await store.count()
            samples.append((Date().timeIntervalSince(clock), stored))
            return stored
        }
        let killAt = min(4000, results * 2 / 5)
        while await sample() < killAt { try await Task.sleep(for: .milliseconds(50)) }
        let killTime = Date().timeIntervalSince(clock)
        let storedAtKill = samples.last?.stored ?? 0
        stack.kill("processor-1")
        try await Task.sleep(for: .milliseconds(500))
        try stack.start("processor-1", "baton-processor", ["--name", "processor-1"])
        let restartTime = Date().timeIntervalSince(clock)
        let deadline = Date().addingTimeInterval(300)
        while await sample() < results && Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
        let doneTime = Date().timeIntervalSince(clock)
        // Rate before the kill: over the last two seconds of samples before it (processors store in batches of up to
        // 500 now, so one second held only a few batches and its rate swung with where they fell).
        let before = samples.filter { $0.time <= killTime && $0.time >= killTime - 2 }
        var rateBefore = 0.0
        if let first = before.first, let last = before.last, last.time > first.time {
            rateBefore = Double(last.stored - first.stored) / (last.time - first.time)
        }
        // Back to full rate: the first 500 ms window after the restart storing at ≥ 90% of that rate.
        var fullRate: Double?
        for (index, start) in samples.enumerated() where start.time >= restartTime {
            guard let end = samples[index...].first(where: { $0.time >= start.time + 0.5 }) else { break }
            if end.stored >= results { break }
            if Double(end.stored - start.stored) / (end.time - start.time) >= 0.9 * rateBefore {
                fullRate = start.time - restartTime
                break
            }
        }
        try await Task.sleep(for: .seconds(1))  // let the last events reach the log
        await pipeline.stop()
        let rows = await store.count()
        let gap = restartTime - killTime
        let remaining = Double(results - storedAtKill)
        let ideal = rateBefore > 0 ? gap + max(0, remaining - gap * rateBefore / 2) / rateBefore : 0
        return Recovery(
            results: results,
            storedAtKill: storedAtKill,
            lease: lease,
            secondsToAllStored: doneTime - killTime,
            storedRows: rows,
            missing: results - rows,
            // Tasks stored or sent in batches are counted in their batch's event.
            duplicateDeliveries: stack.events(EventType.resultDuplicate).count
                + stack.events(EventType.batchStored).reduce(0) { $0 + (Int($1.attributes?["duplicates"] ?? "") ?? 0) },
            redeliveries: stack.events(EventType.resultRedelivered).count
                + stack.events(EventType.batchSent).reduce(0) { $0 + (Int($1.attributes?["redelivered"] ?? "") ?? 0) },
            ratePerSecondBeforeKill: rateBefore,
            secondsToFullRateAfterRestart: fullRate,
            idealSecondsToAllStored: ideal
        )
    }
}

/// A counter shared by producer tasks.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    private var stored: (Double, Double, Double) = (0, 0, 0)
    private var cpuFigures: [String: Double] = [:]
    var cpu: [String: Double] {
        get { lock.withLock { cpuFigures } }
        set { lock.withLock { cpuFigures = newValue } }
    }
    func add(_ amount: Int = 1) { lock.withLock { count += amount } }
    var value: Int { lock.withLock { count } }
    var result: (Double, Double, Double) {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}

/// Counts stored results, opening the store once it exists (a SQLite file, or a PostgreSQL database at `url`).
actor StoreCounter {
    let path: String
    let url: String
    private var store: ResultStore?

    init(path: String, url: String = "") {
        self.path = path
        self.url = url
    }

    func count() async -> Int {
        if store == nil, !url.isEmpty { store = ResultStore(url: url, name: "baton-bench") }
        if store == nil, FileManager.default.fileExists(atPath: path) { store = try? await ResultStore(path: path) }
        return (try? await store?.resultCount()) ?? 0
    }
}
