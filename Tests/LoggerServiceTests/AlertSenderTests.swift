import Config
import Foundation
import Glibc
import Logging
import LoggerService
import ServiceKit
import TestSupport
import Testing

/// Delivery: each channel on its own, so a webhook that is down holds up no alert of the command; a refused
/// connection fails the attempt at once.
struct AlertSenderTests {
    /// A loopback port nothing listens on (bound, then closed).
    static func closedPort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    @Test(.timeLimit(.minutes(1)))
    func aDeadWebhookHoldsUpNoAlertOfTheCommand() async throws {
        let scratch = Scratch("alerts")
        let received = scratch.path("received")
        try FileManager.default.createDirectory(atPath: received, withIntermediateDirectories: true)
        var settings = Configuration.Alerts()
        settings.webhook = "http://127.0.0.1:\(Self.closedPort())/hook"
        settings.command = ["sh", "-c", "cat > \(received)/$BATON_ALERT_ID.json"]
        settings.retries = 5
        settings.timeout = .seconds(5)
        let sender = AlertSender(
            settings: settings,
            directory: scratch.path("alerts"),
            logger: Logger(label: "test"),
            firstBackoff: .seconds(2)
        )
        let inbox = BatchInbox<Alert>()
        let alerts = (0..<20).map { Alert(kind: "run.failed", time: Date(), summary: "failure \($0)") }
        for alert in alerts { inbox.put(alert) }
        let delivering = Task { await sender.run(inbox) }
        defer { delivering.cancel() }
        // Twenty alerts, eight at a time per channel: the webhook's eight wait out their retries (over a minute),
        // the command's go on.
        let all = try await Wait.until(timeout: .seconds(30)) {
            let files = (try? FileManager.default.contentsOfDirectory(atPath: received)) ?? []
            let ids = files.compactMap { file -> String? in
                guard let data = FileManager.default.contents(atPath: received + "/" + file),
                    let body = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
                else { return nil }
                return body["id"] as? String
            }
            return Set(ids) == Set(alerts.map(\.id))
        }
        #expect(all, "the command did not get every alert while the webhook was down")
    }

    /// `baton alerts test`'s path: one attempt at a closed port fails at once, with a message that says so.
    @Test(.timeLimit(.minutes(1)))
    func aRefusedConnectionFailsAtOnce() async throws {
        let scratch = Scratch("alerts")
        var settings = Configuration.Alerts()
        settings.webhook = "http://127.0.0.1:\(Self.closedPort())/hook"
        settings.retries = 0
        settings.timeout = .seconds(20)
        let sender = AlertSender(settings: settings, directory: scratch.path("alerts"), logger: Logger(label: "test"))
        let start = ContinuousClock.now
        let outcomes = await sender.send(.sample())
        #expect(ContinuousClock.now - start < .seconds(10), "a refused connection waited \(ContinuousClock.now - start)")
        #expect(outcomes.count == 1 && outcomes.first?.delivered == false)
        #expect(outcomes.first?.detail.contains("cannot reach the webhook") == true, "\(outcomes)")
    }

    /// An alert still waiting when the logger stops (here its task is cancelled; `kill -9` leaves the same files) is
    /// delivered by the next logger, once, with its id; meanwhile it is on disk for the logger's user alone.
    @Test(.timeLimit(.minutes(1)))
    func anAlertWaitingWhenTheLoggerStopsIsDeliveredAtTheNextStart() async throws {
        let scratch = Scratch("alerts")
        let received = scratch.path("received")
        try FileManager.default.createDirectory(atPath: received, withIntermediateDirectories: true)
        let attempts = scratch.path("attempts")
        var settings = Configuration.Alerts()
        settings.command = ["sh", "-c", "echo x >> \(attempts); exit 3"]
        settings.retries = 10
        settings.timeout = .seconds(5)
        let first = AlertSender(
            settings: settings,
            directory: scratch.path("alerts"),
            logger: Logger(label: "test"),
            firstBackoff: .seconds(30)
        )
        let inbox = BatchInbox<Alert>()
        var alert = Alert(kind: "run.failed", time: Date(), summary: "failed")
        alert.run = "j@2026-01-01T00:00:00.000Z"
        inbox.put(alert)
        let delivering = Task { await first.run(inbox) }
        let tried = try await Wait.until(timeout: .seconds(20)) { FileManager.default.fileExists(atPath: attempts) }
        #expect(tried)
        delivering.cancel()
        await delivering.value
        let kept = scratch.path("alerts") + "/pending/\(alert.id).command.json"
        let mode = (try? FileManager.default.attributesOfItem(atPath: kept))?[.posixPermissions] as? Int
        #expect(mode == 0o600, "kept \(kept): \(String(describing: mode))")

        settings.command = ["sh", "-c", "cat > \(received)/$BATON_ALERT_ID.json"]
        let second = AlertSender(settings: settings, directory: scratch.path("alerts"), logger: Logger(label: "test"))
        let next = BatchInbox<Alert>()
        let restarted = Task { await second.run(next) }
        defer { restarted.cancel() }
        let delivered = try await Wait.until(timeout: .seconds(20)) {
            FileManager.default.fileExists(atPath: "\(received)/\(alert.id).json")
                && !FileManager.default.fileExists(atPath: kept)
        }
        #expect(delivered, "the kept alert was not delivered after the restart")
        let body = FileManager.default.contents(atPath: "\(received)/\(alert.id).json").flatMap {
            try? JSONSerialization.jsonObject(with: $0) as? [String: Any]
        }
        #expect(body?["id"] as? String == alert.id && body?["run"] as? String == alert.run && body?["kind"] as? String == "run.failed")
        #expect((try? FileManager.default.contentsOfDirectory(atPath: scratch.path("alerts") + "/pending")) == [])
    }
}
