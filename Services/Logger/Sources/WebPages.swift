import Foundation
import Messaging

/// The web view's pages, rendered as HTML strings (no template engine: a few pages, every value escaped by
/// ``WebPages/escape(_:)``).
enum WebPages {
    static func escape(_ text: String) -> String {
        // Most values (run ids, job names, states) have nothing to escape: returned as they are.
        if !text.utf8.contains(where: {
            $0 < 0x20 || $0 == UInt8(ascii: "&") || $0 == UInt8(ascii: "<") || $0 == UInt8(ascii: ">") || $0 == UInt8(ascii: "\"")
                || $0 == UInt8(ascii: "'")
        }) {
            return text
        }
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default:
                // Control characters (but tab and line breaks) cannot forge anything; they are shown as U+FFFD.
                if scalar.value < 0x20 && scalar != "\n" && scalar != "\t" { out += "\u{FFFD}" } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out
    }

    static func path(_ text: String) -> String {
        // Run ids and job names are made of these already (docs/PROTOCOL.md, "Names and run ids").
        let safe = text.utf8.allSatisfy { byte in
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || "-._~@:".utf8.contains(byte)
        }
        if safe { return text }
        return text.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~@:"))) ?? ""
    }

    static func time(_ date: Date?) -> String {
        guard let date else { return "–" }
        return Timestamp.format(date).replacingOccurrences(of: "T", with: " ").replacingOccurrences(of: "Z", with: "")
    }

    static func duration(_ seconds: Double?) -> String {
        guard let seconds, seconds.isFinite else { return "–" }
        switch seconds {
        case ..<1: return String(format: "%.0f ms", seconds * 1000)
        case ..<60: return String(format: "%.1f s", seconds)
        case ..<3600: return String(format: "%dm %02ds", Int(seconds) / 60, Int(seconds) % 60)
        default: return String(format: "%dh %02dm", Int(seconds) / 3600, Int(seconds) % 3600 / 60)
        }
    }

    static func layout(_ title: String, live: Bool = true, _ body: String) -> String {
        """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(escape(title)) · Baton</title><link rel="stylesheet" href="/static/baton.css"><script src="/static/baton.js" defer></script></head>
        <body data-live="\(live ? "1" : "0")"><header><a class="brand" href="/">Baton</a><nav><a href="/">Jobs</a><a href="/timeline">Timeline</a></nav>
        <span id="live" class="live" title="live updates">●</span><span id="flash" role="status"></span></header>
        <main>\(body)</main></body></html>
        """
    }

    /// The login form; `failed`: the token given was wrong, `throttled`: it was not even compared (too many wrong
    /// ones just now).
    static func login(failed: Bool, throttled: Bool = false, required: Bool) -> String {
        let note = required ? "" : "<p>This view has no token (web.token): it is read-only, and there is nothing to log in to.</p>"
        let error =
            throttled
            ? "<p class=\"error\">Too many wrong tokens just now: this one was not checked. Try again in a second.</p>"
            : failed ? "<p class=\"error\">That token is not the one in the configuration (web.token).</p>" : ""
        return layout(
            "Log in",
            live: false,
            """
            <h1>Log in</h1>\(error)\(note)
            <form method="post" action="/login" class="login"><label>Token <input type="password" name="token" autocomplete="current-password" required></label>
            <button type="submit">Log in</button></form>
            """
        )
    }

    static func notFound(_ path: String) -> String {
        layout("Not found", live: false, "<h1>Not found</h1><p>\(escape(path)) is not a page here. <a href=\"/\">Jobs</a></p>")
    }

    static func problem(_ text: String) -> String {
        layout("Problem", live: false, "<h1>Cannot show this</h1><p class=\"error\">\(escape(text))</p>")
    }

    static func stateClass(_ state: String?) -> String {
        switch state {
        case "succeeded": "ok"
        case "failed", "dead": "bad"
        case "cancelled", "skipped": "muted"
        case nil: "muted"
        default: "busy"
        }
    }

    // MARK: - Jobs

    /// Each job with its schedule and next fire (from the scheduler), and its latest run and how its kept runs
    /// ended (from the run history: a run whose task died is `dead` there, though its algorithm succeeded).
    static func jobs(
        report: StatusReport,
        scheduled: [ControlReply.Job]?,
        summaries: [String: RunHistory.JobSummary],
        actions: Bool
    ) -> String {
        var names = Set(summaries.keys)
        for job in scheduled ?? [] { names.insert(job.name) }
        let schedule = Dictionary(uniqueKeysWithValues: (scheduled ?? []).map { ($0.name, $0) })
        var rows = ""
        for name in names.sorted() {
            let summary = summaries[name]
            let fired = schedule[name]
            var buttons = ""
            if actions && fired != nil {
                buttons = "<button data-action=\"trigger\" data-job=\"\(escape(name))\">Trigger</button>"
                buttons +=
                    fired?.paused == true
                    ? "<button data-action=\"resume\" data-job=\"\(escape(name))\">Resume</button>"
                    : "<button data-action=\"pause\" data-job=\"\(escape(name))\">Pause</button>"
            }
            let counts = summary.map { summary in
                ["succeeded", "failed", "dead", "cancelled", "skipped"].compactMap { state in
                    summary.counts[state].map { "<span class=\"\(stateClass(state))\">\($0) \(state)</span>" }
                }.joined(separator: ", ")
            }
            rows += """
                <tr data-job="\(escape(name))"><td><a href="/timeline?job=\(path(name))">\(escape(name))</a></td>
                <td>\(escape(fired.map { "\($0.schedule) (\($0.timeZone))" } ?? "–"))</td>
                <td>\(fired?.paused == true ? "<span class=\"muted\">paused</span>" : escape(time(fired?.next)))</td>
                <td>\(summary.map { "<a href=\"/run/\(path($0.lastRun))\">\(escape($0.lastRun))</a>" } ?? "–")</td>
                <td class="\(stateClass(summary?.lastState))">\(escape(summary?.lastState ?? "–"))</td>
                <td>\(counts ?? "–")</td><td>\(buttons)</td></tr>
                """
        }
        var services = ""
        for service in report.services {
            services +=
                "<tr><td>\(escape(service.service))</td><td>\(escape(service.instance))</td><td class=\"\(service.state == "up" ? "ok" : "bad")\">\(escape(service.state))</td><td>\(escape(service.host ?? "–"))</td><td>\(escape(time(service.lastSeen)))</td></tr>"
        }
        let unknown = scheduled == nil ? "<p class=\"muted\">The scheduler did not answer: schedules and next fires are unknown.</p>" : ""
        let readOnly = actions ? "" : "<p class=\"muted\">Read-only: actions need web.token.</p>"
        return layout(
            "Jobs",
            """
            <h1>Jobs</h1>\(unknown)\(readOnly)
            <table id="jobs"><thead><tr><th>Job</th><th>Schedule</th><th>Next fire</th><th>Latest run</th><th>Its state</th><th>Kept runs</th><th></th></tr></thead>
            <tbody>\(rows.isEmpty ? "<tr><td colspan=\"7\" class=\"muted\">No jobs yet.</td></tr>" : rows)</tbody></table>
            <h2>Services</h2><table id="services"><thead><tr><th>Service</th><th>Instance</th><th>State</th><th>Host</th><th>Last seen</th></tr></thead>
            <tbody>\(services)</tbody></table>
            """
        )
    }

    // MARK: - Timeline

    /// Runs as bars over time, one lane per job: a tick at each slot, a line for the fire's lateness, the
    /// algorithm's span, then its processing until the pipeline ended, and each stage's span underneath.
    static func timeline(
        spans: [RunHistory.Span],
        truncated: Bool,
        from: Date,
        to: Date,
        span: String,
        job: String?,
        now: Date
    ) -> String {
        let jobs = Array(Set(spans.map(\.job))).sorted()
        let left = 170.0
        let width = 1000.0
        let lane = 34.0
        let top = 28.0
        let height = top + Double(max(jobs.count, 1)) * lane + 8
        let start = RunHistory.milliseconds(from)
        let end = RunHistory.milliseconds(to)
        let nowMs = RunHistory.milliseconds(now)
        let scale = width / Double(max(end - start, 1))
        func x(_ ms: Int64) -> Double { left + min(max(Double(ms - start) * scale, 0), width) }
        func number(_ value: Double) -> String { decimal(value) }
        var svg = ""
        svg.reserveCapacity(spans.count * 420 + 4096)
        // The axis: about eight ticks at a round interval.
        let steps: [Int64] = [60_000, 300_000, 900_000, 1_800_000, 3_600_000, 10_800_000, 21_600_000, 43_200_000, 86_400_000, 604_800_000]
        let step = steps.first { (end - start) / $0 <= 10 } ?? steps[steps.count - 1]
        var tick = (start / step + 1) * step
        while tick < end {
            let label = Timestamp.format(milliseconds: tick)
            let text =
                step >= 86_400_000
                ? String(label.prefix(10)) : String(label.dropFirst(step >= 3_600_000 ? 5 : 11).prefix(step >= 3_600_000 ? 11 : 5))
            svg +=
                "<line class=\"grid\" x1=\"\(number(x(tick)))\" y1=\"\(number(top - 6))\" x2=\"\(number(x(tick)))\" y2=\"\(number(height))\"/>"
            svg += "<text class=\"axis\" x=\"\(number(x(tick)))\" y=\"14\">\(escape(text.replacingOccurrences(of: "T", with: " ")))</text>"
            tick += step
        }
        if nowMs > start && nowMs < end {
            svg +=
                "<line class=\"now\" x1=\"\(number(x(nowMs)))\" y1=\"\(number(top - 6))\" x2=\"\(number(x(nowMs)))\" y2=\"\(number(height))\"/>"
        }
        let laneOf = Dictionary(uniqueKeysWithValues: jobs.enumerated().map { ($1, Double($0)) })
        for (name, index) in laneOf {
            let y = top + index * lane
            svg +=
                "<text class=\"job\" x=\"4\" y=\"\(number(y + 15))\"><a href=\"/timeline?job=\(path(name))&amp;span=\(span)\">\(escape(String(name.prefix(22))))</a></text>"
            svg +=
                "<line class=\"lane\" x1=\"\(number(left))\" y1=\"\(number(y + lane - 2))\" x2=\"\(number(left + width))\" y2=\"\(number(y + lane - 2))\"/>"
        }
        for run in spans {
            let y = top + (laneOf[run.job] ?? 0) * lane
            let state = run.state
            var title = "\(run.run)\n\(state)"
            if let error = run.error { title += "\n\(String(error.prefix(300)))" }
            svg +=
                "<g class=\"run \(stateClass(state))\" data-run=\"\(escape(run.run))\" data-state=\"\(escape(state))\" data-job=\"\(escape(run.job))\"><a href=\"/run/\(path(run.run))\"><title>\(escape(title))</title>"
            svg +=
                "<line class=\"slot\" x1=\"\(number(x(run.slot)))\" y1=\"\(number(y))\" x2=\"\(number(x(run.slot)))\" y2=\"\(number(y + 5))\"/>"
            if let fired = run.scheduled, fired > run.slot {
                svg +=
                    "<line class=\"late\" x1=\"\(number(x(run.slot)))\" y1=\"\(number(y + 3))\" x2=\"\(number(x(fired)))\" y2=\"\(number(y + 3))\"/>"
            }
            if state == "skipped" {
                svg += "<circle class=\"skipped\" cx=\"\(number(x(run.slot)))\" cy=\"\(number(y + 11))\" r=\"2.5\"/>"
            } else {
                let algorithmStart = run.started ?? run.scheduled ?? run.slot
                let algorithmEnd = run.finished ?? (["failed", "cancelled"].contains(state) ? run.ended : nil) ?? nowMs
                let kind = ["failed", "cancelled"].contains(state) && run.finished == nil ? stateClass(state) : "algorithm"
                svg += bar(kind, x(algorithmStart), x(algorithmEnd), y + 6, 10)
                if let finished = run.finished {
                    let processed = run.ended ?? nowMs
                    svg += bar(state == "succeeded" ? "processing" : stateClass(state), x(finished), x(processed), y + 6, 10)
                }
                for stage in run.stages {
                    guard let ready = stage.ready else { continue }
                    let row = y + 18 + Double(stage.index % 3) * 4
                    svg += bar("stage s\(stage.index % 6)", x(ready), x(stage.done ?? nowMs), row, 3)
                }
            }
            svg += "</a></g>"
        }
        var zoom = ""
        for option in WebView.spans.map(\.name) {
            let jobQuery = job.map { "&amp;job=\(path($0))" } ?? ""
            zoom +=
                option == span
                ? "<b>\(option)</b>" : "<a href=\"/timeline?span=\(option)\(jobQuery)&amp;end=\(path(Timestamp.format(to)))\">\(option)</a>"
        }
        let seconds = Double(end - start) / 1000
        let jobQuery = job.map { "&amp;job=\(path($0))" } ?? ""
        let earlier = "<a href=\"/timeline?span=\(span)\(jobQuery)&amp;end=\(path(Timestamp.format(from)))\">← earlier</a>"
        let later =
            "<a href=\"/timeline?span=\(span)\(jobQuery)&amp;end=\(path(Timestamp.format(to.addingTimeInterval(seconds))))\">later →</a>"
        let note =
            truncated
            ? "<p class=\"error\">Too many runs to draw them all: the first \(spans.count) are shown; narrow the span or pick a job.</p>"
            : ""
        return layout(
            "Timeline",
            """
            <h1>Timeline\(job.map { " of \(escape($0))" } ?? "")</h1>
            <p class="toolbar">\(earlier) <span class="zoom">\(zoom)</span> \(later) \(job == nil ? "" : "<a href=\"/timeline?span=\(span)\">all jobs</a>")
            <span class="muted">\(escape(time(from))) – \(escape(time(to))) UTC, \(spans.count) runs</span></p>\(note)
            <p class="legend"><span class="key algorithm"></span>algorithm <span class="key processing"></span>processing <span class="key stage s0"></span>stages <span class="key bad"></span>failed or dead <span class="key late"></span>fired late</p>
            <svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="\(number(left + width + 10))" height="\(number(height))" viewBox="0 0 \(number(left + width + 10)) \(number(height))">\(svg)</svg>
            \(spans.isEmpty ? "<p class=\"muted\">No runs in this span.</p>" : "")
            """
        )
    }

    static func bar(_ kind: String, _ x1: Double, _ x2: Double, _ y: Double, _ height: Double) -> String {
        "<rect class=\"\(kind)\" x=\"\(decimal(x1))\" y=\"\(decimal(y))\" width=\"\(decimal(max(x2 - x1, 1)))\" height=\"\(Int(height))\"/>"
    }

    /// A coordinate with one decimal, written without `String(format:)` (which a week of runs calls 100,000 times).
    static func decimal(_ value: Double) -> String {
        let tenths = Int((value * 10).rounded())
        let sign = tenths < 0 ? "-" : ""
        return "\(sign)\(abs(tenths) / 10).\(abs(tenths) % 10)"
    }

    // MARK: - A run

    static func run(_ run: RunsReport.Run, actions: Bool) -> String {
        func row(_ name: String, _ value: String?) -> String {
            guard let value else { return "" }
            return "<tr><th>\(escape(name))</th><td>\(value)</td></tr>"
        }
        var fields = row("State", "<span class=\"\(stateClass(run.state))\" id=\"state\">\(escape(run.state))</span>")
        fields += row("Job", "<a href=\"/timeline?job=\(path(run.job))\">\(escape(run.job))</a>")
        fields += row("Slot", escape(time(run.slot)))
        fields += row("Trigger", run.trigger.map(escape))
        fields += row(
            "Fired",
            run.scheduledAt.map { escape(time($0)) + (run.latenessMs.map { " (\(escape(duration($0 / 1000))) late)" } ?? "") }
        )
        fields += row("Algorithm", run.startedAt.map { escape(time($0)) + " → " + escape(time(run.finishedAt)) })
        fields += row("Duration", run.durationMs.map { escape(duration($0 / 1000)) })
        fields += row("Ended", run.endedAt.map { escape(time($0)) })
        fields += row("Attempts", run.attempts > 0 ? "\(run.attempts)" : nil)
        fields += row("Parts", run.parts.map { "\($0)" + (run.size.map { ", \($0) bytes" } ?? "") })
        fields += row("Dead tasks", run.dead > 0 ? "<span class=\"bad\">\(run.dead)</span>" : nil)
        fields += row("Error", run.error.map { "<pre class=\"error\">\(escape($0))</pre>" })
        var stages = ""
        for stage in run.stages {
            let replay =
                actions
                ? "<button data-action=\"replay\" data-run=\"\(escape(run.run))\" data-stage=\"\(escape(stage.name ?? ""))\">Replay from here</button>"
                : ""
            stages += """
                <tr><td>\(stage.index)</td><td>\(escape(stage.name ?? "?"))</td><td>\(stage.succeeded) / \(stage.parts.map(String.init) ?? "?")</td>
                <td>\(stage.failed)</td><td class="\(stage.dead > 0 ? "bad" : "")">\(stage.dead)</td><td>\(escape(time(stage.readyAt)))</td>
                <td>\(escape(time(stage.doneAt)))</td><td>\(stage.readyAt.flatMap { ready in stage.doneAt.map { escape(duration($0.timeIntervalSince(ready))) } } ?? "–")</td><td>\(replay)</td></tr>
                """
        }
        var tasks = ""
        for task in run.tasks ?? [] {
            tasks += """
                <tr class="\(stateClass(task.state))"><td>\(task.stage)</td><td>\(task.part)</td><td>\(escape(task.state))</td><td>\(task.attempts)</td>
                <td>\(escape(task.processor ?? "–"))</td><td>\(task.error.map { "<pre>\(escape($0))</pre>" } ?? "")</td></tr>
                """
        }
        let inFlight = !["succeeded", "failed", "cancelled", "skipped", "dead"].contains(run.state)
        let cancel = actions && inFlight ? "<button data-action=\"cancel\" data-run=\"\(escape(run.run))\">Cancel</button>" : ""
        return layout(
            run.run,
            """
            <h1>\(escape(run.run))</h1><p class="toolbar">\(cancel) <a href="/logs?run=\(path(run.run))">Events of this run</a></p>
            <table class="fields" id="run">\(fields)</table>
            <h2>Stages</h2><table id="stages"><thead><tr><th>#</th><th>Stage</th><th>Done</th><th>Failed attempts</th><th>Dead</th><th>Ready</th><th>Done at</th><th>Took</th><th></th></tr></thead><tbody>\(stages)</tbody></table>
            <h2>Tasks</h2><p class="muted">Tasks with events of their own; small tasks stored in a batch are counted on their stage.</p>
            <table id="tasks"><thead><tr><th>Stage</th><th>Part</th><th>State</th><th>Attempts</th><th>Processor</th><th>Error (last stderr lines)</th></tr></thead><tbody>\(tasks)</tbody></table>
            """
        )
    }

    static func logs(run: String, lines: [String]) -> String {
        let body = lines.map(escape).joined(separator: "\n")
        return layout(
            "Events of \(run)",
            live: false,
            """
            <h1>Events of <a href="/run/\(path(run))">\(escape(run))</a></h1><p class="muted">From the event log (its current file and the newest rotated one); `baton logs --run` reads them all.</p>
            <pre class="log">\(body.isEmpty ? "none found" : body)</pre>
            """
        )
    }
}
