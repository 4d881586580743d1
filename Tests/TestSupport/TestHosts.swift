public import Foundation
import Glibc
import Synchronization

/// Hosts for one test: network namespaces joined by a bridge, each with its own address, its own ports and its
/// own loopback, so services on different "hosts" talk over real TCP between addresses that exist nowhere else.
///
/// ```swift
/// try await TestHosts.with(["a", "b"]) { hosts in
///     let argv = hosts.command(on: "a", ["/path/to/baton-logger"])   // runs it inside host a's namespace
///     try await hosts.cut("b")                                           // b's cable pulled
///     try await hosts.restore("b")
/// }
/// ```
///
/// The bridge lives in a namespace of its own, with one veth pair per host (`v<host>` on the bridge side,
/// `eth0` in the host); nothing is made in the root namespace, and no namespace has a route out of the
/// subnet, so no traffic leaves them. Names carry this process's pid (`btns<pid>-<n>…`): parallel suites do
/// not clash, and ``sweep()`` removes what a crashed run left behind. Needs root and `ip` (iproute2).
public final class TestHosts: Sendable {
    /// The prefix of every namespace these helpers make.
    public static let prefix = "btns"
    /// The subnet of the hosts' addresses; a host's address is `10.231.0.<its index + 1>`.
    public static let subnet = "10.231.0"

    /// The hosts' labels, in order (e.g. `["a", "b", "c"]`).
    public let hosts: [String]
    /// This set's part of the namespaces' names (`btns<pid>-<n>`).
    public let tag: String

    private init(hosts: [String], tag: String) {
        self.hosts = hosts
        self.tag = tag
    }

    /// Where `ip` is, or nil.
    public static let ip: String? = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }

    /// Why hosts cannot be made here (not root, no `ip`), or nil when they can.
    public static var unavailable: String? {
        if getuid() != 0 { return "network namespaces need root (uid \(getuid()))" }
        if ip == nil { return "iproute2's ip is not installed" }
        return nil
    }

    /// The namespace of `host`.
    public func namespace(_ host: String) -> String { "\(tag)\(host)" }

    /// The address of `host` (no prefix length), e.g. `10.231.0.2`.
    public func address(_ host: String) -> String {
        guard let index = hosts.firstIndex(of: host) else { preconditionFailure("no host \(host)") }
        return "\(Self.subnet).\(index + 1)"
    }

    private var bridge: String { "\(tag)br" }

    /// The command line that runs `arguments` inside `host` (`ip netns exec`, which execs the program in place,
    /// so the pid is the program's).
    public func command(on host: String, _ arguments: [String]) -> [String] {
        [Self.ip ?? "ip", "netns", "exec", namespace(host)] + arguments
    }

    /// Makes the namespaces, the bridge and the links. Sweeps what dead earlier runs left first.
    /// - Parameter hosts: The hosts' labels (short: they become part of namespace names).
    public static func make(_ hosts: [String]) async throws -> TestHosts {
        if let reason = unavailable { throw Failure(reason) }
        await sweep()
        let set = TestHosts(hosts: hosts, tag: "\(prefix)\(getpid())-\(Counter.next())")
        do {
            try await set.build()
        } catch {
            await set.tearDown()
            throw error
        }
        return set
    }

    /// Runs `body` with new hosts and always removes them afterwards (processes, links, namespaces).
    public static func with<T>(_ hosts: [String], _ body: (TestHosts) async throws -> T) async throws -> T {
        let set = try await make(hosts)
        do {
            let value = try await body(set)
            await set.tearDown()
            return value
        } catch {
            await set.tearDown()
            throw error
        }
    }

    private func build() async throws {
        try await Self.ip(["netns", "add", bridge])
        try await Self.ip(["-n", bridge, "link", "add", "br0", "type", "bridge"])
        try await Self.ip(["-n", bridge, "link", "set", "br0", "up"])
        for host in hosts {
            let namespace = namespace(host)
            try await Self.ip(["netns", "add", namespace])
            try await Self.ip(["-n", namespace, "link", "set", "lo", "up"])
            // Made inside the bridge's namespace with its peer placed straight into the host's: neither end
            // ever exists in the root namespace.
            try await Self.ip(["-n", bridge, "link", "add", "v\(host)", "type", "veth", "peer", "name", "eth0", "netns", namespace])
            try await Self.ip(["-n", bridge, "link", "set", "v\(host)", "master", "br0"])
            try await Self.ip(["-n", bridge, "link", "set", "v\(host)", "up"])
            try await Self.ip(["-n", namespace, "addr", "add", "\(address(host))/24", "dev", "eth0"])
            try await Self.ip(["-n", namespace, "link", "set", "eth0", "up"])
        }
    }

    /// Pulls `host`'s cable: its link to the bridge goes down; its address and sockets stay.
    public func cut(_ host: String) async throws {
        try await Self.ip(["-n", bridge, "link", "set", "v\(host)", "down"])
    }

    /// Plugs `host`'s cable back in.
    public func restore(_ host: String) async throws {
        try await Self.ip(["-n", bridge, "link", "set", "v\(host)", "up"])
    }

    /// Kills every process inside the hosts, then deletes the namespaces (their links go with them).
    public func tearDown() async {
        await Self.remove(hosts.map(namespace) + [bridge])
    }

    /// Removes the namespaces of earlier runs whose process is gone (a crashed or killed test run).
    public static func sweep() async {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/run/netns")) ?? []
        let stale = names.filter { name in
            guard name.hasPrefix(prefix), let dash = name.firstIndex(of: "-"),
                let owner = Int32(name[name.index(name.startIndex, offsetBy: prefix.count)..<dash])
            else { return false }
            return owner != getpid() && kill(owner, 0) != 0 && errno == ESRCH
        }
        await remove(stale)
    }

    private static func remove(_ namespaces: [String]) async {
        for namespace in namespaces {
            // SIGKILL until none is left: a process may fork while its siblings die.
            for _ in 0..<20 {
                let pids = ((try? await ip(["netns", "pids", namespace])) ?? "").split(whereSeparator: \.isWhitespace).compactMap {
                    Int32($0)
                }
                if pids.isEmpty { break }
                for pid in pids { kill(pid, SIGKILL) }
                try? await Task.sleep(for: .milliseconds(50))
            }
            _ = try? await ip(["netns", "delete", namespace])
        }
    }

    /// Runs `ip arguments`; its output, or a ``Failure`` with it when `ip` fails.
    @discardableResult
    public static func ip(_ arguments: [String]) async throws -> String {
        guard let ip else { throw Failure("iproute2's ip is not installed") }
        let outcome = try await run(ip, arguments)
        guard outcome.status == 0 else { throw Failure("ip \(arguments.joined(separator: " ")): \(outcome.output)") }
        return outcome.output
    }

    /// Runs a program to its end without holding a thread of the cooperative pool; its status and output
    /// (stdout and stderr together).
    public static func run(_ path: String, _ arguments: [String]) async throws -> (status: Int32, output: String) {
        try await Program.run(path, arguments)
    }

    /// A failure to make or change the hosts.
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        public init(_ description: String) { self.description = description }
    }

    /// Numbers the sets one process makes.
    private enum Counter {
        private static let value = Mutex(0)
        static func next() -> Int {
            value.withLock { value in
                value += 1
                return value
            }
        }
    }
}
