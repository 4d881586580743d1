import Foundation
import Glibc
import TestSupport
import Testing

/// A real stack whose algorithm's metrics port is attacked: its work must go on.
@Suite(.serialized)
struct HTTPAttackTests {
    /// Two clients sending 100 KiB request lines in a loop and thousands of idle connections held open to the algorithm's
    /// `/metrics` port: results keep being stored at about the job's rate, and `/healthz` answers during and after.
    @Test(.timeLimit(.minutes(10)))
    func resultsKeepFlowingWhileTheMetricsPortIsAttacked() async throws {
        let interval = 0.1
        let base = try StatusTests.freePortRange(4)
        try await TestStack.with("httpattack", yaml: DeliveryTests.quickJob(every: "100ms"), metricsPorts: base) { stack in
            let port = base + 2
            try stack.startServices(processors: 1)
            let flowing = try await stack.waitUntil(timeout: .seconds(30)) { stack.storedCount() >= 5 }
            #expect(flowing, "stored: \(stack.storedCount()); algorithm: \(stack.stderr("algorithm").suffix(500))")
            let quiet = try await Self.rate(stack, over: 4)

            let stop = StopFlag()
            let line = Array("GET /".utf8) + [UInt8](repeating: UInt8(ascii: "a"), count: 100 * 1024) + Array(" HTTP/1.1\r\n\r\n".utf8)
            let before = stack.storedCount()
            let start = ContinuousClock.now
            async let flooded = Blocking.onThreads(2) { _ in
                var sent = 0
                let end = Date().addingTimeInterval(600)
                while !stop.isSet, Date() < end {
                    _ = RawHTTP.send(line, to: port, readTimeout: 2)
                    sent += 1
                }
                return sent
            }
            // Idle connections held by two processes (BATON_HTTP_IDLE in all, 3,000 by default: a debug build
            // accepts a few hundred a second while it evicts; `BATON_HTTP_IDLE=20000` for the issue's figure).
            let idle = Int(ProcessInfo.processInfo.environment["BATON_HTTP_IDLE"] ?? "") ?? 3000
            let holder = """
                import socket, sys, time
                held = []
                for _ in range(int(sys.argv[1])):
                    try:
                        held.append(socket.create_connection(("127.0.0.1", \(port)), timeout=5))
                    except OSError:
                        pass
                print(len(held), flush=True)
                time.sleep(5)
                """
            let holding = Duration.seconds(60 + idle / 100)
            async let heldA = Scripts.run("python3", ["-c", holder, "\(idle / 2)"], timeout: holding)
            async let heldB = Scripts.run("python3", ["-c", holder, "\(idle - idle / 2)"], timeout: holding)
            async let probed = Blocking.onThreads(1) { _ in
                var latencies: [Double] = []
                let end = Date().addingTimeInterval(600)
                while !stop.isSet, Date() < end {
                    let start = Date()
                    let status = RawHTTP.get(port: port, "/healthz", timeout: 10).status
                    latencies.append(status == 200 ? Date().timeIntervalSince(start) : -1)
                    usleep(200_000)
                }
                return latencies
            }
            // Declared after the tasks, so it runs before their implicit await if the test is cancelled or throws.
            defer { stop.set() }
            // Flooding all along, until the holders have opened their connections and held them for 5 s.
            let holders = [try await heldA, try await heldB]
            let stored = stack.storedCount() - before
            let seconds = (ContinuousClock.now - start) / .seconds(1)
            stop.set()
            let (floods, probes) = await (flooded, probed)
            let holds = holders.map { Int($0.output.split(separator: "\n").first ?? "") ?? 0 }.reduce(0, +)

            let latencies = probes[0]
            let answered = latencies.filter { $0 >= 0 }
            let expected = seconds / interval
            print(
                """
                HTTP attack figures: stored \(quiet.count) in \(quiet.seconds) s quiet (\(quiet.perSecond)/s), \
                \(stored) in \(Self.tenths(seconds)) s under attack (\(Self.tenths(Double(stored) / seconds))/s; job rate \(1 / interval)/s); \
                \(floods.reduce(0, +)) 100 KiB request lines sent, \(holds) idle connections opened; \
                /healthz answered \(answered.count) of \(latencies.count) probes, max \(Self.tenths(answered.max() ?? -1, 1000)) s, \
                mean \(Self.tenths(answered.reduce(0, +) / Double(max(answered.count, 1)), 1000)) s
                """
            )
            #expect(
                holds >= idle * 95 / 100,
                "only \(holds) idle connections could be opened: \(holders.map { "\($0.status) \($0.output.prefix(300))" })"
            )
            #expect(floods.reduce(0, +) >= 10)
            // Runs fire every 100 ms. The old server stopped the algorithm's work outright (none stored); here the attack
            // only competes for the 2 cores (its own client threads too, and in CI the other suites running beside it),
            // so a quarter of the runs is the floor (a third failed once with 193 of 587 at a load average of 8).
            #expect(Double(stored) >= expected / 4, "stored \(stored) in \(seconds) s; expected about \(expected)")
            #expect(!latencies.isEmpty && answered.count == latencies.count, "healthz probes: \(latencies)")
            #expect(
                await Blocking.onThread { RawHTTP.get(port: port, "/healthz", timeout: 10) }.status == 200,
                "algorithm: \(stack.stderr("algorithm").split(separator: "\n").filter { !$0.contains("run finished") }.suffix(20).joined(separator: "\n"))"
            )
            #expect(stack.process("algorithm")?.isRunning == true)
            let drained = try await stack.waitUntil(timeout: .seconds(10)) { TCPTable.count(localPort: port, state: .closeWait) == 0 }
            #expect(drained, "\(TCPTable.count(localPort: port, state: .closeWait)) server sockets in CLOSE-WAIT")
        }
    }

    static func tenths(_ value: Double, _ scale: Double = 10) -> Double { (value * scale).rounded() / scale }

    /// Results stored over about `seconds`.
    static func rate(_ stack: TestStack, over seconds: Double) async throws -> (count: Int, seconds: Double, perSecond: Double) {
        let before = stack.storedCount()
        let start = ContinuousClock.now
        try await Deliberately.wait(.seconds(seconds), because: "a rate is what is stored over a window of time")
        let count = stack.storedCount() - before
        let elapsed = (ContinuousClock.now - start) / .seconds(1)
        return (count, (elapsed * 10).rounded() / 10, (Double(count) / elapsed * 10).rounded() / 10)
    }
}

/// Set once, read from any thread.
final class StopFlag: @unchecked Sendable {
    // `@unchecked`: `value` is only touched under `lock`.
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}
