import AlgorithmService
import Foundation
import Glibc
import Messaging

extension Scenarios {
    struct ScaleParts: Codable {
        var parts: Int
        /// The hub's resident memory once up, before the run, MiB.
        var hubBeforeMiB: Double
        /// The hub's peak resident memory (VmHWM) from its start to `watchSeconds` after the hand-off, MiB.
        var hubPeakMiB: Double
        /// From the run's start to its hand-off (`run.started` → `run.finished`): writing the files and sealing them.
        var handOffSeconds: Double?
        /// How long the hand-out was watched after the hand-off, and how many parts were stored by then.
        var watchSeconds: Double
        var storedWhileWatched: Int
        /// Set when the hub was found ended while watched (it must not end): how it ended.
        var hubExited: String?
    }

    /// The hub's memory for one run of `parts` small parts (an algorithm command writing that many files to
    /// `$BATON_OUTPUT_DIR`, the built-in store as the only stage, one processor), up to `watch` seconds into
    /// handing them out.
    func scaleParts(parts: Int, watch: Double, port: Int) async throws -> ScaleParts {
        let stack = try BenchStack(
            root: root,
            name: "scale-parts-\(parts)",
            basePort: port,
            yaml: """
                jobs:
                  - name: many
                    at: \(Timestamp.format(Date().addingTimeInterval(4)))
                    command: [sh, -c, 'i=0; while [ $i -lt \(parts) ]; do echo "{\\"part\\":$i}" > "$BATON_OUTPUT_DIR/$i"; i=$((i+1)); done']

                """
        )
        defer { stack.stop() }
        try stack.start("logger", "baton-logger")
        usleep(300_000)
        try stack.start("processor-1", "baton-processor", ["--name", "processor-1"])
        try stack.start("algorithm", "baton-algorithm")
        try stack.start("scheduler", "baton-scheduler")
        usleep(2_000_000)
        let hub = stack.pid("algorithm") ?? 0
        let before = Double(BenchStack.rssKiB(hub)) / 1024
        _ = stack.wait(timeout: 300) { !stack.events(EventType.runFinished).isEmpty || !stack.events(EventType.runFailed).isEmpty }
        // VmHWM is gone with the process: sampled while it lives.
        var peakKiB = BenchStack.peakKiB(hub)
        let watchEnd = Date().addingTimeInterval(watch)
        while Date() < watchEnd {
            try await Task.sleep(for: .milliseconds(250))
            peakKiB = max(peakKiB, BenchStack.peakKiB(hub))
        }
        let peak = Double(peakKiB) / 1024
        let exited = stack.processes["algorithm"].flatMap { process in
            process.isRunning ? nil : "\(process.terminationReason == .uncaughtSignal ? "signal" : "status") \(process.terminationStatus)"
        }
        let store = StoreCounter(path: stack.dataDirectory + "/results.sqlite")
        let started = stack.events(EventType.runStarted).first?.time
        let finished = stack.events(EventType.runFinished).first?.time
        return ScaleParts(
            parts: parts,
            hubBeforeMiB: before,
            hubPeakMiB: peak,
            handOffSeconds: started.flatMap { start in finished.map { $0.timeIntervalSince(start) } },
            watchSeconds: watch,
            storedWhileWatched: await store.count(),
            hubExited: exited
        )
    }

    struct ScaleLarge: Codable {
        var bytes: Int
        /// Each service's peak resident memory (VmHWM) over the run, MiB.
        var peakMiB: [String: Double]
        /// The same before the run, MiB (what the service needs anyway).
        var beforeMiB: [String: Double]
        /// `stored`, or the first failure's event and reason.
        var outcome: String
        /// From the run's start to its result stored (or failed).
        var seconds: Double?
    }

    /// Peak memory of every service for one run whose result is `bytes` random bytes (`head -c` from
    /// /dev/urandom into `$BATON_OUTPUT`), stored by the built-in store, `limits.result_size` above it.
    func scaleLarge(bytes: Int, port: Int) async throws -> ScaleLarge {
        let stack = try BenchStack(
            root: root,
            name: "scale-large",
            basePort: port,
            yaml: """
                limits:
                  result_size: \(bytes + (64 << 20))
                jobs:
                  - name: large
                    at: \(Timestamp.format(Date().addingTimeInterval(4)))
                    command: [sh, -c, 'head -c \(bytes) /dev/urandom > "$BATON_OUTPUT"']
                    timeout: 10m

                """
        )
        defer { stack.stop() }
        try stack.start("logger", "baton-logger")
        usleep(300_000)
        let names = ["logger", "scheduler", "algorithm", "processor"]
        try stack.start("processor", "baton-processor", ["--name", "processor-1"])
        try stack.start("algorithm", "baton-algorithm")
        try stack.start("scheduler", "baton-scheduler")
        usleep(2_000_000)
        var before: [String: Double] = [:]
        for name in names { before[name] = Double(BenchStack.rssKiB(stack.pid(name) ?? 0)) / 1024 }
        let ends = [EventType.resultStored, EventType.resultFailed, EventType.taskFailed, EventType.resultDead, EventType.runFailed]
        var end: StatusEvent?
        _ = stack.wait(timeout: 300) {
            end = ends.lazy.compactMap { stack.events($0).first }.first
            return end != nil
        }
        var peak: [String: Double] = [:]
        for name in names { peak[name] = Double(BenchStack.peakKiB(stack.pid(name) ?? 0)) / 1024 }
        let started = stack.events(EventType.runStarted).first?.time
        let outcome =
            end.map { event in
                event.type == EventType.resultStored
                    ? "stored" : "\(event.type): \(event.attributes?["error"] ?? event.attributes?["reason"] ?? event.message ?? "")"
            } ?? "neither stored nor failed in 300 s"
        return ScaleLarge(
            bytes: bytes,
            peakMiB: peak,
            beforeMiB: before,
            outcome: outcome,
            seconds: started.flatMap { start in end.map { $0.time.timeIntervalSince(start) } }
        )
    }
}

extension BenchStack {
    /// Peak resident memory of a process so far in KiB (VmHWM).
    static func peakKiB(_ pid: Int32) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
        }
        return 0
    }
}
