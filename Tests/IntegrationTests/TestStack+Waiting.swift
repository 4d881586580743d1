import Foundation
import Commands
import Glibc
import Messaging
import Testing
import ZMQ

/// How the tests wait: for a condition (polled, with a deadline), a process's exit, or an event; never for a
/// fixed time unless the wait is meant (``Deliberately``).
extension TestStack {
    /// Waits until `condition` holds, checking every `poll`, for at most `timeout`: the tests' one polling loop,
    /// for conditions that send no event (a file's content, a row in a database, a process gone).
    static func waitUntil(
        timeout: Duration,
        poll: Duration = .milliseconds(100),
        _ condition: () async throws -> Bool
    ) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try await Task.sleep(for: poll)
        }
        return try await condition()
    }

    /// Waits until `condition` holds, checking every `poll`, for at most `timeout`.
    func waitUntil(timeout: Duration, poll: Duration = .milliseconds(100), _ condition: () async throws -> Bool) async throws -> Bool {
        try await Self.waitUntil(timeout: timeout, poll: poll, condition)
    }

    /// Waits for `process` to exit without blocking a thread of the pool; whether it did within `timeout`.
    static func exited(_ process: Process, within timeout: Duration = .seconds(30)) async throws -> Bool {
        try await waitUntil(timeout: timeout, poll: .milliseconds(20)) { !process.isRunning }
    }

    /// Whether `process` has ended within `timeout`, counting a zombie (ended, not yet reaped) as ended: under
    /// load, Foundation's reaping of a killed child has lagged 30 s behind (seen in CI). For a process whose
    /// `terminationStatus` is not read after: Foundation traps on reading it before it has reaped the child.
    static func ended(_ process: Process, within timeout: Duration = .seconds(30)) async throws -> Bool {
        try await waitUntil(timeout: timeout, poll: .milliseconds(20)) {
            !process.isRunning || !CommandOwner.isAlive(process.processIdentifier)
        }
    }

    /// Sends SIGTERM to the process started as `name` and waits for it to exit.
    func terminate(_ name: String, within timeout: Duration = .seconds(30)) async throws {
        let started = try #require(self.process(name), "no process \(name)")
        kill(started.processIdentifier, SIGTERM)
        try #require(try await Self.exited(started, within: timeout), "\(name) still runs \(timeout) after SIGTERM")
    }

    /// The events the logger wrote to its event log (its own included), decoded.
    func loggedEvents() -> [StatusEvent] {
        let path = dataDirectory + "/logs/events.jsonl"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { try? Timestamp.decoder().decode(StatusEvent.self, from: Data($0.utf8)) }
    }

    /// Returns once `watcher`'s subscription to `topic` has reached the logger, instead of a fixed wait: a
    /// subscription travels to the publisher on its own, and events sent before it arrives are dropped. Publishes
    /// probe events of type `topic` (source `probe`) until one reaches the watcher; none is left on its way to it.
    func awaitSubscription(_ watcher: AsyncSocket, topic: String, context: Context, timeout: Duration = .seconds(20)) async throws {
        let probe = try await AsyncSocket(
            context: context,
            configuration: .init(type: .xpublish, connect: ["ipc://\(directory)/status-in"])
        )
        let deadline = ContinuousClock.now + timeout
        var seq: UInt64 = 0
        var reached = false
        while !reached, ContinuousClock.now < deadline {
            seq += 1
            try await probe.send(StatusEvent(type: topic, source: "probe", instance: "probe:\(getpid())", seq: seq).frames)
            // Only the latest probe counts: once it is in, no earlier one is still on its way to the watcher.
            while !reached, let frames = try await watcher.receive(timeout: .milliseconds(200)) {
                let event = try? StatusEvent(frames: frames)
                reached = event?.source == "probe" && event?.seq == seq
            }
        }
        await probe.close()
        try #require(reached, "the subscription to \(topic) did not reach the logger within \(timeout)")
    }
}

/// Waits that are meant: time that must pass for the scenario (a service down for three slots), or a window in
/// which something must *not* happen. Everything else waits for an event or a condition, with a deadline.
enum Deliberately {
    /// Waits `duration`, for the reason given.
    static func wait(_ duration: Duration, because reason: String) async throws {
        try await Task.sleep(for: duration)
    }

    /// Waits until the wall clock reads `date`, for the reason given.
    static func wait(until date: Date, because reason: String) async throws {
        let delay = date.timeIntervalSinceNow
        if delay > 0 { try await Task.sleep(for: .microseconds(Int64(delay * 1_000_000) + 1)) }
    }
}
