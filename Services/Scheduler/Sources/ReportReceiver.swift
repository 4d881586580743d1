import Foundation
public import Logging
import Messaging
public import Config
public import ServiceKit
import Scheduling
public import ServiceLifecycle

public import ZMQ

/// Receives the algorithm's run reports on the `reports` PULL socket and records them: this is how the
/// scheduler learns reliably that a run was accepted, finished or failed. When a run ends, a run queued
/// behind it (overlap policy `queue`) is sent; when a run starts, an overrun into the next slot is foreseen.
public struct ReportReceiver: Service {
    private let jobs: [String: Configuration.Job]
    private let ledger: SchedulerState
    private let reports: SocketInbound
    private let dispatcher: Dispatcher
    private let publisher: StatusPublisher?
    private let logger: Logger
    private let rejector: MessageRejector

    /// Creates the receiver.
    /// - Parameter rejector: How malformed reports are turned away; by default a `reports` rejector on `publisher`.
    public init(
        jobs: [Configuration.Job],
        ledger: SchedulerState,
        reports: SocketInbound,
        dispatcher: Dispatcher,
        publisher: StatusPublisher?,
        logger: Logger,
        rejector: MessageRejector? = nil
    ) {
        self.rejector = rejector ?? MessageRejector(socket: "reports", publisher: publisher, logger: logger)
        self.jobs = Dictionary(jobs.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        self.ledger = ledger
        self.reports = reports
        self.dispatcher = dispatcher
        self.publisher = publisher
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                while !Task.isCancelled {
                    guard let frames = try? await reports.receive() else { return }
                    do {
                        let report = try Wire.decode(RunReport.self, from: frames).message
                        guard let state = try await ledger.apply(report) else { continue }
                        if state == .accepted, let job = jobs[report.job], try await ledger.fire(report.runID)?.request.trigger == .schedule
                        {
                            group.addTask { await self.watchForOverrun(report.runID, job: job) }
                        } else if state.isTerminal {
                            try await releaseQueued(job: report.job)
                        }
                    } catch let error as ProtocolError {
                        rejector.reject(error, frames: frames)
                    } catch {
                        logger.error("cannot record a run report", metadata: ["error": "\(error)"])
                    }
                }
            }
        }
    }

    private func releaseQueued(job: String) async throws {
        guard try await ledger.inFlight(job: job).isEmpty, let queued = try await ledger.oldestQueued(job: job) else { return }
        guard try await ledger.release(queued.request.runID) else { return }
        var request = queued.request
        request.firedAt = Date()
        dispatcher.send(request, lateness: request.firedAt.timeIntervalSince(request.logicalTime) * 1000)
    }

    /// Seconds as a person reads them: `1.5 s`, or `120 ms` below a second (a job every 300 ms said "0.0 s").
    static func shown(_ seconds: Double) -> String {
        seconds >= 1 ? String(format: "%.1f s", seconds) : String(format: "%.0f ms", seconds * 1000)
    }

    /// Warns before a run runs into its job's next slot: at once if its recent runs took longer than the time
    /// left, else shortly before the slot if it is still running then.
    private func watchForOverrun(_ runID: String, job: Configuration.Job) async {
        let now = Date()
        guard let next = job.schedule.next(after: now) else { return }
        let left = next.timeIntervalSince(now)
        let durations = (try? await ledger.recentDurations(job: job.name)) ?? []
        if !durations.isEmpty {
            let typical = durations.sorted()[durations.count / 2]
            if typical > left {
                warn(
                    runID,
                    job: job,
                    next: next,
                    reason: "recent runs took \(Self.shown(typical)); \(Self.shown(left)) are left before the next slot"
                )
                return
            }
        }
        // Check a tenth of the time left before the slot (at least 50 ms, but never earlier than halfway, so a
        // job every 10 ms is not warned about at once).
        let margin = min(max(left * 0.1, min(0.05, left / 2)), 60)
        try? await Task.sleep(for: .milliseconds(Int64((left - margin) * 1000)))
        if Task.isCancelled { return }
        if let state = try? await ledger.state(runID: runID), state.isInFlight {
            warn(runID, job: job, next: next, reason: "still running \(Self.shown(margin)) before the next slot")
        }
    }

    private func warn(_ runID: String, job: Configuration.Job, next: Date, reason: String) {
        logger.warning("run will overrun into the next slot: \(reason)", metadata: ["job": "\(job.name)", "run": "\(runID)"])
        publisher?.publish(
            EventType.runOverrun,
            job: job.name,
            run: runID,
            level: "warning",
            message: reason,
            attributes: ["next_slot": Timestamp.format(next), "overlap": job.overlap.rawValue]
        )
    }
}
