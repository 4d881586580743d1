import Foundation
import Glibc
import Testing

@Suite(.serialized)
struct UpTests {
    static let demoJob = """
        processor:
          count: 2
        jobs:
          - name: quick
            every: 1s
            builtin: demo
            duration: 100ms
            result_size: 512
        """

    /// `kill -9` of a processor under `baton up`: it is restarted and runs keep being stored; SIGTERM then
    /// stops every service and leaves no process behind.
    @Test(.timeLimit(.minutes(2)))
    func killedProcessorIsRestartedAndStopLeavesNoProcess() async throws {
        try await TestStack.with("up", yaml: Self.demoJob) { stack in
            let up = try stack.start("up", "baton", ["up", "--config", stack.configPath])
            let flowing = try await stack.waitUntil(timeout: .seconds(30)) { stack.storedCount() >= 2 }
            #expect(flowing, "baton up output: \((try? String(contentsOfFile: stack.directory + "/up.out", encoding: .utf8)) ?? "")")

            let processors = Self.processors(under: up.processIdentifier)
            #expect(processors.count == 2)
            let victim = try #require(processors.first)
            #expect(kill(victim, SIGKILL) == 0)

            let restarted = try await stack.waitUntil(timeout: .seconds(20)) {
                let now = Self.processors(under: up.processIdentifier)
                return now.count == 2 && !now.contains(victim)
            }
            #expect(restarted)
            let before = stack.storedCount()
            let kept = try await stack.waitUntil(timeout: .seconds(20)) { stack.storedCount() >= before + 3 }
            #expect(kept, "stored \(stack.storedCount()), \(before) at the restart")
            let output = try String(contentsOfFile: stack.directory + "/up.out", encoding: .utf8)
            #expect(output.contains("killed by signal 9; restarting"))

            let services = TestStack.descendants(of: up.processIdentifier)
            #expect(services.count >= 5)
            kill(up.processIdentifier, SIGTERM)
            let exited = try await stack.waitUntil(timeout: .seconds(30)) { !up.isRunning }
            #expect(exited)
            if exited { #expect(up.terminationStatus == 0) }
            let survivors = services.filter { TestStack.commandLine(of: $0) != nil && kill($0, 0) == 0 }
            #expect(survivors.isEmpty, "still running: \(survivors.compactMap(TestStack.commandLine(of:)))")
        }
    }

    /// Killing `baton up` itself with SIGKILL takes its services down too (they watch their supervisor).
    @Test(.timeLimit(.minutes(1)))
    func servicesDieWithTheirSupervisor() async throws {
        try await TestStack.with("orphans", yaml: Self.demoJob) { stack in
            let up = try stack.start("up", "baton", ["up", "--config", stack.configPath])
            let started = try await stack.waitUntil(timeout: .seconds(20)) {
                TestStack.descendants(of: up.processIdentifier).count >= 5
            }
            #expect(started)
            let services = TestStack.descendants(of: up.processIdentifier)
            kill(up.processIdentifier, SIGKILL)
            let gone = try await stack.waitUntil(timeout: .seconds(15)) {
                services.allSatisfy { kill($0, 0) != 0 }
            }
            #expect(gone, "orphans: \(services.compactMap(TestStack.commandLine(of:)))")
        }
    }

    /// A second `baton up` keeps the first one's standard error logs: each `<service>.stderr.log` becomes
    /// `.stderr.log.1`, byte for byte, and older ones move up, the oldest beyond `.3` dropped.
    @Test(.timeLimit(.minutes(2)))
    func aSecondUpKeepsTheFirstRunsLogs() async throws {
        try await TestStack.with("uplogs", yaml: Self.demoJob) { stack in
            let logs = stack.dataDirectory + "/logs"
            let names = ["logger", "scheduler", "algorithm", "processor-1"]
            func content(_ file: String) -> Data? { FileManager.default.contents(atPath: "\(logs)/\(file)") }
            func runUp(_ name: String) async throws {
                let stored = stack.storedCount()
                let up = try stack.start(name, "baton", ["up", "--config", stack.configPath])
                // A result went through this run, and every service has written its first lines (they log at start).
                let written = try await stack.waitUntil(timeout: .seconds(30)) {
                    stack.storedCount() > stored && names.allSatisfy { !(content("\($0).stderr.log") ?? Data()).isEmpty }
                }
                #expect(written, "\(name): \((try? FileManager.default.contentsOfDirectory(atPath: logs)) ?? [])")
                kill(up.processIdentifier, SIGTERM)
                let exited = try await stack.waitUntil(timeout: .seconds(30)) { !up.isRunning }
                #expect(exited)
            }
            try await runUp("up-1")
            let first = names.map { content("\($0).stderr.log") }
            #expect(first.allSatisfy { $0 != nil })
            // Pretend two earlier runs of the logger left logs behind, and one more than is kept.
            for index in 1...3 { try Data("run -\(index)\n".utf8).write(to: URL(fileURLWithPath: "\(logs)/logger.stderr.log.\(index)")) }
            try await runUp("up-2")
            for (name, before) in zip(names, first) {
                #expect(content("\(name).stderr.log.1") == before, "\(name): the first run's log was not kept")
                #expect(content("\(name).stderr.log") != before, "\(name): no new log")
            }
            #expect(content("logger.stderr.log.2") == Data("run -1\n".utf8))
            #expect(content("logger.stderr.log.3") == Data("run -2\n".utf8))
            #expect(!FileManager.default.fileExists(atPath: "\(logs)/logger.stderr.log.4"))
        }
    }

    /// A logger that cannot come up (its `status_in` port is taken): `baton up` waits for its bus for 10 s, says
    /// so, and starts the other services anyway; once the port is free, the restarted logger comes up and the
    /// stack works.
    @Test(.timeLimit(.minutes(2)))
    func theOthersStartAnywayWhenTheLoggerDoesNotComeUp() async throws {
        try await TestStack.with("nologger", yaml: Self.demoJob) { stack in
            let (holder, port) = try Self.holdPort()
            var held = true
            defer { if held { close(holder) } }
            let endpoint = "tcp://127.0.0.1:\(port)"
            let up = try stack.start(
                "up",
                "baton",
                ["up", "--config", stack.configPath],
                environment: ["BATON_ENDPOINT_STATUS_IN": endpoint]
            )
            func output() -> String { (try? String(contentsOfFile: stack.directory + "/up.out", encoding: .utf8)) ?? "" }
            let said = try await stack.waitUntil(timeout: .seconds(40)) { output().contains("the logger did not answer") }
            #expect(said, "\(output())")
            let text = output()
            // Not one other service before the 10 s were up.
            if let notice = text.range(of: "the logger did not answer"), let scheduler = text.range(of: "starting scheduler") {
                #expect(notice.lowerBound < scheduler.lowerBound, "\(text)")
            }
            close(holder)
            held = false
            let flowing = try await stack.waitUntil(timeout: .seconds(60)) { stack.storedCount() >= 1 }
            #expect(flowing, "\(output())")
            kill(up.processIdentifier, SIGTERM)
            #expect(try await TestStack.exited(up))
        }
    }

    /// A listening TCP socket on a free port of 127.0.0.1, and the port.
    static func holdPort() throws -> (Int32, UInt16) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                bind(fd, address, length) == 0 && listen(fd, 1) == 0 && getsockname(fd, address, &length) == 0
            }
        }
        if !bound { close(fd) }
        try #require(bound, "cannot listen on 127.0.0.1: \(String(cString: strerror(errno)))")
        return (fd, UInt16(bigEndian: address.sin_port))
    }

    static func processors(under pid: Int32) -> [Int32] {
        TestStack.descendants(of: pid).filter { TestStack.commandLine(of: $0)?.contains("baton-processor") == true }
    }
}
