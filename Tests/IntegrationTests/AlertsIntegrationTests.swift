import Foundation
import Glibc
import Messaging
import Testing

/// Alerts against real services: a failed run, a dead letter and a killed processor each reach the command and
/// the webhook with the documented body; a failing webhook is retried and logged, and holds nothing up.
struct AlertsIntegrationTests {
    /// A webhook receiver: answers 500 to its first `failFirst` requests, then 200, and appends one JSON line per
    /// request (`received`, seconds since the epoch, and the `body` as it came) to `log`. It stops by itself after
    /// `seconds`.
    static let receiver = """
        import http.server, json, sys, time
        port_file, fail_first, log, seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
        count = [0]
        class Hook(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                count[0] += 1
                with open(log, "a") as f:
                    f.write(json.dumps({"received": time.time(), "path": self.path, "type": self.headers.get("Content-Type"),
                                        "authorization": self.headers.get("Authorization"), "body": body.decode()}) + "\\n")
                self.send_response(500 if count[0] <= fail_first else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()
            def log_message(self, *args):
                pass
        server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
        server.timeout = 0.2
        with open(port_file + ".tmp", "w") as f:
            f.write(str(server.server_address[1]))
        import os; os.rename(port_file + ".tmp", port_file)
        end = time.time() + seconds
        while time.time() < end:
            server.handle_request()
        """

    struct Received {
        var received: Date
        var body: [String: Any]
        var authorization: String?
        var contentType: String?
        var kind: String { body["kind"] as? String ?? "" }
        var id: String { body["id"] as? String ?? "" }
    }

    static func lines(_ path: String) -> [[String: Any]] {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    /// The bodies the alert command wrote, one file each.
    static func bodies(in directory: String) -> [[String: Any]] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted().compactMap { file in
            FileManager.default.contents(atPath: directory + "/" + file).flatMap {
                try? JSONSerialization.jsonObject(with: $0) as? [String: Any]
            }
        }
    }

    static func webhook(_ path: String) -> [Received] {
        lines(path).compactMap { line in
            guard let received = line["received"] as? Double, let text = line["body"] as? String,
                let body = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
            else { return nil }
            return Received(
                received: Date(timeIntervalSince1970: received),
                body: body,
                authorization: line["authorization"] as? String,
                contentType: line["type"] as? String
            )
        }
    }

    /// The documented body (docs/PROTOCOL.md, "Alerts"): these keys and types, nothing else.
    static func problems(in body: [String: Any]) -> [String] {
        let known: Set<String> = [
            "version", "id", "kind", "time", "summary", "job", "run", "part", "service", "instance", "message", "attributes", "test",
        ]
        var problems = Set(body.keys).subtracting(known).map { "unknown key \($0)" }
        if body["version"] as? Int != 1 { problems.append("version") }
        if (body["id"] as? String)?.isEmpty != false { problems.append("id") }
        if !["run.failed", "result.dead", "service.down", "run.overrun", "schedule.lag", "test"].contains(body["kind"] as? String ?? "") {
            problems.append("kind")
        }
        if (body["time"] as? String).flatMap(Timestamp.parse) == nil { problems.append("time") }
        if (body["summary"] as? String)?.isEmpty != false { problems.append("summary") }
        if let attributes = body["attributes"], !(attributes is [String: String]) { problems.append("attributes") }
        return problems
    }

    @Test(.timeLimit(.minutes(3)))
    func failuresDeadLettersAndDownServicesReachTheCommandAndTheWebhook() async throws {
        let python = try #require(await Scripts.python(with: ["http.server"]), "no python3")
        try await TestStack.with("alerts", yaml: "") { stack in
            let script = stack.directory + "/hook.py"
            try Self.receiver.write(toFile: script, atomically: true, encoding: .utf8)
            let portFile = stack.directory + "/hook.port"
            let hookLog = stack.directory + "/hook.jsonl"
            // One file per alert: deliveries may overlap, and appends of several writes could interleave.
            let commandLog = stack.directory + "/command"
            try FileManager.default.createDirectory(atPath: commandLog, withIntermediateDirectories: true)
            let receiver = Process()
            receiver.executableURL = URL(fileURLWithPath: python.hasPrefix("/") ? python : "/usr/bin/env")
            receiver.arguments = (python.hasPrefix("/") ? [] : [python]) + [script, portFile, "2", hookLog, "170"]
            try receiver.run()
            defer { if receiver.isRunning { kill(receiver.processIdentifier, SIGKILL) } }
            #expect(try await stack.waitUntil(timeout: .seconds(20)) { FileManager.default.fileExists(atPath: portFile) })
            let port = try String(contentsOfFile: portFile, encoding: .utf8)
            try stack.rewrite(
                yaml: """
                    log:
                      heartbeat: 300ms
                    processor:
                      retries: 0
                    alerts:
                      webhook: http://127.0.0.1:\(port)/hook
                      headers: {Authorization: "Bearer sesame"}
                      command: [sh, -c, "cat > \(commandLog)/$BATON_ALERT_ID.json"]
                      on: [run.failed, result.dead, service.down]
                    jobs:
                      - name: broken
                        every: 1h
                        command: [sh, -c, "echo broken-$BATON_RUN_ID >&2; exit 4"]
                        retries: 0
                      - name: poison
                        every: 1h
                        builtin: demo
                        duration: 10ms
                        result_size: 64
                        stages:
                          - name: refuse
                            command: [sh, -c, "echo refused >&2; exit 5"]

                    """
            )
            try stack.startServices()
            let up = try await stack.waitUntil(timeout: .seconds(60)) {
                (try? await stack.baton(["status", "--json"]))?.output.contains("\"processor-1\"") == true
            }
            #expect(up)
            let brokenRun = try await stack.trigger("broken")
            let poisonRun = try await stack.trigger("poison")
            // kill -9 of the processor once the dead letter is in: the logger finds it silent and says so.
            let dead = try await stack.waitUntil(timeout: .seconds(60)) {
                Self.bodies(in: commandLog).contains { $0["kind"] as? String == "result.dead" && $0["run"] as? String == poisonRun }
            }
            #expect(dead, "no result.dead alert; logger: \(stack.stderr("logger").suffix(1500))")
            let processor = try #require(stack.process("processor-1"))
            let killedAt = Date()
            kill(processor.processIdentifier, SIGKILL)
            let down = try await stack.waitUntil(timeout: .seconds(30)) {
                Self.bodies(in: commandLog).contains { $0["kind"] as? String == "service.down" }
            }
            #expect(down, "no service.down alert")

            let byCommand = Self.bodies(in: commandLog)
            for body in byCommand { #expect(Self.problems(in: body).isEmpty, "\(Self.problems(in: body)): \(body)") }
            // The jobs run every hour too: a test that crosses the hour also has their scheduled runs' alerts.
            let failed = try #require(
                byCommand.first { $0["kind"] as? String == "run.failed" && $0["run"] as? String == brokenRun },
                "no run.failed alert for \(brokenRun): \(byCommand)"
            )
            #expect((failed["message"] as? String)?.contains("broken-\(brokenRun)") == true, "\(failed)")
            let deadLetter = try #require(
                byCommand.first { $0["kind"] as? String == "result.dead" && $0["run"] as? String == poisonRun },
                "no result.dead alert for \(poisonRun): \(byCommand)"
            )
            #expect((deadLetter["message"] as? String)?.contains("refused") == true, "\(deadLetter)")
            let downAlert = try #require(byCommand.first { $0["kind"] as? String == "service.down" })
            #expect(downAlert["service"] as? String == "processor" && downAlert["instance"] as? String == "processor-1")
            if let time = (downAlert["time"] as? String).flatMap(Timestamp.parse) {
                print("alerts: service.down raised \(time.timeIntervalSince(killedAt)) s after kill -9 (heartbeat 300 ms)")
            }

            // The webhook: its first two answers were 500, so some alerts came more than once; each alert the
            // command got reached it, with its headers, and the failures were logged as retried.
            let delivered = try await stack.waitUntil(timeout: .seconds(60)) {
                Set(Self.webhook(hookLog).map(\.id)).isSuperset(of: byCommand.compactMap { $0["id"] as? String })
            }
            let hooked = Self.webhook(hookLog)
            #expect(delivered, "webhook got \(hooked.map(\.kind)), command got \(byCommand.map { $0["kind"] ?? "?" })")
            #expect(hooked.count >= byCommand.count + 2, "two answers of 500 mean two more requests")
            for request in hooked {
                #expect(request.authorization == "Bearer sesame" && request.contentType == "application/json")
                #expect(Self.problems(in: request.body).isEmpty, "\(request.body)")
                // A safety net, not the target (the benchmark's business): from the event to the receiver.
                if let time = (request.body["time"] as? String).flatMap(Timestamp.parse) {
                    print("alerts: \(request.kind) reached the webhook \(request.received.timeIntervalSince(time)) s after it happened")
                }
            }
            #expect(stack.stderr("logger").contains("alert not delivered; trying again"), "\(stack.stderr("logger").suffix(1500))")
        }
    }
}
