import Foundation
import Glibc
import GRDB
import Glibc
import Testing

/// Issue 14's attacks, made from outside with plain pyzmq (scripts/attack.py) over `tcp://127.0.0.1`, against the
/// single-host default and against a deployment with explicit keys: taking results and run requests, forged
/// reports, acks, results and status events, every control command, a status query, a bus subscription. Each must
/// be refused, `auth.refused` published for an attacker with a key, and nothing lost: every slot of the window in
/// which the attacks ran stored once, byte for byte. Written from docs/SECURITY.md and docs/PROTOCOL.md only.
@Suite(.serialized)
struct AttackTests {
    @Test(.timeLimit(.minutes(3)))
    func theSingleHostDefaultRefusesEveryAttack() async throws {
        let python = try #require(await Scripts.python(with: ["zmq"]), "no python3 with pyzmq (scripts/install-deps.sh --test)")
        let started = Date()
        try await TestStack.with("atk-default", yaml: Attacker.yaml, tcpPorts: try StatusTests.freePortRange(9)) { stack in
            try stack.startServices(processors: 2)
            try await Self.flowing(stack)
            // SECURITY.md: "the default key pair is in <data_dir>/keys/ (folder mode 700, file mode 600)".
            let keyFile = stack.dataDirectory + "/keys/baton.key"
            #expect(Self.mode(stack.dataDirectory + "/keys") == 0o700)
            #expect(Self.mode(keyFile) == 0o600)
            let serverKey = try Self.publicKey(keyFile)  // public, so the attacker may know it
            // As one argument: a Z85 key may start with "-", which argparse would take for an option (seen in CI).
            let serverKeyArgument = "--server-key=\(serverKey)"

            let windowStart = Date()
            async let plain = Attacker.attack(stack, python: python, [])
            async let unknown = Attacker.attack(stack, python: python, ["--random-key", serverKeyArgument])
            async let others = Self.asAnotherUser(
                stack,
                ["--try-read", keyFile],
                ["--random-key", serverKeyArgument, "--try-read", keyFile]
            )
            let reports = try await [plain, unknown] + others
            let window = Attacker.slots(after: windowStart, through: Date())

            for report in try await others {
                let read = report.line("read_key")
                #expect(read?["breach"] as? Bool == false && (read?["error"] as? String ?? "").contains("Permission"), "\(report.output)")
            }
            try await Self.expectRefusedAndNothingLost(stack, reports, window: window, since: started, processors: 2)
        }
    }

    @Test(.timeLimit(.minutes(3)))
    func aDeploymentWithExplicitKeysRefusesKeysNotAllowed() async throws {
        let python = try #require(await Scripts.python(with: ["zmq"]), "no python3 with pyzmq (scripts/install-deps.sh --test)")
        let started = Date()
        try await TestStack.with("atk-keys", yaml: Attacker.yaml, tcpPorts: try StatusTests.freePortRange(9)) { stack in
            let keys = try await Self.explicitKeys(stack, processors: 2)
            try await Self.flowing(stack)
            // SECURITY.md: "A configuration that names any other party … never makes a key pair".
            #expect(!FileManager.default.fileExists(atPath: stack.dataDirectory + "/keys/baton.key"))

            let windowStart = Date()
            async let plain = Attacker.attack(stack, python: python, [])
            async let mallory = Attacker.attack(stack, python: python, ["--key", keys + "/mallory.key", "--server-key", keys + "/hub.pub"])
            let reports = try await [plain, mallory]
            let window = Attacker.slots(after: windowStart, through: Date())
            try await Self.expectRefusedAndNothingLost(stack, reports, window: window, since: started, processors: 2)
        }
    }

    @Test(.timeLimit(.minutes(2)))
    func aForgedResultPushedWithoutAKeyIsNeverStored() async throws {
        let python = try #require(await Scripts.python(with: ["zmq"]), "no python3 with pyzmq (scripts/install-deps.sh --test)")
        let started = Date()
        try await TestStack.with("atk-forgery", yaml: Attacker.yaml, tcpPorts: try StatusTests.freePortRange(9)) { stack in
            _ = try await Self.explicitKeys(stack, processors: 1)
            try await Self.flowing(stack)
            let windowStart = Date()
            let report = try await Attacker.attack(stack, python: python, ["--only", "forge_results", "--only", "forge_acks"], duration: 3)
            let window = Attacker.slots(after: windowStart, through: Date())
            #expect(report.summary != nil && report.breaches.isEmpty, "\(report.output)")
            // The forged ones were for slots of 2020 and for the next slots, with bytes of their own.
            var problems: [String] = []
            _ = try await stack.waitUntil(timeout: .seconds(60), poll: .milliseconds(250)) {
                problems = try Attacker.storeProblems(stack, window: window, since: started)
                return problems.isEmpty
            }
            #expect(problems.isEmpty, "\(problems)")
            let forged = try stack.read {
                try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM results WHERE blob = ?", arguments: [Data("forged result\n".utf8)])
            }
            #expect(forged == 0)
        }
    }

    @Test(.timeLimit(.minutes(2)))
    func aControlRequestWithoutAKeyGetsNoAnswer() async throws {
        let python = try #require(await Scripts.python(with: ["zmq"]), "no python3 with pyzmq (scripts/install-deps.sh --test)")
        let started = Date()
        try await TestStack.with("atk-control", yaml: Attacker.yaml, tcpPorts: try StatusTests.freePortRange(9)) { stack in
            try stack.startServices(processors: 0)
            let answering = try await stack.waitUntil(timeout: .seconds(60)) { try await stack.baton(["jobs"]).status == 0 }
            try #require(answering, "the scheduler does not answer baton jobs")
            let plain = try await Attacker.attack(
                stack,
                python: python,
                ["--only", "control", "--only", "algorithm_control", "--only", "query"]
            )
            let requests = plain.lines.filter { ($0["attack"] as? String ?? "").contains("control") }
            #expect(requests.count == 12, "\(plain.output)")
            for request in requests { #expect(request["reply"] is NSNull, "answered without a key: \(request)") }
            #expect(plain.summary != nil && plain.breaches.isEmpty, "\(plain.output)")
            // The same request with the stack's key is answered: the attack can fail.
            let member = try await Attacker.attack(
                stack,
                python: python,
                ["--only", "query", "--key", stack.dataDirectory + "/keys/baton.key"],
                duration: 1
            )
            #expect(member.breaches == ["query"], "\(member.output)")
            #expect(try Attacker.fireProblems(stack, since: started).isEmpty)
            let status = try await Attacker.statusProblems(stack, processors: 0)
            #expect(status.isEmpty, "\(status)")
        }
    }

    /// CONFIGURATION.md: `allow` takes "Z85 keys, `.pub` files, and folders". A folder whose path happens to be
    /// 40 characters, all of them in Z85's alphabet (letters, digits, `/`, `-`, `.`), must still be read as a folder.
    @Test(.timeLimit(.minutes(2)))
    func anAllowFolderWhosePathHasFortyCharactersIsStillAFolder() async throws {
        let python = try #require(await Scripts.python(with: ["zmq"]), "no python3 with pyzmq (scripts/install-deps.sh --test)")
        try await TestStack.with("atk-forty", yaml: Attacker.yaml, tcpPorts: try StatusTests.freePortRange(9)) { stack in
            let keys = stack.directory + "/keys"
            for name in ["hub", "client"] {
                let made = try await Scripts.execute(TestStack.binaries + "/baton", ["keygen", "--name", name, "--out", keys])
                try #require(made.status == 0, "\(made.output)")
            }
            let padding = 40 - (stack.directory.count + 2)
            try #require(padding > 0, "\(stack.directory) is too long")
            let folder = stack.directory + "/" + String(repeating: "k", count: padding) + "/"
            #expect(folder.count == 40)
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: keys + "/client.pub", toPath: folder + "client.pub")
            try stack.rewrite(yaml: "curve:\n  key: \(keys)/hub.key\n  allow: \(folder)\n" + Attacker.yaml)
            try stack.start("logger", "baton-logger")
            // A member with the allowed key asks for the status: it must be answered.
            var asked = try await Attacker.attack(
                stack,
                python: python,
                ["--only", "query", "--key", keys + "/client.key", "--server-key", keys + "/hub.pub"],
                duration: 3
            )
            if asked.breaches != ["query"] {  // the logger may not have been listening yet
                asked = try await Attacker.attack(
                    stack,
                    python: python,
                    ["--only", "query", "--key", keys + "/client.key", "--server-key", keys + "/hub.pub"],
                    duration: 3
                )
            }
            #expect(asked.breaches == ["query"], "the key in \(folder) was not allowed: \(asked.output)\n\(stack.stderr("logger"))")

            // The same for `server_key` ("a 40-character Z85 key, or a file holding one"): a .pub file at a path of 40.
            let serverKey = stack.directory + "/" + String(repeating: "s", count: 40 - (stack.directory.count + 5)) + ".pub"
            #expect(serverKey.count == 40)
            try FileManager.default.copyItem(atPath: keys + "/hub.pub", toPath: serverKey)
            let status = try await Scripts.execute(
                TestStack.binaries + "/baton",
                ["status", "--json", "--timeout", "5s", "--config", stack.configPath],
                environment: ["BATON_CURVE_KEY": keys + "/client.key", "BATON_CURVE_SERVER_KEY": serverKey]
            )
            #expect(status.status == 0, "baton status with server_key \(serverKey): \(status.output)")
        }
    }

    /// The checks every attack must pass: nothing came back to any attacker, each attacker with a key was refused
    /// by all three binding services (`auth.refused`), no forged event, run or service got in, the job is not paused,
    /// every slot of `window` is stored once with its bytes, and `baton audit` finds nothing.
    static func expectRefusedAndNothingLost(
        _ stack: TestStack,
        _ reports: [Attacker.Report],
        window: [String],
        since started: Date,
        processors: Int
    ) async throws {
        #expect(window.count >= 15, "a window of \(window.count) slots")
        for report in reports {
            #expect(report.summary != nil, "the attacker did not finish: \(report.output)")
            #expect(report.breaches.isEmpty, "got through: \(report.breaches)\n\(report.output)")
        }
        let keys = reports.compactMap(\.key)
        var refusers: [String: Set<String>] = [:]
        _ = try await stack.waitUntil(timeout: .seconds(20), poll: .milliseconds(250)) {
            let events = Attacker.events(stack)
            refusers = Dictionary(uniqueKeysWithValues: keys.map { ($0, Attacker.refusers(of: $0, in: events)) })
            return refusers.values.allSatisfy { $0 == ["scheduler", "algorithm", "logger"] }
        }
        for key in keys {
            #expect(refusers[key] == ["scheduler", "algorithm", "logger"], "auth.refused for \(key) from \(refusers[key] ?? [])")
        }

        var problems: [String] = []
        _ = try await stack.waitUntil(timeout: .seconds(60), poll: .milliseconds(250)) {
            problems = try Attacker.storeProblems(stack, window: window, since: started)
            return problems.isEmpty
        }
        #expect(problems.isEmpty, "\(problems)")
        let fires = try Attacker.fireProblems(stack, since: started)
        #expect(fires.isEmpty, "\(fires)")
        let events = Attacker.eventProblems(Attacker.events(stack), since: started)
        #expect(events.isEmpty, "\(events.prefix(5))")
        let status = try await Attacker.statusProblems(stack, processors: processors)
        #expect(status.isEmpty, "\(status)")
        let audit = try await stack.baton(["audit"])
        #expect(audit.status == 0, "\(audit.output)")
    }

    /// Waits until the job's results are being stored.
    static func flowing(_ stack: TestStack) async throws {
        let flowing = try await stack.waitUntil(timeout: .seconds(60)) { stack.storedCount() >= 3 }
        try #require(flowing, "no results stored: \(stack.stderr("algorithm"))\(stack.stderr("processor-1"))")
    }

    /// Keys made with `baton keygen` for the hub, each processor and an outsider (mallory, on no allow-list); the
    /// hub's services allow the processors' keys (a folder of `.pub` files), the processors know the hub's public
    /// key, as docs/SECURITY.md ("Several hosts") shows. Starts the services; returns the keys' folder.
    static func explicitKeys(_ stack: TestStack, processors: Int) async throws -> String {
        let keys = stack.directory + "/keys"
        let names = ["hub", "mallory"] + (1...processors).map { "processor-\($0)" }
        for name in names {
            let made = try await Scripts.execute(TestStack.binaries + "/baton", ["keygen", "--name", name, "--out", keys])
            try #require(made.status == 0, "\(made.output)")
        }
        try FileManager.default.createDirectory(atPath: keys + "/clients", withIntermediateDirectories: true)
        for index in 1...processors {
            try FileManager.default.copyItem(atPath: "\(keys)/processor-\(index).pub", toPath: "\(keys)/clients/processor-\(index).pub")
        }
        try stack.rewrite(yaml: "curve:\n  key: \(keys)/hub.key\n  allow: \(keys)/clients/\n" + Attacker.yaml)
        try stack.start("logger", "baton-logger")
        try stack.start("scheduler", "baton-scheduler")
        try stack.start("algorithm", "baton-algorithm")
        for index in 1...processors {
            let environment = ["BATON_CURVE_KEY": "\(keys)/processor-\(index).key", "BATON_CURVE_SERVER_KEY": "\(keys)/hub.pub"]
            try stack.start("processor-\(index)", "baton-processor", ["--name", "processor-\(index)"], environment: environment)
        }
        return keys
    }

    /// attack.py run as `nobody` once per argument list, when this test runs as root (else none, with a reason).
    static func asAnotherUser(_ stack: TestStack, _ runs: [String]...) async throws -> [Attacker.Report] {
        guard getuid() == 0 else {
            print("AttackTests: not root, so the attack as another local user is skipped (setpriv needs root)")
            return []
        }
        // Debian's python3, which every user can run (python3 on PATH may be a per-user install).
        let probe = try await Scripts.execute(
            "/usr/bin/setpriv",
            ["--reuid=nobody", "--regid=nogroup", "--clear-groups", "/usr/bin/python3", "-c", "import zmq"]
        )
        guard probe.status == 0 else {
            print(
                "AttackTests: /usr/bin/python3 cannot import zmq as nobody, so the attack as another local user is skipped: \(probe.output)"
            )
            return []
        }
        return try await withThrowingTaskGroup(of: Attacker.Report.self) { group in
            for arguments in runs {
                group.addTask { try await Attacker.attack(stack, python: "/usr/bin/python3", arguments, user: "nobody") }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
    }

    static func mode(_ path: String) -> mode_t? {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.posixPermissions] as? Int).map { mode_t($0 & 0o777) }
    }

    /// The `public …` line of a `baton keygen` key file.
    static func publicKey(_ path: String) throws -> String {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let line = try #require(text.split(separator: "\n").first { $0.hasPrefix("public ") }, "no public key in \(path)")
        return String(line.dropFirst("public ".count))
    }
}
