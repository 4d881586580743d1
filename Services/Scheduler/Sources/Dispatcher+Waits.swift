import Foundation
import Logging
import Messaging
import Config
import ServiceKit

// The dispatcher's waits: for the algorithm to confirm the runs in flight, and for the state to be writable.
extension Dispatcher {
    /// The job's live runs in flight, each confirmed by the algorithm: it is asked about (its request sent
    /// again, stamped with the time of asking; the algorithm answers a request it has with the run's state and
    /// that stamp) and the answer awaited, asking again every 2 s while the algorithm is away. So overlap is
    /// never decided on a run whose end was reported but lost (a service killed as the report travelled).
    /// ``InFlightConfirmation`` decides; this reads the ledger, sends the questions and waits.
    /// - Returns: nil if the task was cancelled first, or `giveUpAfter` passed.
    func confirmedInFlight(job: String, giveUpAfter: Duration? = nil) async -> [String]? {
        guard let ledger else { return [] }
        let start = clock.now()
        let deadline = giveUpAfter.map { start.addingTimeInterval($0 / .seconds(1)) }
        // Only an answer to a question asked from now on tells the state as it is now: a report that was
        // already on its way can be older than an end whose report was lost.
        var confirmation = InFlightConfirmation(since: start.addingTimeInterval(-(confirmWithin / .seconds(1))))
        while !Task.isCancelled {
            let fires = (try? await ledger.inFlight(job: job)) ?? []
            switch confirmation.step(fires: fires.map { ($0.request, $0.lastAnswer) }, now: clock.now()) {
            case .confirmed(let runs, let afterWaiting):
                if afterWaiting { logger.notice("the algorithm confirmed the runs in flight", metadata: ["job": "\(job)"]) }
                return runs
            case .ask(let questions, let announceWaiting):
                if announceWaiting {
                    logger.notice(
                        "waiting for the algorithm to confirm the runs in flight before applying the overlap policy",
                        metadata: ["job": "\(job)", "runs": "\(questions.map(\.runID).joined(separator: ", "))"]
                    )
                }
                for question in questions where sink.submit(question) { try? await ledger.markResent(question.runID) }
            case .wait:
                break
            }
            if let deadline, clock.now() >= deadline { return nil }
            // The answers arrive in the ledger through the ReportReceiver; it is looked at again shortly.
            try? await clock.sleep(until: clock.now().addingTimeInterval(0.01))
        }
        return nil
    }

    /// Records fires, retrying while the state cannot be written; reports a full disk and its end.
    /// - Returns: for each record, whether it was new; empty if the task was cancelled first.
    func record(_ records: [SchedulerState.Record], job: String) async -> [Bool] {
        guard let ledger else { return records.map { _ in true } }
        var delay = Duration.milliseconds(200)
        var failing = false
        while true {
            do {
                let isNew = try await ledger.record(records)
                if failing {
                    logger.notice("the scheduler state is writable again; recorded what was waiting", metadata: ["job": "\(job)"])
                    publisher?.publish(EventType.diskOK, job: job, level: "notice", message: "scheduler state writable again")
                }
                return isNew
            } catch {
                if !failing {
                    let full = SchedulerState.isDiskFull(error)
                    logger.error(
                        "cannot record fired slots\(full ? " (disk full)" : ""); holding them and retrying: nothing is sent unrecorded",
                        metadata: ["job": "\(job)", "slots": "\(records.count)", "error": "\(error)"]
                    )
                    publisher?.publish(
                        EventType.diskFull,
                        job: job,
                        level: "error",
                        message: "cannot record fired slots: \(error)",
                        attributes: ["path": "scheduler/state.sqlite", "full": "\(full)"]
                    )
                    failing = true
                }
                do { try await clock.sleep(until: clock.now().addingTimeInterval(delay / .seconds(1))) } catch { return [] }
                delay = min(delay * 2, .seconds(5))
            }
        }
    }
}
