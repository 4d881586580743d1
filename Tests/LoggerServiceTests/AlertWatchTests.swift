import Config
import Foundation
import LoggerService
import Messaging
import Testing

/// Which events raise an alert, and when a silent service is down: events and the clock are made up here.
struct AlertWatchTests {
    static let t0 = Date(timeIntervalSince1970: 1_790_000_000)

    static func event(
        _ type: String,
        source: String = "algorithm",
        instance: String? = nil,
        run: String? = "job@2026-09-21T14:00:00.000Z",
        at seconds: Double = 0,
        message: String? = nil,
        _ attributes: [String: String] = [:]
    ) -> StatusEvent {
        StatusEvent(
            type: type,
            source: source,
            instance: instance ?? source,
            time: t0.addingTimeInterval(seconds),
            job: run.map(RunID.job(of:)),
            run: run,
            message: message,
            attributes: attributes
        )
    }

    static func settings(_ on: [String] = Configuration.Alerts.kinds, lag: Duration = .seconds(60)) -> Configuration.Alerts {
        var settings = Configuration.Alerts()
        settings.on = on
        settings.lag = lag
        settings.webhook = "http://127.0.0.1:1/hook"
        return settings
    }

    @Test func eventsThatRaiseAnAlertAndThoseThatDoNot() {
        var watch = AlertWatch(settings: Self.settings())
        func kinds(_ event: StatusEvent) -> [String] { watch.observe(event, received: Self.t0).map(\.kind) }
        #expect(kinds(Self.event(EventType.runFailed, message: "exit 1", ["retry": "true"])) == [], "a failure that will be retried")
        let failed = watch.observe(Self.event(EventType.runFailed, message: "exit 1; stderr: boom"), received: Self.t0)
        #expect(failed.map(\.kind) == ["run.failed"])
        #expect(failed.first?.run == "job@2026-09-21T14:00:00.000Z" && failed.first?.job == "job")
        #expect(failed.first?.message == "exit 1; stderr: boom" && failed.first?.summary.contains("boom") == true)
        #expect(kinds(Self.event(EventType.resultDead, message: "failed 5 times")) == ["result.dead"])
        #expect(kinds(Self.event(EventType.runOverrun, source: "scheduler")) == ["run.overrun"])
        var overrun = AlertWatch(settings: Self.settings(Configuration.Alerts.kinds))
        var late = Self.event(EventType.runOverrun, source: "algorithm")
        late.message = "still running 0.2 s before the next slot"
        let raised = overrun.observe(late, received: Self.t0)
        #expect(raised.first?.summary.contains(late.run ?? "?") == true, "the summary names the run: \(raised)")
        #expect(raised.first?.summary.contains("still running 0.2 s") == true)
        #expect(kinds(Self.event(EventType.runFinished)) == [])
        #expect(kinds(Self.event(EventType.taskFailed, ["dead": "true"])) == [], "a dead letter raises one alert: its result.dead")
    }

    /// A fire later than `alerts.lag` after its slot, on schedule only; once per job per quiet period.
    @Test func scheduleLag() {
        var watch = AlertWatch(settings: Self.settings(lag: .seconds(30)))
        func lag(_ ms: Int, job: String = "job", trigger: String = "schedule", at seconds: Double) -> [String] {
            watch.observe(
                Self.event(
                    EventType.runScheduled,
                    source: "scheduler",
                    run: "\(job)@2026-09-21T14:00:00.000Z",
                    ["lateness_ms": "\(ms)", "trigger": trigger]
                ),
                received: Self.t0.addingTimeInterval(seconds)
            ).map(\.kind)
        }
        #expect(lag(29_000, at: 0) == [])
        #expect(lag(31_000, trigger: "backfill", at: 0) == [], "a backfill's slots are in the past by design")
        #expect(lag(31_000, at: 1) == ["schedule.lag"])
        #expect(lag(90_000, at: 2) == [], "the same job again within the quiet period")
        #expect(lag(90_000, job: "other", at: 3) == ["schedule.lag"])
        #expect(lag(90_000, at: 2 + AlertWatch.lagQuiet) == ["schedule.lag"])
    }

    /// A service silent for three heartbeats and a second is down once; heard again, it is up; one that said
    /// goodbye is not down. Its supervisor seeing it exit makes it down at once.
    @Test func servicesGoneSilent() {
        var watch = AlertWatch(settings: Self.settings())
        func at(_ seconds: Double) -> Date { Self.t0.addingTimeInterval(seconds) }
        let heartbeat = ["interval_ms": "500", "host": "h1"]
        _ = watch.observe(Self.event(EventType.serviceHeartbeat, source: "processor", instance: "p1", run: nil, heartbeat), received: at(0))
        _ = watch.observe(Self.event(EventType.serviceHeartbeat, source: "scheduler", run: nil, heartbeat), received: at(0))
        #expect(watch.check(now: at(2.4)).isEmpty, "3 × 0.5 s + 1 s not yet passed")
        _ = watch.observe(Self.event(EventType.serviceStopped, source: "scheduler", run: nil), received: at(2.4))
        let down = watch.check(now: at(2.6))
        #expect(down.map(\.kind) == ["service.down"])
        #expect(down.first?.service == "processor" && down.first?.instance == "p1" && down.first?.attributes?["host"] == "h1")
        #expect(watch.check(now: at(10)).isEmpty, "once per outage; the scheduler stopped cleanly")
        _ = watch.observe(Self.event(EventType.serviceStarted, source: "processor", instance: "p1", run: nil, heartbeat), received: at(11))
        #expect(watch.check(now: at(12)).isEmpty)
        #expect(watch.check(now: at(13.6)).map(\.instance) == ["p1"], "down again after another silence")

        let exited = watch.observe(
            Self.event(
                EventType.supervisorExited,
                source: "supervisor",
                run: nil,
                ["service": "algorithm", "instance": "algorithm", "status": "killed by signal 9"]
            ),
            received: at(14)
        )
        #expect(exited.map(\.kind) == ["service.down"] && exited.first?.summary.contains("killed by signal 9") == true)
        _ = watch.observe(Self.event(EventType.serviceHeartbeat, source: "algorithm", run: nil, heartbeat), received: at(14.5))
        _ = watch.observe(Self.event(EventType.serviceHeartbeat, source: "supervisor", run: nil, heartbeat), received: at(14.5))
        #expect(watch.check(now: at(15)).isEmpty)

        // A service stopped on purpose (SIGTERM from someone: service.stopped, then its exit) is not down.
        _ = watch.observe(Self.event(EventType.serviceStopped, source: "algorithm", run: nil), received: at(15.1))
        let stopped = watch.observe(
            Self.event(
                EventType.supervisorExited,
                source: "supervisor",
                run: nil,
                ["service": "algorithm", "instance": "algorithm", "status": "exited with status 0"]
            ),
            received: at(15.2)
        )
        #expect(stopped.isEmpty, "\(stopped.map(\.summary))")
    }

    /// Kinds left out of `alerts.on` raise nothing.
    @Test func onlyTheKindsAskedFor() {
        var watch = AlertWatch(settings: Self.settings(["result.dead"]))
        #expect(watch.observe(Self.event(EventType.runFailed), received: Self.t0).isEmpty)
        #expect(watch.observe(Self.event(EventType.resultDead), received: Self.t0).map(\.kind) == ["result.dead"])
        #expect(!watch.watchesServices)
        _ = watch.observe(Self.event(EventType.serviceHeartbeat, run: nil), received: Self.t0)
        #expect(watch.check(now: Self.t0.addingTimeInterval(3600)).isEmpty)
    }

    /// The body: the documented keys, times to the millisecond in UTC, sorted keys.
    @Test func theBody() throws {
        var alert = Alert(kind: "run.failed", time: Self.t0, summary: "run x failed")
        alert.run = "job@2026-09-21T14:00:00.000Z"
        let json = try #require(try JSONSerialization.jsonObject(with: alert.body()) as? [String: Any])
        #expect(json["version"] as? Int == 1)
        #expect(json["kind"] as? String == "run.failed")
        #expect(json["time"] as? String == "2026-09-21T14:13:20.000Z")
        #expect((json["id"] as? String)?.count == 36)
        #expect(json["test"] == nil)
        #expect(Alert.sample().test == true && Alert.sample().kind == "test")
    }
}
