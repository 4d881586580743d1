import Foundation
import Logging
import LoggerService
import Messaging
import Testing

struct StatusBoardTests {
    let start = Date(timeIntervalSince1970: 1_800_000_000)

    func event(
        _ type: String,
        _ source: String = "processor",
        _ instance: String = "processor-1",
        at offset: Double = 0,
        job: String? = nil,
        run: String? = nil,
        level: String? = nil,
        message: String? = nil,
        _ attributes: [String: String]? = nil
    ) -> StatusEvent {
        StatusEvent(
            type: type,
            source: source,
            instance: instance,
            seq: 1,
            time: start.addingTimeInterval(offset),
            job: job,
            run: run,
            level: level,
            message: message,
            attributes: attributes
        )
    }

    /// `disk.full` shows in the report until the same instance says `disk.ok` (or starts again).
    @Test func diskFullIsShownUntilTheServiceRecovers() {
        var board = StatusBoard()
        board.apply(event(EventType.diskFull, "scheduler", "s1", level: "error", message: "cannot record fired slots"), received: start)
        #expect(board.report(now: start).diskFull == ["scheduler/s1": "cannot record fired slots"])
        board.apply(event(EventType.diskOK, "scheduler", "s1", at: 5), received: start.addingTimeInterval(5))
        #expect(board.report(now: start.addingTimeInterval(5)).diskFull == nil)
    }

    /// A client turned away for its key is listed with the recent errors, as a malformed message is.
    @Test func refusedClientsAreListedWithTheErrors() {
        var board = StatusBoard()
        let refusal = "refused a client at 10.0.0.9 on tcp://0.0.0.0:7603: its key K is not allowed"
        board.apply(event(EventType.authRefused, "algorithm", "a1", level: "warning", message: refusal), received: start)
        #expect(board.report(now: start).errors.map(\.message) == [refusal])
        #expect(board.report(now: start).errors.first?.type == EventType.authRefused)
    }

    /// A processor's `store.down` shows the same way until its `store.up`.
    @Test func aStoreOutageIsShownUntilTheStoreIsBack() {
        var board = StatusBoard()
        board.apply(event(EventType.storeDown, "processor", "p1", level: "error", message: "the store is down"), received: start)
        #expect(board.report(now: start).diskFull == ["processor/p1": "the store is down"])
        board.apply(event(EventType.storeUp, "processor", "p1", at: 5), received: start.addingTimeInterval(5))
        #expect(board.report(now: start.addingTimeInterval(5)).diskFull == nil)
    }

    func heartbeat(at offset: Double, pid: String = "42") -> StatusEvent {
        event(
            EventType.serviceHeartbeat,
            at: offset,
            ["pid": pid, "host": "h1", "version": "9.9", "interval_ms": "1000", "uptime_s": "\(Int(offset))"]
        )
    }

    func service(_ board: StatusBoard, at offset: Double) -> StatusReport.Service? {
        board.report(now: start.addingTimeInterval(offset)).services.first { $0.instance == "processor-1" }
    }

    @Test func aServiceIsDownAfterThreeMissedHeartbeats() {
        var board = StatusBoard()
        board.apply(event(EventType.serviceStarted, at: 0, ["pid": "42", "host": "h1", "version": "9.9"]), received: start)
        board.apply(heartbeat(at: 1), received: start.addingTimeInterval(1))
        let up = service(board, at: 2)
        #expect(up?.state == "up")
        #expect(up?.host == "h1")
        #expect(up?.pid == 42)
        #expect(up?.version == "9.9")
        #expect(up?.uptimeSeconds == 2)
        #expect(up?.heartbeatMs == 1000)
        // Three 1-s heartbeats (plus a second of slack) after the last one it is still up, then down.
        #expect(service(board, at: 5)?.state == "up")
        #expect(service(board, at: 5.5)?.state == "down")
        #expect(service(board, at: 5.5)?.uptimeSeconds == nil)
        board.apply(heartbeat(at: 6), received: start.addingTimeInterval(6))
        #expect(service(board, at: 6)?.state == "up")
    }

    @Test func aGoodbyeIsStoppedNotDown() {
        var board = StatusBoard()
        board.apply(event(EventType.serviceStarted), received: start)
        board.apply(event(EventType.serviceStopped, at: 1), received: start.addingTimeInterval(1))
        #expect(service(board, at: 100)?.state == "stopped")
        #expect(service(board, at: 100)?.restarts == 0)
    }

    @Test func theSupervisorsExitReportIsDownAtOnceAndTheRestartIsCounted() {
        var board = StatusBoard()
        board.apply(event(EventType.serviceStarted, at: 0, ["pid": "42"]), received: start)
        let exit = event(
            EventType.supervisorExited,
            "supervisor",
            "h1:7",
            at: 1,
            level: "error",
            message: "processor-1 killed by signal 9",
            ["service": "processor", "instance": "processor-1", "status": "killed by signal 9"]
        )
        board.apply(exit, received: start.addingTimeInterval(1))
        let down = service(board, at: 1.1)
        #expect(down?.state == "down")
        #expect(down?.lastExit == "killed by signal 9")
        // The new process logs before it announces itself; only its service.started counts as the restart.
        board.apply(event("log.info", at: 1.5, level: "info", message: "started"), received: start.addingTimeInterval(1.5))
        board.apply(event(EventType.serviceStarted, at: 1.5, ["pid": "43"]), received: start.addingTimeInterval(1.5))
        let again = service(board, at: 2)
        #expect(again?.state == "up")
        #expect(again?.pid == 43)
        #expect(again?.restarts == 1)
        #expect(again?.lastExit == "killed by signal 9")
        #expect(board.report(now: start).errors.first?.message == "processor-1 killed by signal 9")
    }

    @Test func aRestartWithoutGoodbyeIsCountedEvenWithoutASupervisor() {
        var board = StatusBoard()
        board.apply(event("log.info", level: "info", message: "started"), received: start)
        board.apply(event(EventType.serviceStarted), received: start)
        #expect(service(board, at: 0)?.restarts == 0)
        board.apply(event(EventType.serviceStarted, at: 30), received: start.addingTimeInterval(30))
        #expect(service(board, at: 30)?.restarts == 1)
        #expect(service(board, at: 30)?.lastExit == "ended without stopping")
    }

    /// `docker stop` then `docker start`: the new process logs before its `service.started`, which must not turn
    /// the earlier clean stop into a death.
    @Test func aCleanStopThenStartIsNoRestartEvenWhenTheNewProcessLogsFirst() {
        var board = StatusBoard()
        board.apply(event(EventType.serviceStarted, at: 0, ["pid": "1"]), received: start)
        board.apply(event(EventType.serviceStopped, at: 10), received: start.addingTimeInterval(10))
        board.apply(event("log.info", at: 20, level: "info", message: "starting"), received: start.addingTimeInterval(20))
        board.apply(event(EventType.serviceStarted, at: 20, ["pid": "1"]), received: start.addingTimeInterval(20))
        let again = service(board, at: 21)
        #expect(again?.state == "up")
        #expect(again?.restarts == 0)
        #expect(again?.lastExit == nil)
        // The next death without a goodbye is still one.
        board.apply(event("log.info", at: 40, level: "info", message: "starting"), received: start.addingTimeInterval(40))
        board.apply(event(EventType.serviceStarted, at: 40, ["pid": "1"]), received: start.addingTimeInterval(40))
        #expect(service(board, at: 41)?.restarts == 1)
        #expect(service(board, at: 41)?.lastExit == "ended without stopping")
    }

    @Test func runsGoFromFiredThroughProgressToHistory() {
        var board = StatusBoard()
        let run = "hourly@2027-01-15T08:00:00.000Z"
        func apply(_ type: String, at offset: Double, message: String? = nil, _ attributes: [String: String]? = nil) {
            board.apply(
                event(type, "algorithm", "algorithm", at: offset, job: "hourly", run: run, message: message, attributes),
                received: start.addingTimeInterval(offset)
            )
        }
        apply(EventType.runScheduled, at: 0)
        #expect(board.report(now: start).runs.map(\.state) == ["scheduled"])
        apply(EventType.runAccepted, at: 0.1)
        apply(EventType.runStarted, at: 0.2, ["attempt": "1"])
        apply(EventType.runProgress, at: 10, message: "halfway", ["percent": "50.0"])
        var runs = board.report(now: start).runs
        #expect(runs.count == 1)
        #expect(runs.first?.state == "running")
        #expect(runs.first?.percent == 50)
        #expect(runs.first?.message == "halfway")
        #expect(runs.first?.startedAt == start.addingTimeInterval(0.2))
        apply(EventType.runFailed, at: 11, message: "exit 1", ["retry": "true", "attempt": "1"])
        #expect(board.report(now: start).runs.first?.state == "retrying")
        apply(EventType.runStarted, at: 12, ["attempt": "2"])
        apply(EventType.runFinished, at: 20, ["duration_ms": "8000"])
        let report = board.report(now: start)
        runs = report.runs
        #expect(runs.isEmpty)
        #expect(report.recent.first?.run == run)
        #expect(report.recent.first?.state == "succeeded")
        #expect(report.recent.first?.attempt == 2)
        #expect(report.jobs.first?.name == "hourly")
        #expect(report.jobs.first?.lastOutcome == "succeeded")
        #expect(report.jobs.first?.lastDurationMs == 8000)
        #expect(report.jobs.first?.succeeded == 1)
    }

    @Test func backlogErrorsAndLossesAreKept() {
        var board = StatusBoard()
        board.apply(
            event(EventType.resultBacklog, "algorithm", "algorithm", ["pending": "3", "sent": "1", "dead": "2"]),
            received: start
        )
        board.apply(event("log.error", level: "error", message: "processing failed: disk full"), received: start)
        board.apply(event("log.warning", level: "warning", message: "slow"), received: start)
        board.apply(event(EventType.messageRejected, message: "bad frame"), received: start)
        board.recordLoss(publisher: "processor/processor-1", lost: 5, at: start)
        board.recordLoss(publisher: "processor/processor-1", lost: 9, at: start)
        let report = board.report(now: start)
        #expect(report.backlog == .init(pending: 3, sent: 1, dead: 2, time: start))
        #expect(report.errors.map(\.message) == ["bad frame", "processing failed: disk full"])
        #expect(report.eventsLost == ["processor/processor-1": 14])
    }

    /// Services down or stopped for longer than the threshold leave the main view; `all` lists them, marked
    /// gone. A service that keeps heartbeating never goes, however old its start.
    @Test func goneServicesLeaveTheMainViewAfterTheThresholdAndShowWithAll() {
        var board = StatusBoard()
        let minute = 60.0
        func at(_ offset: Double) -> Date { start.addingTimeInterval(offset) }
        // Long-lived: heartbeats every second from 0 to 30 minutes.
        board.apply(event(EventType.serviceStarted, "scheduler", "scheduler", ["interval_ms": "1000"]), received: start)
        // A hand-started algorithm that said goodbye at 1 minute, and one killed at 2 minutes (its supervisor saw it).
        board.apply(event(EventType.serviceStarted, "algorithm", "vm:101"), received: start)
        board.apply(event(EventType.serviceStopped, "algorithm", "vm:101", at: minute), received: at(minute))
        board.apply(event(EventType.serviceStarted, "processor", "processor-1"), received: start)
        board.apply(event(EventType.serviceHeartbeat, "processor", "processor-1", at: 2 * minute), received: at(2 * minute))
        board.apply(
            event(
                EventType.supervisorExited,
                "supervisor",
                "h:1",
                at: 2 * minute,
                ["service": "processor", "instance": "processor-1", "status": "killed by signal 9"]
            ),
            received: at(2 * minute)
        )
        for second in stride(from: 1.0, through: 30 * minute, by: 1) {
            board.apply(
                event(EventType.serviceHeartbeat, "scheduler", "scheduler", at: second, ["interval_ms": "1000"]),
                received: at(second)
            )
        }
        func instances(_ report: StatusReport) -> [String] { report.services.map(\.instance) }
        // The supervisor (`baton up`) that reported the kill is a service too: last heard at 2 minutes.
        let everyone = ["vm:101", "processor-1", "scheduler", "h:1"]
        // 9 minutes after its goodbye, vm:101 is still listed (stopped); 10 minutes and a second after, it is gone.
        let early = board.report(now: at(10 * minute))
        #expect(instances(early) == everyone)
        #expect(early.services.map(\.state) == ["stopped", "down", "up", "down"])
        #expect(early.hiddenServices == 0)
        let later = board.report(now: at(11 * minute + 1))
        #expect(instances(later) == ["processor-1", "scheduler", "h:1"])
        #expect(later.hiddenServices == 1)
        #expect(later.goneAfterSeconds == 600)
        let late = board.report(now: at(30 * minute))
        #expect(instances(late) == ["scheduler"])
        #expect(late.hiddenServices == 3)
        // All of them with `all`, the gone ones marked; a longer threshold keeps them in the main view.
        let all = board.report(now: at(30 * minute), view: .init(all: true))
        #expect(instances(all) == everyone)
        #expect(all.services.map(\.gone) == [true, true, nil, true])
        #expect(all.hiddenServices == nil)
        #expect(instances(board.report(now: at(30 * minute), view: .init(goneAfter: 3600))) == everyone)
        // Saving forgets nothing that `all` can still show.
        board.forgetDeparted(now: at(30 * minute))
        #expect(instances(board.report(now: at(30 * minute), view: .init(all: true))) == everyone)
    }

    /// Errors and lost events are counted per instance over the window: once the trouble stops they clear,
    /// while the total lost since the history began is kept apart.
    @Test func errorsAndLossesClearAfterTheWindow() {
        var board = StatusBoard()
        func at(_ offset: Double) -> Date { start.addingTimeInterval(offset) }
        board.apply(event(EventType.serviceStarted, at: 0, ["interval_ms": "1000"]), received: start)
        board.apply(event("log.error", at: 10, level: "error", message: "store failed"), received: at(10))
        board.apply(event("log.error", at: 20, level: "error", message: "store failed again"), received: at(20))
        board.apply(event("log.error", "scheduler", "scheduler", at: 20, level: "error", message: "other"), received: at(20))
        board.recordLoss(publisher: "processor/processor-1", lost: 7, at: at(30))
        for second in stride(from: 1.0, through: 700, by: 1) {
            board.apply(event(EventType.serviceHeartbeat, at: second, ["interval_ms": "1000"]), received: at(second))
        }
        let during = board.report(now: at(300))
        #expect(during.windowSeconds == 600)
        #expect(during.errors.map(\.message) == ["other", "store failed again", "store failed"])
        #expect(during.eventsLost == ["processor/processor-1": 7])
        let processor = during.services.first { $0.instance == "processor-1" }
        #expect(processor?.recentErrors == 2)
        #expect(processor?.recentEventsLost == 7)
        // 600 s after the first error only the later ones are left; after the last, none.
        #expect(board.report(now: at(615)).errors.map(\.message) == ["other", "store failed again"])
        let after = board.report(now: at(631))
        #expect(after.errors.isEmpty)
        #expect(after.eventsLost.isEmpty)
        #expect(after.eventsLostTotal == ["processor/processor-1": 7])
        let quiet = after.services.first { $0.instance == "processor-1" }
        #expect(quiet?.state == "up")
        #expect(quiet?.recentErrors == nil)
        #expect(quiet?.recentEventsLost == nil)
        // A wider window still counts them.
        #expect(board.report(now: at(631), view: .init(window: 3600)).errors.count == 3)
    }

    /// A board saved before losses had times (no `lossLog`) still loads.
    @Test func aBoardSavedBeforeTheWindowLoads() throws {
        let saved = Data(#"{"services":{},"inFlight":{},"recent":[],"jobs":{},"errors":[],"lost":{"a/b":3}}"#.utf8)
        let board = try Timestamp.decoder().decode(StatusBoard.self, from: saved)
        #expect(board.report(now: start).eventsLostTotal == ["a/b": 3])
        #expect(board.report(now: start).eventsLost.isEmpty)
    }

    @Test func keeperSavesAndReloadsTheHistory() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("board-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/logger/status.json"
        let logger = Logger(label: "test")
        let keeper = StatusKeeper(path: path, logger: logger)
        keeper.apply(event(EventType.serviceStarted), received: start)
        keeper.apply(
            event(EventType.runFinished, "algorithm", "algorithm", job: "j", run: "j@2027-01-15T08:00:00.000Z", ["duration_ms": "5"]),
            received: start
        )
        keeper.saveIfChanged(now: start)
        let reloaded = StatusKeeper(path: path, logger: logger)
        #expect(reloaded.report(now: start) == keeper.report(now: start))
        #expect(reloaded.report(now: start).recent.count == 1)

        // A damaged file is set aside, and the logger starts a new history instead of failing.
        try Data("{not json".utf8).write(to: URL(fileURLWithPath: path))
        let fresh = StatusKeeper(path: path, logger: logger)
        #expect(fresh.report(now: start).recent.isEmpty)
        #expect(FileManager.default.fileExists(atPath: path + ".corrupt"))
    }
}
