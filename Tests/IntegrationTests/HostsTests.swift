import Foundation
import GRDB
import Glibc
import Messaging
import Testing
import TestSupport

/// Baton over three hosts (network namespaces joined by a bridge, ``TestHosts``): host A runs the scheduler,
/// algorithm and logger, hosts B and C two processors each, every link over TCP between the hosts' addresses.
@Suite(.serialized)
struct HostsTests {
    static let job = "hosts"
    static let every = 0.25
    static let anchor = Date(timeIntervalSince1970: 0)

    /// The result of a run, from its run id alone: what the oracle expects in the store.
    static func payload(_ runID: String) -> String { "{\"run\":\"\(runID)\"}" }

    /// The four checks of issue 14, with CURVE on every link (a key pair per host, A's allow-list naming B's and
    /// C's public keys): work spreads over B and C and every slot is stored once; B's link cut for 10 s loses
    /// nothing and stores nothing twice; a processor on C with a key not allowed gets no work and `auth.refused`
    /// is published; `baton status` on B, with B's key, shows every service of A, B and C.
    @Test(
        .disabled(if: TestHosts.unavailable != nil, Comment(rawValue: TestHosts.unavailable ?? "")),
        .timeLimit(.minutes(4))
    )
    func threeHostsShareTheWorkAndSurviveACutLink() async throws {
        try await TestHosts.with(["a", "b", "c"]) { hosts in
            // The run writes one JSON line naming itself: the oracle needs nothing but the run id.
            let yaml = """
                log:
                  heartbeat: 500ms
                algorithm:
                  concurrency: 4
                processor:
                  lease: 4s
                jobs:
                  - name: \(Self.job)
                    every: 250ms
                    anchor: \(Timestamp.format(Self.anchor))
                    misfire: all
                    overlap: allow
                    command: [sh, -c, 'printf "{\\"run\\":\\"%s\\"}\\n" "$BATON_RUN_ID" > "$BATON_OUTPUT"']

                """
            // PostgreSQL on host A, listening on A's address: the store of every processor.
            let postgres = try await PostgresServer.start(wrapper: hosts.command(on: "a", []), address: hosts.address("a"))
            defer { postgres.remove() }
            try await TestStack.with("hosts", yaml: yaml, tcpPorts: 7601, tcpAddress: hosts.address("a")) { stack in
                try await Self.run(stack, hosts, postgres)
            }
        }
    }

    static func run(_ stack: TestStack, _ hosts: TestHosts, _ postgres: PostgresServer) async throws {
        func on(_ host: String) -> [String] { hosts.command(on: host, []) }
        // A key pair per host (and one for the rogue); A allows B's and C's public keys (its own always).
        let keys = stack.directory + "/keys"
        let allowed = stack.directory + "/allow"
        try FileManager.default.createDirectory(atPath: allowed, withIntermediateDirectories: true)
        for name in ["a", "b", "c", "rogue"] {
            let made = try await Scripts.execute(TestStack.binaries + "/baton", ["keygen", "--name", name, "--out", keys])
            try #require(made.status == 0, "baton keygen: \(made.output)")
        }
        for name in ["b", "c"] { try FileManager.default.copyItem(atPath: "\(keys)/\(name).pub", toPath: "\(allowed)/\(name).pub") }
        let rogueKey = try String(contentsOfFile: "\(keys)/rogue.pub", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        func environment(_ host: String, _ instance: String, key: String? = nil) -> [String: String] {
            var environment = [
                "BATON_INSTANCE": instance,
                "BATON_DATA_DIR": host == "a" ? stack.dataDirectory : "\(stack.directory)/host-\(host)",
                "BATON_STORE_URL": postgres.url(),
                "BATON_CURVE_KEY": "\(keys)/\(key ?? host).key",
            ]
            if host == "a" {
                environment["BATON_CURVE_ALLOW"] = allowed
            } else {
                environment["BATON_CURVE_SERVER_KEY"] = "\(keys)/a.pub"
            }
            return environment
        }
        try stack.start("logger", "baton-logger", environment: environment("a", "logger"), wrapper: on("a"))
        // The status stream, subscribed to from host A: where `auth.refused` must show.
        try stack.start(
            "watch",
            "baton",
            ["watch", "--json", "--type", EventType.authRefused, "--config", stack.configPath],
            environment: environment("a", "watch"),
            wrapper: on("a")
        )
        for service in ["scheduler", "algorithm"] {
            try stack.start(service, "baton-\(service)", environment: environment("a", service), wrapper: on("a"))
        }
        let processors = ["b1", "b2", "c1", "c2"]
        for name in processors {
            let host = String(name.prefix(1))
            try stack.start(name, "baton-processor", ["--name", name], environment: environment(host, name), wrapper: on(host))
        }
        // 3. A processor on C whose key A does not allow.
        try stack.start(
            "rogue",
            "baton-processor",
            ["--name", "rogue"],
            environment: environment("c", "rogue", key: "rogue"),
            wrapper: on("c")
        )

        // 1. Work spreads over B and C.
        let spread = try await stack.waitUntil(timeout: .seconds(60)) {
            let counts = await Self.perProcessor(postgres)
            return processors.allSatisfy { (counts[$0] ?? 0) >= 3 }
        }
        let spreadCounts = await Self.perProcessor(postgres)
        #expect(spread, "stored per processor: \(spreadCounts); b1: \(stack.stderr("b1").suffix(400))")

        // 4. `baton status` on host B sees every service of A, B and C.
        var report: StatusReport?
        let seen = try await stack.waitUntil(timeout: .seconds(30)) {
            report = try? await Self.status(stack, on: "b", hosts, environment: environment("b", "status"))
            let up = Set(report?.services.filter { $0.state == "up" }.map(\.instance) ?? [])
            return up.isSuperset(of: ["logger", "scheduler", "algorithm"] + processors)
        }
        #expect(seen, "baton status on host B: \(report?.services.map { "\($0.instance) \($0.state)" } ?? [])")
        #expect(report?.services.contains { $0.instance == "rogue" } == false, "the rogue's status events got in")
        // 3. The rogue is refused, and that is published.
        let refused = try await stack.waitUntil(timeout: .seconds(30)) {
            (try? String(contentsOfFile: "\(stack.directory)/watch.out", encoding: .utf8))?.contains(rogueKey) ?? false
        }
        #expect(refused, "no auth.refused naming \(rogueKey) on the bus: \(stack.stderr("watch").suffix(400))")

        // 2. B's cable pulled for 10 s mid-run, then plugged in again.
        let beforeCut = await Self.perProcessor(postgres)
        try await hosts.cut("b")
        try await Deliberately.wait(.seconds(10), because: "the issue's outage: B's link down for 10 s")
        let duringCut = await Self.perProcessor(postgres)
        try await hosts.restore("b")
        // C carried the work meanwhile, and B takes its share again once back.
        #expect(
            (duringCut["c1"] ?? 0) + (duringCut["c2"] ?? 0) > (beforeCut["c1"] ?? 0) + (beforeCut["c2"] ?? 0),
            "C stored nothing while B was cut: \(beforeCut) → \(duringCut)"
        )
        let backAgain = try await stack.waitUntil(timeout: .seconds(40)) {
            let now = await Self.perProcessor(postgres)
            return (now["b1"] ?? 0) + (now["b2"] ?? 0) > (duringCut["b1"] ?? 0) + (duringCut["b2"] ?? 0)
        }
        let afterCut = await Self.perProcessor(postgres)
        #expect(backAgain, "B stored nothing after its link came back: \(afterCut); b1: \(stack.stderr("b1").suffix(600))")

        // No more runs; everything handed off is acknowledged.
        try await stack.terminate("scheduler")
        let drained = try await stack.waitUntil(timeout: .seconds(60)) {
            let counts = stack.outboxCounts()
            return !counts.isEmpty && counts.keys.allSatisfy { $0 == "acked" } && Self.runsInFlight(stack) == 0
        }
        #expect(drained, "outbox: \(stack.outboxCounts())")

        // Every slot of the grid from the first stored to the last is stored, once, with its own payload.
        let rows = try await Self.storedRows(postgres)
        let times = rows.compactMap { Timestamp.parse($0.logicalTime) }.sorted()
        let first = try #require(times.first)
        let last = try #require(times.last)
        let slots = Int(((last.timeIntervalSince(first)) / Self.every).rounded()) + 1
        let expected = Set((0..<slots).map { "\(Self.job)@" + Timestamp.format(first.addingTimeInterval(Double($0) * Self.every)) })
        let stored = Dictionary(grouping: rows, by: \.runID)
        #expect(Set(stored.keys) == expected, "missing \(expected.subtracting(stored.keys).sorted().prefix(10))")
        #expect(stored.values.allSatisfy { $0.count == 1 }, "a run stored more than once")
        for row in rows { #expect(row.data == Self.payload(row.runID), "\(row.runID)") }
        #expect(slots > 40, "only \(slots) slots ran")
        // And stored once by the processors' own account: no part was reported stored twice.
        let storedEvents = stack.loggedEvents().filter { $0.type == EventType.resultStored }
        let twice = Dictionary(grouping: storedEvents) { "\($0.run ?? "")/\($0.part ?? 0)" }.filter { $0.value.count > 1 }
        #expect(twice.isEmpty, "stored twice: \(twice.keys.sorted().prefix(5))")
        // The rogue got no work, though it ran all along.
        #expect(stack.process("rogue")?.isRunning == true, "the rogue exited: \(stack.stderr("rogue").suffix(400))")
        #expect(rows.allSatisfy { $0.processor != "rogue" })
        #expect(!stack.loggedEvents().contains { $0.instance == "rogue" && $0.type == EventType.taskStarted })
        let conflicts = try await Self.query(postgres, "SELECT COUNT(*) FROM conflicts")
        #expect(conflicts == [["0"]])
    }

    struct StoredRow {
        var runID: String
        var logicalTime: String
        var processor: String
        var data: String
    }

    /// The PostgreSQL store's rows of the job, each with its records joined.
    static func storedRows(_ postgres: PostgresServer) async throws -> [StoredRow] {
        try await query(
            postgres,
            """
            SELECT r.run_id, r.logical_time, r.processor, coalesce(string_agg(d.data, '|' ORDER BY d.line), '')
            FROM results r LEFT JOIN records d ON d.run_id = r.run_id AND d.part = r.part
            WHERE r.job = '\(job)' GROUP BY r.run_id, r.part, r.logical_time, r.processor
            """
        ).map { StoredRow(runID: $0[0], logicalTime: $0[1], processor: $0[2], data: $0[3]) }
    }

    /// Stored results per processor name (empty while there is no store).
    static func perProcessor(_ postgres: PostgresServer) async -> [String: Int] {
        let rows = (try? await query(postgres, "SELECT processor, COUNT(*) FROM results GROUP BY processor")) ?? []
        return Dictionary(uniqueKeysWithValues: rows.compactMap { row in Int(row[1]).map { (row[0], $0) } })
    }

    /// A query to the store through `psql` (its unix socket), as rows of fields.
    static func query(_ postgres: PostgresServer, _ sql: String) async throws -> [[String]] {
        let psql = (PostgresServer.binDirectory ?? "/usr/lib/postgresql/15/bin") + "/psql"
        let arguments = ["-q", "-h", postgres.directory, "-p", "\(postgres.port)", "-U", "postgres", "-d", "postgres", "-At", "-F", "\t"]
        let result = try await Scripts.execute(psql, arguments + ["-v", "ON_ERROR_STOP=1", "-c", sql])
        guard result.status == 0 else { throw TestHosts.Failure("psql: \(result.output)") }
        return result.output.split(separator: "\n").map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
    }

    static func runsInFlight(_ stack: TestStack) -> Int {
        (try? stack.read(stack.outboxPath) { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM runs WHERE state IN ('accepted', 'running')") ?? 0
        }) ?? -1
    }

    /// `baton status --json`, run inside `host`.
    static func status(
        _ stack: TestStack,
        on host: String,
        _ hosts: TestHosts,
        environment: [String: String] = [:]
    ) async throws
        -> StatusReport
    {
        let command = hosts.command(
            on: host,
            [TestStack.binaries + "/baton", "status", "--json", "--timeout", "3s", "--config", stack.configPath]
        )
        let result = try await Scripts.execute(command[0], Array(command.dropFirst()), environment: environment)
        guard result.status == 0 else { throw TestHosts.Failure("baton status on \(host) exited \(result.status): \(result.output)") }
        return try Timestamp.decoder().decode(StatusReport.self, from: Data(result.output.utf8))
    }
}
