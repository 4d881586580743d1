public import Foundation

/// Wall-clock time for the scheduler, injectable so tests run without waiting.
public protocol WallClock: Sendable {
    /// The current wall-clock time.
    func now() -> Date
    /// Returns once the wall clock reads `deadline` or later. Throws `CancellationError` if cancelled.
    func sleep(until deadline: Date) async throws
}

/// The system clock. Waits on the monotonic clock towards an absolute wall-clock deadline and re-reads the
/// wall clock after every wake, so steps of the system clock (NTP, suspend) are noticed within `maxNap`.
public struct SystemWallClock: WallClock {
    /// The longest single wait before the wall clock is read again.
    public var maxNap: Duration

    /// Creates the system clock.
    /// - Parameter maxNap: The longest single wait before the wall clock is read again.
    public init(maxNap: Duration = .seconds(30)) {
        self.maxNap = maxNap
    }

    public func now() -> Date { Date() }

    public func sleep(until deadline: Date) async throws {
        let clock = ContinuousClock()
        while true {
            let remaining = deadline.timeIntervalSince(Date())
            if remaining <= 0 { return }
            let nap = min(Duration.microseconds(Int64((remaining * 1_000_000).rounded(.up))), maxNap)
            try await clock.sleep(until: clock.now.advanced(by: nap), tolerance: .zero)
        }
    }
}
