import ArgumentParser
import Foundation
import Messaging
import Testing

@testable import CLI

/// The CLI's logic without processes: what each command sends, which option combinations it refuses, how
/// events and durations are shown.
struct CommandLineLogicTests {
    @Test func jobCommandsSendOneRequestAboutTheirJob() throws {
        #expect(try Baton.Trigger.parse(["nightly"]).request == ControlRequest(command: .trigger, job: "nightly"))
        #expect(try Baton.Trigger.parse(["nightly", "--force"]).request == ControlRequest(command: .trigger, job: "nightly", force: true))
        #expect(try Baton.Pause.parse(["nightly"]).request == ControlRequest(command: .pause, job: "nightly"))
        #expect(try Baton.Resume.parse(["nightly"]).request == ControlRequest(command: .resume, job: "nightly", catchUp: false))
        #expect(
            try Baton.Resume.parse(["nightly", "--catch-up"]).request == ControlRequest(command: .resume, job: "nightly", catchUp: true)
        )
        // Only trigger prints the run ids it is answered with.
        #expect(Baton.Trigger.listsRuns && !Baton.Pause.listsRuns && !Baton.Resume.listsRuns)
        #expect(throws: (any Error).self) { try Baton.Pause.parse([]) }
    }

    /// `baton alerts test` names the webhook it tried without what may be its secret: a password, a path, a query.
    @Test func theAlertTestShowsTheWebhooksHostOnly() {
        #expect(Baton.Alerts.Test.shown("https://user:pw@hooks.example.com/services/T0/B0/XXXX") == "https://hooks.example.com/…")
        #expect(Baton.Alerts.Test.shown("http://127.0.0.1:8080/hook?key=s3cret") == "http://127.0.0.1:8080/…")
        #expect(Baton.Alerts.Test.shown("http://127.0.0.1:8080") == "http://127.0.0.1:8080")
    }

    @Test func cancelTakesARunOrAJobsQueuedRunsButNotBoth() throws {
        #expect(try Baton.Cancel.parse(["nightly@2026-01-01T00:00:00Z"]).run == "nightly@2026-01-01T00:00:00Z")
        #expect(try Baton.Cancel.parse(["--job", "nightly", "--queued"]).queued)
        for refused in [[], ["--job", "nightly"], ["--queued"], ["r", "--job", "nightly", "--queued"], ["r", "--queued"]] {
            #expect(throws: (any Error).self, "\(refused)") { try Baton.Cancel.parse(refused) }
        }
    }

    @Test func backfillRefusesARangeThatEndsBeforeItStarts() throws {
        let range = ["--from", "2026-01-02T00:00:00Z", "--to", "2026-01-01T00:00:00Z"]
        #expect(throws: (any Error).self) { try Baton.Backfill.parse(["nightly"] + range) }
        #expect(throws: (any Error).self) { try Baton.Backfill.parse(["nightly", "--from", "yesterday", "--to", "2026-01-01T00:00:00Z"]) }
        let backfill = try Baton.Backfill.parse(["nightly", "--from", "2026-01-01T00:00:00Z", "--to", "2026-01-01T00:00:00Z"])
        #expect(backfill.from.date == backfill.to.date)
    }

    @Test func statusDurationsAreParsedAndShown() throws {
        #expect(try Baton.Status.seconds("10m", option: "--gone") == 600)
        #expect(throws: ValidationError.self) { try Baton.Status.seconds("0s", option: "--gone") }
        #expect(throws: ValidationError.self) { try Baton.Status.seconds("soon", option: "--window") }
        #expect(Baton.Status.span(4.25) == "4.2s" || Baton.Status.span(4.25) == "4.3s")
        #expect(Baton.Status.span(42) == "42s")
        #expect(Baton.Status.span(303) == "5m 3s")
        #expect(Baton.Status.span(7_500) == "2h 5m")
        #expect(Baton.Status.span(3 * 86_400 + 4 * 3600) == "3d 4h")
        #expect(Baton.Status.setting(5_400) == "1h30m")
    }

    /// One line per event: time, source and type padded to columns, the run (and part), the message, then the
    /// attributes sorted by name without the noisy ones.
    @Test func eventLinesHaveColumnsAndHideNoisyAttributes() {
        let event = StatusEvent(
            type: "result.sent",
            source: "algorithm",
            instance: "vm:1",
            time: Date(timeIntervalSince1970: 1_767_225_600.25),
            job: "demo",
            run: "demo@2026-01-01T00:00:00Z",
            part: 2,
            message: "sent",
            attributes: ["size": "2053", "attempt": "1", "sha256": "ab", "host": "vm", "instance": "vm:1"]
        )
        let line = EventFormatter().line(event)
        #expect(line.hasSuffix(" algorithm  result.sent        demo@2026-01-01T00:00:00Z part 2  sent  attempt=1 size=2053"), "\(line)")
        #expect(line.prefix(12) == Substring(EventFormatter.timeOfDay(event.time)))
        var jobOnly = event
        (jobOnly.run, jobOnly.part, jobOnly.message, jobOnly.attributes) = (nil, nil, nil, nil)
        #expect(EventFormatter().line(jobOnly).hasSuffix(" algorithm  result.sent        demo"))
    }

    @Test func upShowsEverythingButHeartbeatsAndDebugLogs() {
        func event(_ type: String) -> StatusEvent { StatusEvent(type: type, source: "s", instance: "i") }
        #expect(Baton.Up.isInteresting(event("run.started")))
        #expect(Baton.Up.isInteresting(event("log.warning")))
        #expect(!Baton.Up.isInteresting(event(EventType.serviceHeartbeat)))
        #expect(!Baton.Up.isInteresting(event("log.debug")))
        #expect(!Baton.Up.isInteresting(event("log.trace")))
    }
}
