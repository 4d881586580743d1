import Foundation
import Glibc
import Messaging
import Testing

import TestSupport

/// The logger's web view against real services, in a real browser (headless Chromium, driven over its DevTools
/// protocol by scripts/browser_check.py) and by plain HTTP clients.
@Suite(.serialized)
struct WebViewTests {
    static let token = "open-sesame-0123456789"

    static let yaml = """
        web:
          enabled: true
          token: \(token)
        jobs:
          - name: tick
            every: 1s
            misfire: all
            builtin: demo
            duration: 50ms
            result_size: 64
          - name: broken
            every: 2s
            misfire: all
            command: [sh, -c, "echo broken >&2; exit 4"]
          - name: manual
            at: 2100-01-01T00:00:00Z
            builtin: demo
            duration: 10ms
            result_size: 64

        """

    /// One request over a fresh connection, redirects not followed.
    static func request(
        _ port: Int,
        _ path: String,
        method: String = "GET",
        headers: [String: String] = [:],
        body: String? = nil
    ) async throws -> (status: Int, body: String, head: String) {
        var text = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        if let body { text += "Content-Length: \(body.utf8.count)\r\n" }
        text += "\r\n" + (body ?? "")
        let bytes = Array(text.utf8)
        let reply = await Blocking.onThread { RawHTTP.send(bytes, to: port, readTimeout: 10) }
        return (reply.status ?? 0, reply.body, reply.head)
    }

    /// The slots of a job every second from the first to the last seen, all there.
    static func missingSlots(_ runs: [String]) -> [String] {
        let slots = runs.compactMap { RunID.parse($0).flatMap { Timestamp.parse($0.timestamp) } }.sorted()
        guard let first = slots.first, let last = slots.last else { return [] }
        let seen = Set(slots.map { Int(($0.timeIntervalSince1970).rounded()) })
        return (Int(first.timeIntervalSince1970.rounded())...Int(last.timeIntervalSince1970.rounded())).filter { !seen.contains($0) }
            .map { RunID.make(job: "tick", logicalTime: Date(timeIntervalSince1970: Double($0))) }
    }

    @Test(.timeLimit(.minutes(4)))
    func theTimelineInAHeadlessBrowserAndATriggerFromThePage() async throws {
        let chromium = try #require(
            ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) },
            "no Chromium (apt-get install chromium; scripts/install-deps.sh --test installs it)"
        )
        let python = try #require(await Scripts.python(with: ["json"]), "no python3")
        let base = try StatusTests.freePortRange(4)
        try await TestStack.with("web", yaml: Self.yaml, metricsPorts: base) { stack in
            try stack.startServices()
            // A few seconds of runs in the history first.
            let enough = try await stack.waitUntil(timeout: .seconds(60)) {
                let outcome = try await stack.baton(["runs", "--job", "tick", "--state", "succeeded", "--json"])
                guard outcome.status == 0, let report = try? Timestamp.decoder().decode(RunsReport.self, from: Data(outcome.output.utf8))
                else { return false }
                return report.runs.count >= 4
            }
            #expect(enough)
            let broken = try await stack.waitUntil(timeout: .seconds(30)) {
                (try await stack.baton(["runs", "--job", "broken", "--state", "failed"])).output.contains("broken@")
            }
            #expect(broken)

            let screenshot = stack.directory + "/timeline.png"
            let outcome = try await Scripts.run(
                python,
                [
                    TestStack.repository + "/scripts/browser_check.py", chromium, "http://127.0.0.1:\(base)", Self.token, "manual",
                    screenshot,
                ]
            )
            #expect(outcome.status == 0, "\(outcome.output.suffix(2000))")
            let json = try #require(
                outcome.output.split(separator: "\n").last.flatMap {
                    try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
                },
                "\(outcome.output.suffix(2000))"
            )
            #expect((json["errors"] as? [String]) == [], "\(json)")
            let timeline = (json["timeline"] as? [[String]]) ?? []
            // What the page draws, checked against the inputs: every slot of `tick` between the first and the last
            // drawn, each run of `tick` on its job's lane, and `broken`'s runs failed (or skipped, by the default overlap
            // policy, when a loaded machine still ran the one before at the next slot).
            let ticks = timeline.filter { $0.count == 3 && $0[2] == "tick" }
            #expect(ticks.count >= 4, "\(timeline.prefix(20))")
            #expect(
                Self.missingSlots(ticks.map { $0[0] }).isEmpty,
                "slots missing from the timeline: \(Self.missingSlots(ticks.map { $0[0] }))"
            )
            #expect(ticks.allSatisfy { RunID.job(of: $0[0]) == "tick" })
            #expect(ticks.filter { $0[1] == "succeeded" }.count >= 3, "\(ticks)")
            let failures = timeline.filter { $0.count == 3 && $0[2] == "broken" }
            #expect(
                !failures.isEmpty && failures.allSatisfy { ["failed", "skipped", "scheduled", "accepted", "running"].contains($0[1]) },
                "\(failures)"
            )
            #expect(failures.contains { $0[1] == "failed" })
            #expect(FileManager.default.fileExists(atPath: screenshot))
            #expect(json["live"] as? Bool == true, "the page's live updates did not connect")

            // The click on Trigger started a run of `manual`, which fires on its own only in 2100.
            #expect((json["flash"] as? String)?.contains("triggered") == true, "\(json["flash"] ?? "")")
            let triggered = try await stack.waitUntil(timeout: .seconds(30)) {
                (try await stack.baton(["runs", "--job", "manual"])).output.contains("manual@")
            }
            #expect(triggered, "no run of manual after the page's Trigger")
        }
    }

    /// Without the token nothing is shown and nothing is done; with it, an action also needs its header (a page of
    /// another site cannot send it); a wrong token is refused like none, and many wrong tokens are not even compared.
    @Test(.timeLimit(.minutes(2)))
    func requestsWithoutTheTokenAreRefused() async throws {
        let base = try StatusTests.freePortRange(4)
        try await TestStack.with("webauth", yaml: Self.yaml, metricsPorts: base) { stack in
            try stack.start("logger", "baton-logger")
            try stack.start("scheduler", "baton-scheduler")
            let up = try await stack.waitUntil(timeout: .seconds(60)) { (try? await Self.request(base, "/login"))?.status == 200 }
            #expect(up)
            let bearer = ["Authorization": "Bearer \(Self.token)"]
            #expect(try await Self.request(base, "/").status == 303)
            #expect(try await Self.request(base, "/api/runs").status == 401)
            #expect(try await Self.request(base, "/api/runs", headers: ["Authorization": "Bearer wrong-token-0123456789"]).status == 401)
            #expect(try await Self.request(base, "/", headers: ["Cookie": "baton_token=\(Self.token)x"]).status == 303)
            let trigger = #"{"job":"manual"}"#
            #expect(try await Self.request(base, "/api/trigger", method: "POST", body: trigger).status == 401)
            let noHeader = try await Self.request(base, "/api/trigger", method: "POST", headers: bearer, body: trigger)
            #expect(noHeader.status == 403, "\(noHeader)")
            #expect(try await stack.baton(["runs", "--job", "manual"]).output.contains("no runs"), "refused requests started nothing")

            // The token opens it.
            let page = try await Self.request(base, "/", headers: bearer)
            #expect(page.status == 200 && page.body.contains("<table id=\"jobs\">"), "\(page.body.prefix(500))")
            let login = try await Self.request(base, "/login", method: "POST", body: "token=\(Self.token)")
            #expect(login.status == 303)
            // The cookie it sets opens the pages; one computed from the token alone (a guess's test) does not.
            let cookie = login.head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("set-cookie: baton_session=") }
                .map { String($0.dropFirst("set-cookie: ".count).prefix { $0 != ";" }) }
            let session = try #require(cookie, "\(login.head)")
            #expect(try await Self.request(base, "/", headers: ["Cookie": session]).status == 200)
            let computed = "baton_session=" + SHA256.hex(of: Data("baton-web-session:\(Self.token)".utf8))
            #expect(try await Self.request(base, "/", headers: ["Cookie": computed]).status == 303)
            #expect(try await Self.request(base, "/api/runs", headers: ["Authorization": "bearer \(Self.token)"]).status == 200)
            let badLimit = try await Self.request(base, "/api/runs?limit=many", headers: bearer)
            #expect(badLimit.status == 400 && badLimit.body.contains(#""error":"limit"#), "\(badLimit)")
            let done = try await Self.request(
                base,
                "/api/trigger",
                method: "POST",
                headers: bearer.merging(["X-Baton-Action": "1"]) { $1 },
                body: trigger
            )
            #expect(done.status == 200 && done.body.contains("\"ok\":true"), "\(done)")
            // The scheduler's answer as control.reply has it: the run ids a list, keys without a value left out.
            let answer = try JSONSerialization.jsonObject(with: Data(done.body.utf8)) as? [String: Any]
            #expect((answer?["runs"] as? [String])?.first?.hasPrefix("manual@") == true && answer?["error"] == nil, "\(done.body)")
            let action = bearer.merging(["X-Baton-Action": "1"]) { $1 }
            let numbered = try await Self.request(base, "/api/trigger", method: "POST", headers: action, body: #"{"job":5}"#)
            #expect(numbered.status == 400 && numbered.body.contains("job: expected a string"), "\(numbered)")
            let wrongMethod = try await Self.request(base, "/api/trigger", headers: bearer)
            #expect(wrongMethod.status == 405 && wrongMethod.head.lowercased().contains("allow: post"), "\(wrongMethod)")
            #expect(try await Self.request(base, "/timeline?span=bogus", headers: bearer).status == 400)
            // A body announced too large is answered before it is sent (the server then waits out its timeout).
            let huge = Array(
                "POST /api/trigger HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(Self.token)\r\nContent-Length: 99999999999\r\n\r\n{}".utf8
            )
            #expect(await Blocking.onThread { RawHTTP.send(huge, to: base, readTimeout: 2) }.status == 413)
            #expect(try await Self.request(base, "/metrics").status == 200, "metrics stay open to Prometheus")

            // Guessing: past a burst of wrong tokens, none is compared for a moment (429); then the right one works.
            var statuses: [Int] = []
            var throttledPage: String?
            for index in 0..<20 {
                let reply = try await Self.request(base, "/login", method: "POST", body: "token=guess-\(index)")
                statuses.append(reply.status)
                if reply.status == 429 {
                    throttledPage = reply.body
                    #expect(reply.head.lowercased().contains("retry-after: 1"), "\(reply.head)")
                }
            }
            #expect(statuses.contains(429) && statuses.allSatisfy { [401, 429].contains($0) }, "\(statuses)")
            // The form's 429 is the login page saying why, not the API's JSON.
            #expect(throttledPage?.contains("Too many wrong tokens") == true && throttledPage?.contains("<form") == true)
            let again = try await stack.waitUntil(timeout: .seconds(20)) {
                try await Self.request(base, "/", headers: bearer).status == 200
            }
            #expect(again, "the right token after the guesses")
        }
    }
}
