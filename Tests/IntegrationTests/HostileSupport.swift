import Foundation
import Glibc
import Messaging
import Config
import ServiceKit
import Testing
import ZMQ

/// Helpers of the hostile-input suites.
enum Hostile {
    /// Waits until the event log holds a `message.rejected` for `socket` with `reason`, sending `garbage`
    /// again every half second (a connecting peer may miss the first).
    static func expectRejection(
        _ stack: TestStack,
        socket: String,
        reason: String,
        timeout: Duration = .seconds(20),
        garbage: () async throws -> Void
    ) async throws -> StatusEvent? {
        func rejection() -> StatusEvent? {
            stack.loggedEvents().first {
                $0.type == EventType.messageRejected && $0.attributes?["socket"] == socket && $0.attributes?["reason"] == reason
            }
        }
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            try await garbage()
            if try await stack.waitUntil(timeout: .milliseconds(500), { rejection() != nil }) { return rejection() }
        }
        return nil
    }

    /// Peak and current resident memory of a process, in bytes (`VmHWM`, `VmRSS`).
    static func memory(_ pid: Int32) -> (peak: Int, current: Int) {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return (0, 0) }
        func value(_ key: String) -> Int {
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(key + ":") }) else { return 0 }
            return (Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0) * 1024
        }
        return (value("VmHWM"), value("VmRSS"))
    }

    /// Garbage on every socket the services bind gets a `message.rejected` event naming the socket and a

    /// Whether the logger answers a status query and the scheduler a `jobs` request (asked over their sockets,
    /// never blocking a thread of the test).
    static func answers(_ stack: TestStack, context: Context) async throws -> Bool {
        func ask(_ endpoint: String, _ frames: [Data]) async throws -> [Data]? {
            let socket = try await AsyncSocket(context: context, configuration: .init(type: .request, connect: [endpoint]))
            try await socket.send(frames)
            let reply = try await socket.receive(timeout: .seconds(5))
            await socket.close()
            return reply
        }
        let status = try await ask("ipc://\(stack.directory)/query", Wire.encode(StatusQuery()))
        let jobs = try await ask("ipc://\(stack.directory)/control", Wire.encode(ControlRequest(command: .jobs)))
        let statusOK = status.flatMap { try? Wire.decode(StatusReport.self, from: $0).message }.map { $0.error == nil } ?? false
        let jobsOK = jobs.flatMap { try? Wire.decode(ControlReply.self, from: $0).message }?.ok ?? false
        return statusOK && jobsOK
    }

    /// Sets a resource limit of a running process with util-linux `prlimit`.
    static func prlimit(_ pid: Int32, _ argument: String) async -> Bool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/prlimit")
        process.arguments = ["--pid", "\(pid)", argument]
        guard (try? process.run()) != nil else { return false }
        guard (try? await TestStack.exited(process)) == true else { return false }
        return process.terminationStatus == 0
    }
}
