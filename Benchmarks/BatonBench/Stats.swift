import Foundation

/// Percentiles of a sample, nearest-rank.
struct Sample: Codable {
    var count: Int
    var p50: Double
    var p99: Double
    var max: Double
    var min: Double

    init?(_ values: [Double]) {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        func rank(_ p: Double) -> Double { sorted[Swift.min(sorted.count - 1, Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1)] }
        count = sorted.count
        p50 = rank(50)
        p99 = rank(99)
        max = sorted[sorted.count - 1]
        min = sorted[0]
    }
}

/// Monotonic nanoseconds.
func monotonicNanos() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

func formatted(_ value: Double, _ decimals: Int = 3) -> String { String(format: "%.\(decimals)f", value) }
