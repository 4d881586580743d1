import Foundation
import Glibc
import GRDB
import Testing

/// A CURVE deployment with keys made by `baton keygen`, as docs/SECURITY.md sets one up: the hub's services share
/// one pair, a processor and the command line have pairs of their own on the allow-list, and a processor whose
/// key is not on it is refused (and `auth.refused` says so) while everything else flows.
struct CurveDeploymentTests {
    @Test(.timeLimit(.minutes(3)))
    func onlyAllowedKeysGetWorkOrAnswers() async throws {
        let ports = try StatusTests.freePortRange(9)
        let root = "/tmp/bt-keys-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let keygen = { (name: String, folder: String) async throws in
            let made = try await Scripts.execute(TestStack.binaries + "/baton", ["keygen", "--name", name, "--out", folder])
            try #require(made.status == 0, "keygen: \(made.output)")
        }
        try await keygen("hub", root)
        for name in ["worker", "operator"] { try await keygen(name, "\(root)/clients") }
        try await keygen("stranger", root)
        let yaml = """
            jobs:
              - name: echo
                every: 300ms
                command: ["/bin/sh", "-c", "printf 'payload of %s' \\"$BATON_RUN_ID\\" > \\"$BATON_OUTPUT\\""]
            curve:
              key: \(root)/hub.key
              allow: \(root)/clients

            """
        try await TestStack.with("keys", yaml: yaml, tcpPorts: ports) { stack in
            try stack.start("logger", "baton-logger")
            try stack.start("scheduler", "baton-scheduler")
            try stack.start("algorithm", "baton-algorithm")
            let client = { (key: String) in ["BATON_CURVE_KEY": key, "BATON_CURVE_SERVER_KEY": "\(root)/hub.pub"] }
            try stack.start("worker", "baton-processor", ["--name", "worker"], environment: client("\(root)/clients/worker.key"))
            try stack.start("stranger", "baton-processor", ["--name", "stranger"], environment: client("\(root)/stranger.key"))

            let stored = try await stack.waitUntil(timeout: .seconds(60)) { stack.storedCount() >= 8 }
            #expect(
                stored,
                "stored \(stack.storedCount()); worker: \(stack.stderr("worker"))\nalgorithm: \(stack.stderr("algorithm"))"
            )
            // Every stored part went through the allowed processor, byte for byte what its run wrote.
            let rows = try stack.read { db in
                try Row.fetchAll(db, sql: "SELECT run_id, processor, blob FROM results").map {
                    (run: $0["run_id"] as String, processor: $0["processor"] as String, blob: $0["blob"] as Data? ?? Data())
                }
            }
            for row in rows {
                #expect(row.processor == "worker", "\(row.run) stored by \(row.processor)")
                #expect(row.blob == Data("payload of \(row.run)".utf8), "\(row.run) stored \(row.blob.count) bytes")
            }
            // The stranger was turned away and said so on the bus (the logger's event log holds every event).
            let strangerKey = try String(contentsOfFile: "\(root)/stranger.pub", encoding: .utf8).trimmingCharacters(
                in: .whitespacesAndNewlines
            )
            let refused = try await stack.waitUntil(timeout: .seconds(30)) {
                let log = (try? String(contentsOfFile: stack.dataDirectory + "/logs/events.jsonl", encoding: .utf8)) ?? ""
                return log.split(separator: "\n").contains { $0.contains("\"auth.refused\"") && $0.contains(strangerKey) }
            }
            #expect(refused, "no auth.refused for the stranger's key")

            // The operator's key is allowed: `baton status` answers and shows the stack; the stranger's is not.
            let asked = try await Scripts.execute(
                TestStack.binaries + "/baton",
                ["status", "--json", "--config", stack.configPath],
                environment: client("\(root)/clients/operator.key")
            )
            #expect(asked.status == 0 && asked.output.contains("\"worker\""), "status \(asked.status): \(asked.output)")
            let refusedStatus = try await Scripts.execute(
                TestStack.binaries + "/baton",
                ["status", "--json", "--timeout", "2s", "--config", stack.configPath],
                environment: client("\(root)/stranger.key")
            )
            #expect(refusedStatus.status != 0, "a stranger's status: \(refusedStatus.output)")
            let paused = try await Scripts.execute(
                TestStack.binaries + "/baton",
                ["pause", "echo", "--config", stack.configPath],
                environment: client("\(root)/stranger.key")
            )
            #expect(paused.status != 0, "a stranger paused the job: \(paused.output)")
            let jobs = try await stack.baton(["jobs"])
            #expect(!jobs.output.contains("paused"), "\(jobs.output)")

            // Rotation without restarts: the stranger's key put on the allow-list (a file in the folder) is let in
            // when the stranger tries again, which it does by itself.
            try FileManager.default.copyItem(atPath: "\(root)/stranger.pub", toPath: "\(root)/clients/stranger.pub")
            let admitted = try await stack.waitUntil(timeout: .seconds(60)) {
                (try? stack.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM results WHERE processor = 'stranger'") ?? 0 }) ?? 0
                    > 0
            }
            #expect(admitted, "the stranger, now allowed, stored nothing: \(stack.stderr("stranger"))")
        }
    }

    /// With CURVE off, a service warns about each endpoint anyone on the network could use; a key file that cannot
    /// be used is a configuration error naming `curve.key` (exit status 2), and nothing is made up in its place.
    @Test(.timeLimit(.minutes(2)))
    func plainEndpointsOffLoopbackAreWarnedAboutAndBadKeysStopTheStart() async throws {
        let ports = try StatusTests.freePortRange(9)
        try await TestStack.with("plain", yaml: "", tcpPorts: ports) { stack in
            let exposed = "tcp://0.0.0.0:\(ports + 5)"
            let logger = try stack.start(
                "logger",
                "baton-logger",
                environment: ["BATON_CURVE_ENABLED": "false", "BATON_ENDPOINT_STATUS_IN": exposed]
            )
            let warned = try await stack.waitUntil(timeout: .seconds(30)) {
                stack.stderr("logger").contains("CURVE is off and this endpoint is not on loopback")
                    && stack.stderr("logger").contains(exposed)
            }
            #expect(warned, "\(stack.stderr("logger"))")
            #expect(!stack.stderr("logger").contains("tcp://127.0.0.1:\(ports + 6)"), "a loopback endpoint was warned about")
            kill(logger.processIdentifier, SIGTERM)
            _ = try await TestStack.exited(logger, within: .seconds(20))

            let missing = stack.directory + "/nowhere.key"
            let refused = try stack.start(
                "scheduler",
                "baton-scheduler",
                environment: ["BATON_CURVE_KEY": missing, "BATON_CURVE_ALLOW": stack.directory]
            )
            let status = try await ConfigurationStartupTests.exitStatus(refused)
            #expect(status == 2, "\(stack.stderr("scheduler"))")
            #expect(stack.stderr("scheduler").contains("curve.key: \(missing)"), "\(stack.stderr("scheduler"))")
            #expect(!FileManager.default.fileExists(atPath: missing))
        }
    }
}
