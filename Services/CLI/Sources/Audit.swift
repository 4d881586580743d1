import ArgumentParser
import Foundation
import Messaging
import ProcessorService
import Config
import ServiceKit
import SchedulerService
import Scheduling

extension Baton {
    /// `baton audit`: checks the accounting invariant on a running or stopped deployment.
    struct Audit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check that every slot is accounted for, every run ended once, and every result was stored once.",
            discussion: """
                Asks the scheduler (endpoints.control) for its fires and the algorithm (endpoints.algorithm_control) \
                for its run ledger and outbox, and reads the result store (store.url, or else store.path), so the scheduler and the \
                algorithm must be running (it says so and exits 3 when one is not). It checks, for each job:
                  - every slot of its schedule from its first fire to the last slot the scheduler handled is either \
                fired (one run id) or skipped with a recorded reason;
                  - every fired run has one outcome, the same at the scheduler and the algorithm (succeeded, failed \
                or cancelled);
                  - every result part of a succeeded run is stored exactly once, with its size and sha256;
                  - for a job with stages: every stage of the run's pipeline was made and all its tasks were \
                acknowledged (a dead task is a violation), a merge stage had exactly one task, and every task of the \
                last (store) stage is stored exactly once, with its size and sha256.
                Runs still in flight and slots not yet due are listed, not counted as violations. Exits 1 if there \
                is any violation, 0 if there is none.
                """
        )

        @OptionGroup var options: ServiceOptions

        @OptionGroup var selection: ResultSelection

        @Flag(help: "Print the findings as one JSON object.")
        var json = false

        func run() async throws {
            let configuration = try options.loadConfiguration(command: "audit")
            let context = try options.clientContext(configuration, command: "audit")
            let job = selection.job
            let from = selection.from
            let to = selection.to
            let jobs = configuration.jobs.filter { job == nil || $0.name == job }
            if let job, jobs.isEmpty {
                throw ValidationError("unknown job \"\(job)\"; configured jobs: \(configuration.jobs.map(\.name).joined(separator: ", "))")
            }
            var findings = Findings()
            let scheduler = ControlClient(context: context, endpoint: configuration.endpoints.control, timeout: .seconds(10))
            let algorithm = AlgorithmClient(context: context, endpoint: configuration.endpoints.algorithmControl, command: "audit")
            let storePath = configuration.storePath
            // The result store is the deployment's output (store.path), read as any consumer of it would.
            let store =
                !configuration.store.url.isEmpty || FileManager.default.fileExists(atPath: storePath)
                ? try await ResultStore.open(configuration, name: "baton audit") : nil
            // In the order the facts are made (the scheduler records a fire before the algorithm has it; the
            // algorithm ends a run with its parts in one transaction; a processor stores a part before it is
            // acknowledged), so that a deployment at work is never caught half-way through a change.
            var recorded: [String: ControlReply] = [:]
            for job in jobs {
                recorded[job.name] = try await scheduler.send(ControlRequest(command: .fires, job: job.name), command: "audit")
            }
            let ledgerRuns = try await algorithm.ask(AlgorithmRequest(command: .runs)).runs ?? []
            let runs = Dictionary(ledgerRuns.map { ($0.request.runID, $0) }, uniquingKeysWith: { first, _ in first })
            // Before the parts: a stage's tasks are made in the transaction that completes the stage before it.
            let stages = try await algorithm.ask(AlgorithmRequest(command: .stages)).stages ?? []
            var stagesByRun: [String: [AlgorithmReply.Stage]] = [:]
            for stage in stages { stagesByRun[stage.run, default: []].append(stage) }
            let parts = try await algorithm.ask(AlgorithmRequest(command: .results)).parts ?? []
            var partsByRun: [String: [AlgorithmReply.Part]] = [:]
            for entry in parts { partsByRun[entry.header.runID, default: []].append(entry) }
            var stored: [String: (size: Int, sha256: String)] = [:]
            var storedStage: [String: String] = [:]
            for row in try await store?.storedParts() ?? [] {
                stored["\(row.runID)#\(row.part)"] = (row.size, row.sha256)
                storedStage["\(row.runID)#\(row.part)"] = row.stage
            }
            let now = Date()
            func inRange(_ date: Date) -> Bool { (from.map { date >= $0.date } ?? true) && (to.map { date <= $0.date } ?? true) }

            for job in jobs {
                let fires = recorded[job.name]?.fires ?? []
                let byID = Dictionary(fires.map { ($0.request.runID, $0) }, uniquingKeysWith: { first, _ in first })
                // Slots: from the first scheduled fire to the last slot handled.
                let scheduled = fires.filter { $0.request.trigger == .schedule }
                if let first = scheduled.map(\.request.logicalTime).min(), let cursor = recorded[job.name]?.lastSlot {
                    let start = max(first, from?.date ?? first)
                    let end = min(cursor, to?.date ?? cursor)
                    if start <= end {
                        let grid = MissedSlots.slots(of: job.schedule, after: start.addingTimeInterval(-0.0005), until: end, limit: .max)
                        findings.slots += grid.count
                        for slot in grid {
                            let runID = RunID.make(job: job.name, logicalTime: slot)
                            guard let fire = byID[runID] else {
                                findings.violation("\(runID): slot neither fired nor skipped")
                                continue
                            }
                            if fire.state == .skipped {
                                findings.skipped += 1
                                if (fire.detail ?? "").isEmpty { findings.violation("\(runID): skipped without a reason") }
                            }
                        }
                    }
                    let paused = recorded[job.name]?.paused ?? false
                    let due = MissedSlots.slots(of: job.schedule, after: cursor, until: min(now, to?.date ?? now), limit: 100_000).count
                    if due > 0 {
                        findings.note(
                            "\(job.name): \(due) slot(s) due after the last one handled (\(Timestamp.format(cursor)))"
                                + (paused
                                    ? "; the job is paused: they are decided at its resume" : "; the scheduler handles them when it runs")
                        )
                    }
                }
                // Outcomes: every fired run ends once, the same at both ends.
                for fire in fires where fire.state != .skipped && inRange(fire.request.logicalTime) {
                    findings.fired += 1
                    let runID = fire.request.runID
                    let run = runs[runID]
                    switch (fire.state.isTerminal, run) {
                    case (true, .some(let run)) where run.state.isTerminal:
                        if FireState(run.state) != fire.state {
                            findings.violation("\(runID): the scheduler says \(fire.state.rawValue), the algorithm \(run.state.rawValue)")
                        }
                    case (true, .some(let run)):
                        findings.violation("\(runID): the scheduler says \(fire.state.rawValue), the algorithm still \(run.state.rawValue)")
                    case (true, nil):
                        if fire.state != .cancelled { findings.violation("\(runID): \(fire.state.rawValue) but unknown to the algorithm") }
                    case (false, .some(let run)) where run.state.isTerminal:
                        findings.lagging += 1
                        findings.note(
                            "\(runID): \(run.state.rawValue) at the algorithm; the scheduler still has it \(fire.state.rawValue) (reconciled while it runs)"
                        )
                    case (false, .some):
                        findings.inFlight += 1
                    case (false, nil):
                        if fire.state == .accepted || fire.state == .running {
                            findings.violation("\(runID): \(fire.state.rawValue) at the scheduler but unknown to the algorithm")
                        } else {
                            findings.inFlight += 1
                        }
                    }
                    if let run, run.state.isTerminal {
                        switch run.state {
                        case .finished: findings.succeeded += 1
                        case .failed: findings.failed += 1
                        default: findings.cancelled += 1
                        }
                    }
                }
                // Results: every part of a succeeded run stored exactly once, byte for byte (size and sha256).
                for run in runs.values where run.request.job == job.name && run.state == .finished && inRange(run.request.logicalTime) {
                    var runParts = partsByRun[run.request.runID] ?? []
                    if let pipeline = stagesByRun[run.request.runID], let last = pipeline.last {
                        // Only the store stage's tasks end in the result store; the pipeline is checked as stages.
                        Self.check(pipeline: pipeline, run: run.request.runID, into: &findings)
                        runParts = runParts.filter { $0.header.stageNumber == last.stage }
                    } else if runParts.isEmpty {
                        findings.violation("\(run.request.runID): succeeded without a result part")
                    }
                    for entry in runParts {
                        findings.parts += 1
                        var key = "\(entry.header.runID)#\(entry.header.part)"
                        if let stage = entry.header.stage {
                            if let name = storedStage[key], name != stage.name {
                                findings.violation("\(key): stored by stage \(name), but the run's store stage is \(stage.name)")
                            }
                            key += " (stage \(stage.name))"
                        }
                        let row = stored["\(entry.header.runID)#\(entry.header.part)"]
                        if let row, row.sha256 != entry.header.sha256 || row.size != entry.header.size {
                            findings.violation(
                                "\(key): stored with size \(row.size) sha256 \(row.sha256), handed off as \(entry.header.size) \(entry.header.sha256)"
                            )
                            continue
                        }
                        switch entry.state {
                        case .acked:
                            if row == nil {
                                if store == nil {
                                    findings.note("\(key): acknowledged; no result store at \(storePath) to check it against")
                                } else {
                                    findings.violation("\(key): acknowledged but not in the result store \(storePath)")
                                }
                            } else {
                                findings.stored += 1
                            }
                        case .dead:
                            findings.violation(
                                "\(key): dead-lettered (\(entry.lastError ?? "no reason")); `baton replay --dead` after a fix"
                            )
                        default:
                            if row != nil { findings.stored += 1 } else { findings.undelivered += 1 }
                        }
                    }
                }
            }
            findings.print(json: json)
            if !findings.violations.isEmpty { throw ExitCode(1) }
        }
    }
}

/// What `baton audit` found.
struct Findings {
    var violations: [String] = []
    var notes: [String] = []
    var slots = 0
    var skipped = 0
    var fired = 0
    var succeeded = 0
    var failed = 0
    var cancelled = 0
    var inFlight = 0
    var lagging = 0
    var parts = 0
    var stored = 0
    var undelivered = 0
    var pipelines = 0
    var pipelinesInFlight = 0
    var tasks = 0

    mutating func violation(_ text: String) { violations.append(text) }
    mutating func note(_ text: String) { notes.append(text) }

    func print(json: Bool) {
        let counts: [String: Int] = [
            "slots": slots, "skipped": skipped, "fired": fired, "succeeded": succeeded, "failed": failed, "cancelled": cancelled,
            "inFlight": inFlight, "lagging": lagging, "parts": parts, "stored": stored, "undelivered": undelivered,
            "pipelines": pipelines, "pipelinesInFlight": pipelinesInFlight, "tasks": tasks,
        ]
        if json {
            let object: [String: Any] = ["ok": violations.isEmpty, "violations": violations, "notes": notes, "counts": counts]
            if let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) {
                Console.line(String(decoding: data, as: UTF8.self))
            }
            return
        }
        for violation in violations { Console.line("VIOLATION \(violation)") }
        for note in notes.prefix(50) { Console.line("note: \(note)") }
        if notes.count > 50 { Console.line("note: … and \(notes.count - 50) more") }
        Console.line(
            "slots \(slots) (skipped \(skipped)); runs \(fired): succeeded \(succeeded), failed \(failed), cancelled \(cancelled), "
                + "in flight \(inFlight + lagging); parts \(parts): stored \(stored), not yet stored \(undelivered); "
                + (pipelines == 0 ? "" : "pipelines \(pipelines) (in flight \(pipelinesInFlight)), tasks \(tasks); ")
                + "\(violations.count) violation(s)"
        )
    }
}
