import Foundation

extension Scenarios {
    /// Every scale curve of one run, and the load average after each part.
    struct Scale: Codable {
        var kept: [ScaleKept] = []
        var parts: [ScaleParts] = []
        var large: [ScaleLarge] = []
        var history: [ScaleHistory] = []
        var loadAverage: [String: Double] = [:]
    }

    /// The scale curves: history kept (10⁴–10⁶ tasks), parts per run (10³–10⁵), result size (128 MiB, 1 GiB),
    /// minutely runs kept (a day, a month). `--quick` keeps the smaller sizes only.
    /// - Parameter parts: Which curves: `kept`, `parts`, `large`, `history`.
    func scale(port: Int, parts wanted: Set<String>) async throws -> Scale {
        var scale = Scale()
        let kept = quick ? [1000, 10_000] : [10_000, 100_000, 1_000_000]
        if wanted.contains("kept") {
            print("scale: hand-off and queries with \(kept.map(String.init).joined(separator: ", ")) finished tasks kept")
            scale.kept = try await scaleKept(sizes: kept, port: port)
            scale.loadAverage["kept"] = Self.loadAverage()
        }
        let runParts: [Int] = quick ? [1000, 10_000] : [1000, 10_000, 100_000]
        for (index, parts) in runParts.enumerated() where wanted.contains("parts") {
            print("scale: hub memory for one run of \(parts) parts")
            scale.parts.append(try await scaleParts(parts: parts, watch: 10, port: port + 20 + 15 * index))
        }
        if wanted.contains("parts") { scale.loadAverage["parts"] = Self.loadAverage() }
        let sizes: [Int] = quick ? [64 << 20] : [128 << 20, 1 << 30]
        for (index, bytes) in sizes.enumerated() where wanted.contains("large") {
            print("scale: peak memory of every service for one result of \(bytes >> 20) MiB")
            scale.large.append(try await scaleLarge(bytes: bytes, port: port + 70 + 15 * index))
        }
        if wanted.contains("large") { scale.loadAverage["large"] = Self.loadAverage() }
        let runs = quick ? [1440] : [1440, 43_200]
        guard wanted.contains("history") else { return scale }
        print("scale: baton status and baton audit over \(runs.map(String.init).joined(separator: ", ")) minutely runs")
        scale.history = try await scaleHistory(sizes: runs, port: port + 110)
        scale.loadAverage["history"] = Self.loadAverage()
        return scale
    }

    /// The 1-minute load average.
    static func loadAverage() -> Double {
        let text = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? ""
        return text.split(separator: " ").first.flatMap { Double($0) } ?? 0
    }
}

extension Report {
    /// The scale curves as rows: one column per size and the growth from each size to the next.
    func scaleTable() -> [String] {
        guard let scale else { return [] }
        var lines: [String] = []
        func row(_ cells: [String]) { lines.append(cells.joined(separator: " | ")) }
        func growth(_ values: [Double?]) -> String {
            let ratios = zip(values, values.dropFirst()).map { pair -> String in
                guard let from = pair.0, let to = pair.1, from > 0 else { return "-" }
                return formatted(to / from, 2) + "×"
            }
            return ratios.isEmpty ? "-" : ratios.joined(separator: ", ")
        }
        func curve(_ name: String, _ values: [Double?], _ decimals: Int = 3) {
            row([name] + values.map { $0.map { formatted($0, decimals) } ?? "-" } + [growth(values)])
        }
        let load = scale.loadAverage.sorted { $0.key < $1.key }.map { "\($0.key) \(formatted($0.value, 1))" }.joined(separator: ", ")
        if !scale.kept.isEmpty {
            row(["scale: finished tasks kept"] + scale.kept.map { "\($0.tasks)" } + ["growth per step"])
            curve("hand-off 1 KiB p50 ms", scale.kept.map { $0.handOffMs?.p50 })
            for query in Scenarios.scaleQueries { curve("\(query) ms", scale.kept.map { $0.queryMs[query] }) }
            curve("seeding s", scale.kept.map(\.seedSeconds), 1)
            lines.append("")
        }
        if !scale.parts.isEmpty {
            row(["scale: parts in one run"] + scale.parts.map { "\($0.parts)" } + ["growth per step"])
            curve("hub peak MiB", scale.parts.map(\.hubPeakMiB), 1)
            curve("hub before the run MiB", scale.parts.map(\.hubBeforeMiB), 1)
            curve("run start → hand-off s", scale.parts.map(\.handOffSeconds), 2)
            curve(
                "stored \(formatted(scale.parts.first?.watchSeconds ?? 0, 0)) s after",
                scale.parts.map { Double($0.storedWhileWatched) },
                0
            )
            row(["hub ended while watched"] + scale.parts.map { $0.hubExited ?? "no" })
            lines.append("")
        }
        if !scale.large.isEmpty {
            row(["scale: one result of"] + scale.large.map { "\($0.bytes >> 20) MiB" } + ["growth per step"])
            for name in ["scheduler", "algorithm", "processor", "logger"] {
                curve("\(name) peak MiB", scale.large.map { $0.peakMiB[name] }, 1)
            }
            curve("run start → end s", scale.large.map(\.seconds), 1)
            row(["outcome"] + scale.large.map(\.outcome))
            lines.append("")
        }
        if !scale.history.isEmpty {
            row(["scale: minutely runs kept"] + scale.history.map { "\($0.runs)" } + ["growth per step"])
            curve("baton status s", scale.history.map(\.statusSeconds))
            curve("baton audit s", scale.history.map(\.auditSeconds))
            curve("baton runs, a day of a job s", scale.history.map(\.runsSeconds))
            curve("web timeline, a week of a job s", scale.history.map(\.timelineSeconds))
            curve("seeding s", scale.history.map(\.seedSeconds), 1)
            row(["audit"] + scale.history.map { ($0.auditClean ? "" : "NOT CLEAN: ") + $0.auditSummary })
            lines.append("")
        }
        lines.append("scale: load average after each part: \(load)")
        return lines + [""]
    }
}
