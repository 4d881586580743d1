import Foundation
import Glibc
import Testing
import TestSupport

/// The hosts helper itself: addresses only inside its namespaces, a cut link that really cuts, and nothing left
/// behind, whether the test ends well, throws, or its whole process died (the sweep).
@Suite(.serialized, .disabled(if: TestHosts.unavailable != nil, Comment(rawValue: TestHosts.unavailable ?? "")))
struct TestHostsTests {
    /// Host B reaches a listener on host A's address; with B's link cut it does not; restored, it does again.
    /// The root namespace never has the subnet, and everything is gone afterwards, processes included.
    @Test(.timeLimit(.minutes(1)))
    func hostsTalkOnlyAmongThemselvesAndCutLinksCut() async throws {
        var namespaces: [String] = []
        var listener: Process?
        try await TestHosts.with(["a", "b"]) { hosts in
            namespaces = ["a", "b"].map(hosts.namespace)
            let listen = hosts.command(
                on: "a",
                ["/usr/bin/env", "python3", "-c", Self.listener(hosts.address("a"))]
            )
            let process = Process()
            process.executableURL = URL(fileURLWithPath: listen[0])
            process.arguments = Array(listen.dropFirst())
            try process.run()
            listener = process
            let reached = try await TestStack.waitUntil(timeout: .seconds(10), poll: .milliseconds(200)) {
                try await Self.connects(hosts, from: "b", to: hosts.address("a"))
            }
            #expect(reached)
            #expect(!(try await TestHosts.run("/usr/bin/env", ["ip", "-4", "addr"]).output.contains(TestHosts.subnet + ".")))

            try await hosts.cut("b")
            #expect(!(try await Self.connects(hosts, from: "b", to: hosts.address("a"))))
            try await hosts.restore("b")
            let back = try await TestStack.waitUntil(timeout: .seconds(10), poll: .milliseconds(200)) {
                try await Self.connects(hosts, from: "b", to: hosts.address("a"))
            }
            #expect(back)
        }
        let left = (try? FileManager.default.contentsOfDirectory(atPath: "/run/netns")) ?? []
        #expect(Set(left).isDisjoint(with: namespaces), "left: \(left)")
        let stopped = try await TestStack.waitUntil(timeout: .seconds(5)) { listener?.isRunning == false }
        #expect(stopped, "the listener inside host a still runs")
    }

    /// A body that throws still removes the hosts.
    @Test(.timeLimit(.minutes(1)))
    func aFailingBodyLeavesNothing() async throws {
        struct Boom: Error {}
        var namespaces: [String] = []
        await #expect(throws: Boom.self) {
            try await TestHosts.with(["a"]) { hosts in
                namespaces = [hosts.namespace("a")]
                throw Boom()
            }
        }
        let left = (try? FileManager.default.contentsOfDirectory(atPath: "/run/netns")) ?? []
        #expect(!namespaces.isEmpty && Set(left).isDisjoint(with: namespaces), "left: \(left)")
    }

    /// A namespace of a run whose process is gone is removed by the next run, with what still runs in it.
    @Test(.timeLimit(.minutes(1)))
    func namespacesOfDeadRunsAreSwept() async throws {
        // A pid that was just used and is now free: the "crashed run".
        let dead = try await TestHosts.run("/bin/sh", ["-c", "echo $$"]).output.trimmingCharacters(in: .whitespacesAndNewlines)
        let stale = "\(TestHosts.prefix)\(dead)-1x"
        try await TestHosts.ip(["netns", "add", stale])
        let orphan = Process()
        orphan.executableURL = URL(fileURLWithPath: TestHosts.ip ?? "ip")
        orphan.arguments = ["netns", "exec", stale, "sleep", "600"]
        try orphan.run()
        let inside = try await TestStack.waitUntil(timeout: .seconds(5)) {
            !(try await TestHosts.ip(["netns", "pids", stale])).isEmpty
        }
        #expect(inside)
        // A live run's namespace is kept.
        try await TestHosts.with(["k"]) { hosts in
            await TestHosts.sweep()
            #expect(FileManager.default.fileExists(atPath: "/run/netns/\(hosts.namespace("k"))"))
        }
        #expect(!FileManager.default.fileExists(atPath: "/run/netns/\(stale)"))
        #expect(try await TestStack.exited(orphan, within: .seconds(5)))
    }

    static func listener(_ address: String) -> String {
        """
        import socket
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("\(address)", 7999))
        s.listen(16)
        while True:
            c, _ = s.accept()
            c.close()
        """
    }

    /// Whether a TCP connection from `host` to `address` succeeds within a second.
    static func connects(_ hosts: TestHosts, from host: String, to address: String) async throws -> Bool {
        let probe = "import socket; socket.create_connection((\"\(address)\", 7999), timeout=1).close()"
        let command = hosts.command(on: host, ["/usr/bin/env", "python3", "-c", probe])
        return try await TestHosts.run(command[0], Array(command.dropFirst())).status == 0
    }
}
