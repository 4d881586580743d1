// How the unit tests wait when no event tells them: for a condition, polled with a deadline, or deliberately for
// a window in which something must not happen. (The integration tests' own are in TestStack+Waiting.swift.)
public enum Wait {
    /// Waits until `condition` holds, checking every `poll`, for at most `timeout`; whether it held.
    public static func until(
        timeout: Duration,
        poll: Duration = .milliseconds(20),
        _ condition: () async throws -> Bool
    ) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try await Task.sleep(for: poll)
        }
        return try await condition()
    }

    /// Waits `duration`, for the reason given: a window in which something must not happen.
    public static func deliberately(_ duration: Duration, because reason: String) async throws {
        try await Task.sleep(for: duration)
    }
}
