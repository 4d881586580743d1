import Foundation
import Messaging
import ServiceKit
import Testing
import ZMQ

/// `baton status` over a real logger: gone services leave the main view (`--all` lists them), and errors are
/// those of the window, which the output names.
@Suite(.serialized)
struct StatusTidyTests {
    @Test(.timeLimit(.minutes(3)))
    func goneServicesAndWindowedErrorsThroughTheCommandLine() async throws {
        try await TestStack.with("tidy", yaml: "") { stack in
            try stack.start("logger", "baton-logger")
            let publisher = try await StatusPublisher(
                context: Context(),
                endpoint: "ipc://\(stack.directory)/status-in",
                source: "algorithm",
                instance: "vm:4242",
                heartbeatInterval: .seconds(60)
            )
            // It announces itself, logs an error, and says goodbye when its task ends.
            let running = Task { try await publisher.run() }
            publisher.publish("log.error", level: "error", message: "the disk is on fire")
            let errorSeen = try await stack.waitUntil(timeout: .seconds(60)) {
                try await stack.baton(["status", "--timeout", "20s"]).output.contains("the disk is on fire")
            }
            try #require(errorSeen, "logger: \(stack.stderr("logger").suffix(800))")
            publisher.publish(EventType.serviceStopped)
            let heard = try await stack.waitUntil(timeout: .seconds(60)) {
                try await stack.baton(["status", "--timeout", "20s", "--all"]).output.contains("vm:4242  STOPPED")
            }
            let status = try await stack.baton(["status", "--timeout", "20s", "--all"]).output
            try #require(heard, "status: \(status)")
            let shown = try await stack.baton(["status", "--timeout", "20s"])
            #expect(shown.output.contains("algorithm vm:4242  STOPPED"), "\(shown.output)")
            #expect(shown.output.contains("RECENT ERRORS (last 10m)"), "\(shown.output)")
            #expect(shown.output.contains("1 error in the last 10m"), "\(shown.output)")
            running.cancel()
            _ = try? await running.value

            // Once stopped more than a second ago: gone with --gone 1s, listed with --all.
            var tidy: (status: Int32, output: String) = (-1, "")
            let hidden = try await stack.waitUntil(timeout: .seconds(20)) {
                tidy = try await stack.baton(["status", "--timeout", "20s", "--gone", "1s", "--window", "1s"])
                return tidy.status == 0 && !tidy.output.contains("vm:4242")
            }
            #expect(hidden, "\(tidy.output)")
            #expect(
                tidy.status == 0,
                "\(tidy.output) logger running: \(stack.process("logger")?.isRunning == true) \(stack.stderr("logger").suffix(1500))"
            )
            #expect(!tidy.output.contains("vm:4242"), "\(tidy.output)")
            #expect(
                tidy.output.contains("1 service down or stopped for longer than 1s not shown; baton status --all lists them"),
                "\(tidy.output)"
            )
            #expect(!tidy.output.contains("RECENT ERRORS"), "errors older than the window: \(tidy.output)")
            let all = try await stack.baton(["status", "--timeout", "20s", "--gone", "1s", "--all"])
            #expect(all.output.contains("algorithm vm:4242  STOPPED"), "\(all.output)")
            #expect(all.output.contains("(gone)"), "\(all.output)")
            let json = try await stack.baton(["status", "--timeout", "20s", "--gone", "1s", "--window", "1s", "--json"])
            let report = try Timestamp.decoder().decode(StatusReport.self, from: Data(json.output.utf8))
            #expect(report.hiddenServices == 1)
            #expect(report.windowSeconds == 1)
            #expect(report.errors.isEmpty)
            #expect(!report.services.contains { $0.instance == "vm:4242" })
            #expect(try await stack.baton(["status", "--timeout", "20s", "--gone", "soon"]).status != 0)
        }
    }
}
