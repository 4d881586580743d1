import Foundation
import GRDB
import Glibc
import Testing

/// The attacker of ``AttackTests`` (scripts/attack.py, run as this user or another) and the oracle it is judged
/// by, derived from the job's slot grid and payload function only, never from the services' own answers.
enum Attacker {
    static let job = "atk"
    static let everyMs: Int64 = 200
    /// Every slot runs (`allow`, `misfire: all`), so every slot of a window must be stored: a skip is never "by
    /// policy". The grace only keeps a first start from catching up on slots since the anchor.
    static let yaml = """
        jobs:
          - name: atk
            every: 200ms
            overlap: allow
            misfire: all
            grace: 30s
            command: ["/bin/sh", "-c", "printf 'payload for %s\\n' \\"$BATON_RUN_ID\\" > \\"$BATON_OUTPUT\\""]

        """

    /// What the job's run `run` writes: the oracle of the stored bytes.
    static func payload(_ run: String) -> Data { Data("payload for \(run)\n".utf8) }

    /// What attack.py reported: one JSON object per attack, and its summary.
    struct Report: Sendable {
        let output: String
        var lines: [[String: Any]] {
            output.split(separator: "\n").compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] }
        }
        var summary: [String: Any]? { lines.first { $0["attack"] as? String == "summary" } }
        var key: String? { summary?["key"] as? String }
        /// The attacks through which anything came back or got in.
        var breaches: [String] { lines.filter { $0["breach"] as? Bool == true }.compactMap { $0["attack"] as? String } }
        func line(_ attack: String) -> [String: Any]? { lines.first { $0["attack"] as? String == attack } }
    }

    /// Runs attack.py against `stack` for `duration` seconds, as `user` when given (with `setpriv`, root only).
    static func attack(
        _ stack: TestStack,
        python: String,
        _ arguments: [String],
        user: String? = nil,
        duration: Double = 4
    ) async throws -> Report {
        // Copied where any user can read it: the repository may be under a home folder others cannot enter.
        // Attacks run side by side (`async let`), so each copies under a name of its own and renames it into place:
        // a check-then-copy raced, and the second copy failed with "file exists" (seen in CI).
        let script = stack.directory + "/attack.py"
        if !FileManager.default.fileExists(atPath: script) {
            let copy = script + ".\(UUID().uuidString)"
            try FileManager.default.copyItem(atPath: TestStack.repository + "/scripts/attack.py", toPath: copy)
            chmod(copy, 0o644)
            guard rename(copy, script) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
            chmod(stack.directory, 0o755)
        }
        let common = ["attack.py", "--config", stack.configPath, "--job", job, "--every-ms", "\(everyMs)", "--duration", "\(duration)"]
        let limit = Duration.seconds(Int64(duration) + 40)
        let outcome =
            if let user {
                try await Scripts.execute(
                    "/usr/bin/setpriv",
                    ["--reuid=\(user)", "--regid=nogroup", "--clear-groups", python] + common + arguments,
                    directory: stack.directory,
                    timeout: limit
                )
            } else {
                try await Scripts.run(python, common + arguments, directory: stack.directory, timeout: limit)
            }
        return Report(output: outcome.output)
    }

    /// The run id of the slot at `milliseconds` since 1970 (PROTOCOL.md, "Names and run ids").
    static func runId(_ milliseconds: Int64) -> String {
        var seconds = time_t(milliseconds / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(
            format: "%@@%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
            job,
            parts.tm_year + 1900,
            parts.tm_mon + 1,
            parts.tm_mday,
            parts.tm_hour,
            parts.tm_min,
            parts.tm_sec,
            Int32(milliseconds % 1000)
        )
    }

    /// The run ids of the grid's slots from `start` (exclusive) to `end` (inclusive).
    static func slots(after start: Date, through end: Date) -> [String] {
        let first = (Int64(start.timeIntervalSince1970 * 1000) / everyMs + 1) * everyMs
        let last = Int64(end.timeIntervalSince1970 * 1000) / everyMs * everyMs
        return stride(from: first, through: last, by: Int(everyMs)).map(runId)
    }

    /// Whether `run` is one of the job's own slots since `start` (not a forged one, a trigger's or a backfill's).
    static func isOwnSlot(_ run: String, since start: Date) -> Bool {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        guard run.hasPrefix(job + "@"), let date = formatter.date(from: String(run.dropFirst(job.count + 1))) else { return false }
        let milliseconds = Int64((date.timeIntervalSince1970 * 1000).rounded())
        let first = Int64(start.timeIntervalSince1970 * 1000) / everyMs * everyMs
        let last = Int64(Date().timeIntervalSince1970 * 1000) + 60_000
        return milliseconds % everyMs == 0 && (first...last).contains(milliseconds) && runId(milliseconds) == run
    }

    /// What is wrong with the store: each slot of `window` must be stored exactly once (part 0) with the
    /// job's bytes, and nothing else but the job's own slots since `start`; no conflict kept aside.
    static func storeProblems(_ stack: TestStack, window: [String], since start: Date) throws -> [String] {
        let rows = try stack.read { db in
            try Row.fetchAll(db, sql: "SELECT run_id, part, blob FROM results").map {
                (run: $0["run_id"] as String, part: $0["part"] as Int, blob: $0["blob"] as Data?)
            }
        }
        let conflicts = (try? stack.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM conflicts") ?? 0 }) ?? 0
        var problems = conflicts > 0 ? ["\(conflicts) conflicts kept aside"] : []
        let byRun = Dictionary(grouping: rows, by: \.run)
        for run in window {
            let stored = byRun[run] ?? []
            if stored.count != 1 || stored.first?.part != 0 {
                problems.append("\(run) stored \(stored.count) times (parts \(stored.map(\.part)))")
            } else if stored.first?.blob != payload(run) {
                problems.append("\(run) stored as \(stored.first?.blob.map { String(decoding: $0, as: UTF8.self) } ?? "nil")")
            }
        }
        for run in byRun.keys where !isOwnSlot(run, since: start) { problems.append("stored a run that is no slot: \(run)") }
        return problems
    }

    /// What is wrong with the scheduler's fires (docs/ARCHITECTURE.md: `fires(run_id, state, …)`): a run that
    /// is no slot (a trigger's, a backfill's, a forged one) or a slot cancelled.
    static func fireProblems(_ stack: TestStack, since start: Date) throws -> [String] {
        let fires = try stack.read(stack.schedulerPath) { db in
            try Row.fetchAll(db, sql: "SELECT run_id, state FROM fires").map { (run: $0["run_id"] as String, state: $0["state"] as String) }
        }
        return fires.compactMap { fire in
            if !isOwnSlot(fire.run, since: start) { return "fired a run that is no slot: \(fire.run) (\(fire.state))" }
            return fire.state == "cancelled" ? "\(fire.run) cancelled" : nil
        }
    }

    /// The events in the logger's event log (`<data_dir>/logs/events.jsonl`), as JSON objects.
    static func events(_ stack: TestStack) -> [[String: Any]] {
        guard let text = try? String(contentsOfFile: stack.dataDirectory + "/logs/events.jsonl", encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] }
    }

    /// The services that published `auth.refused` for `key`.
    static func refusers(of key: String, in events: [[String: Any]]) -> Set<String> {
        Set(
            events.filter { $0["type"] as? String == "auth.refused" && ($0["attributes"] as? [String: String])?["key"] == key }
                .compactMap { $0["source"] as? String }
        )
    }

    /// Events that should not exist after a refused attack: anything from a forged instance, any message the
    /// services read and rejected (a refused client is turned away before a message is read), a run event for a
    /// run that is no slot.
    static func eventProblems(_ events: [[String: Any]], since start: Date) -> [String] {
        events.compactMap { event in
            let type = event["type"] as? String ?? ""
            if (event["instance"] as? String ?? "").hasPrefix("forged") { return "a forged event got in: \(event)" }
            if type == "message.rejected" { return "a message was read and rejected: \(event)" }
            if let run = event["run"] as? String, type.hasPrefix("run."), !isOwnSlot(run, since: start) {
                return "\(type) for a run that is no slot: \(run)"
            }
            return nil
        }
    }

    /// What is wrong with `baton status --json` asked with the stack's own key: a service that is not one of the
    /// stack's, or the job paused. Asked until the scheduler's part (`paused`) is in.
    static func statusProblems(_ stack: TestStack, processors: Int) async throws -> [String] {
        var problems = ["no answer to baton status"]
        _ = try await stack.waitUntil(timeout: .seconds(30), poll: .milliseconds(500)) {
            let asked = try await stack.baton(["status", "--json"])
            guard asked.status == 0, let status = (try? JSONSerialization.jsonObject(with: Data(asked.output.utf8))) as? [String: Any],
                let job = (status["jobs"] as? [[String: Any]])?.first(where: { $0["name"] as? String == job }),
                let paused = job["paused"] as? Bool
            else { return false }
            let services = (status["services"] as? [[String: Any]]) ?? []
            let processorNames = Set((1...max(processors, 1)).map { "processor-\($0)" })
            problems = services.compactMap { service in
                let (kind, instance) = (service["service"] as? String ?? "", service["instance"] as? String ?? "")
                let own = ["logger", "scheduler", "algorithm"].contains(kind) || (kind == "processor" && processorNames.contains(instance))
                return own && !instance.hasPrefix("forged") ? nil : "a service that is not the stack's: \(kind) \(instance)"
            }
            if paused { problems.append("the job is paused") }
            return true
        }
        return problems
    }
}
