import Config
import ServiceKit

/// The runs executing now, each with a doorbell that stops it and the reason it was stopped for.
actor RunningRuns {
    struct Stop: Sendable {
        let doorbell: Doorbell
    }

    private var runs: [String: (doorbell: Doorbell, reason: String?)] = [:]

    var count: Int { runs.count }

    func begin(_ runID: String) -> Stop {
        let doorbell = Doorbell()
        runs[runID] = (doorbell, nil)
        return Stop(doorbell: doorbell)
    }

    /// Ends a run's entry; returns the cancel reason if it was cancelled (nil if stopped by shutdown).
    func end(_ runID: String) -> String? { runs.removeValue(forKey: runID)?.reason }

    func contains(_ runID: String) -> Bool { runs[runID] != nil }

    /// Stops a run if it is executing here; returns whether it was.
    func cancel(_ runID: String, reason: String) -> Bool {
        guard let run = runs[runID] else { return false }
        runs[runID]?.reason = reason
        run.doorbell.ring()
        return true
    }

    /// Stops every run for shutdown (they stay `running` and run again at the next start); returns how many.
    func stopAll() -> Int {
        for run in runs.values { run.doorbell.ring() }
        return runs.count
    }
}
