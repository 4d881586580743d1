import Foundation

/// The built-in demo algorithm: real CPU work for a set time, then a JSON-lines result of a set size.
///
/// It iterates a chaotic logistic map and records statistics of the orbit, so the result depends on
/// the run and cannot be precomputed. Progress is reported about every 10%.
public struct DemoAlgorithm: Sendable {
    /// How long to compute.
    public var duration: Duration
    /// About how many bytes of JSON lines to produce (at least this many, less than one line more).
    public var resultSize: Int

    /// Creates the demo algorithm.
    public init(duration: Duration, resultSize: Int) {
        self.duration = duration
        self.resultSize = resultSize
    }

    /// Computes and writes the result to `output`.
    /// - Parameters:
    ///   - runID: Seeds the computation and is written into every line.
    ///   - output: The file to write.
    ///   - progress: Called with a fraction from 0 to 1 as the work advances.
    public func run(runID: String, output: String, progress: @Sendable (Double) -> Void) async throws {
        let clock = ContinuousClock()
        let start = clock.now
        var x = 0.1 + Double(abs(runID.hashValue % 1000)) / 10_000
        var sum = 0.0
        var iterations = 0
        var reported = 0
        while true {
            for _ in 0..<20_000 {
                x = 3.99 * x * (1 - x)
                sum += x
            }
            iterations += 20_000
            let fraction = min(1, (clock.now - start) / duration)
            if Int(fraction * 10) > reported {
                reported = Int(fraction * 10)
                progress(fraction)
            }
            if fraction >= 1 { break }
            try Task.checkCancellation()
            await Task.yield()
        }
        var text = ""
        var line = 0
        let mean = sum / Double(max(iterations, 1))
        while text.utf8.count < resultSize || line == 0 {
            x = 3.99 * x * (1 - x)
            text += "{\"run\":\"\(runID)\",\"line\":\(line),\"x\":\(x),\"mean\":\(mean),\"iterations\":\(iterations)}\n"
            line += 1
        }
        // `result_size` is the user's to choose, so the write can be large: on the blocking pool.
        let bytes = Data(text.utf8)
        try await BlockingWork.shared.run { try bytes.write(to: URL(fileURLWithPath: output)) }
    }
}
