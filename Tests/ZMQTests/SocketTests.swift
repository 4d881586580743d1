import Foundation
import Glibc
import Synchronization
import Testing
import ZMQ

struct SocketTests {
    @Test func synchronousPairRoundTripKeepsFrames() throws {
        let context = Context()
        let endpoint = "inproc://pair-\(UUID().uuidString)"
        let server = try Socket(context: context, type: .pair)
        try server.bind(endpoint)
        let client = try Socket(context: context, type: .pair)
        try client.connect(endpoint)
        #expect(try client.send([Data("a".utf8), Data(), Data([0, 1, 2])]))
        let parts = try #require(try server.receive())
        #expect(parts == [Data("a".utf8), Data(), Data([0, 1, 2])])
    }

    @Test func nonBlockingReceiveOnEmptySocketIsNil() throws {
        let context = Context()
        let socket = try Socket(context: context, type: .pull)
        try socket.bind("inproc://empty-\(UUID().uuidString)")
        #expect(try socket.receive(wait: false) == nil)
    }

    @Test func nonBlockingSendWithoutPeerIsFalse() throws {
        let context = Context()
        let socket = try Socket(context: context, type: .push)
        try socket.bind("inproc://nopeer-\(UUID().uuidString)")
        #expect(try socket.send([Data("x".utf8)], wait: false) == false)
    }

    @Test func bindErrorsKeepErrno() throws {
        let context = Context()
        let first = try Socket(context: context, type: .pull)
        let endpoint = try first.bind("tcp://127.0.0.1:*")
        let second = try Socket(context: context, type: .pull)
        let error = #expect(throws: ZMQError.self) { try second.bind(endpoint) }
        #expect(error?.code == EADDRINUSE)
        #expect(error?.description.contains(endpoint) == true)
        let bad = #expect(throws: ZMQError.self) { try second.bind("nonsense://x") }
        #expect(bad?.code == EPROTONOSUPPORT)
    }

    @Test func wildcardTcpBindReportsPort() throws {
        let context = Context()
        let socket = try Socket(context: context, type: .pull)
        let endpoint = try socket.bind("tcp://127.0.0.1:*")
        #expect(endpoint.hasPrefix("tcp://127.0.0.1:"))
        #expect(!endpoint.hasSuffix(":*"))
    }

    @Test func closeIsIdempotent() throws {
        let context = Context()
        var socket = try Socket(context: context, type: .push)
        socket.close()
        socket.close()
        let open = socket.isOpen
        #expect(!open)
        let error = #expect(throws: ZMQError.self) { try socket.bind("inproc://closed") }
        #expect(error?.isClosed == true)
    }

    @Test func pollTimesOutWithoutSpinning() throws {
        let context = Context()
        let socket = try Socket(context: context, type: .pull)
        try socket.bind("inproc://poll-\(UUID().uuidString)")
        var items = [socket.pollItem(.readable)]
        let start = ContinuousClock.now
        #expect(try poll(&items, timeout: .milliseconds(30)) == 0)
        #expect(ContinuousClock.now - start >= .milliseconds(29))
        #expect(items[0].ready.isEmpty)
    }

    // MARK: - Large frames: lent to libzmq when sent, kept in libzmq's buffer when received

    /// Bytes that say where they are: frame `n`'s byte `i` is a function of both, so a frame cut, shifted or
    /// mixed with another is seen.
    static func pattern(_ count: Int, seed: Int) -> Data {
        Data((0..<count).map { UInt8(truncatingIfNeeded: ($0 &* 31) ^ ($0 >> 11) &+ seed &* 97) })
    }

    /// A frame whose bytes are malloc'd and which counts its release.
    final class Releases: Sendable {
        private let atomic = Atomic(0)
        func add() { atomic.add(1, ordering: .sequentiallyConsistent) }
        var count: Int { atomic.load(ordering: .sequentiallyConsistent) }
    }

    static func counted(_ data: Data, released: Releases) throws -> Data {
        let bytes = try #require(malloc(data.count))
        data.copyBytes(to: bytes.assumingMemoryBound(to: UInt8.self), count: data.count)
        return Data(
            bytesNoCopy: bytes,
            count: data.count,
            deallocator: .custom { pointer, _ in
                free(pointer)
                released.add()
            }
        )
    }

    static func waitUntil(_ condition: () -> Bool) -> Bool {
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if condition() { return true }
            usleep(1000)
        }
        return condition()
    }

    @Test(arguments: ["inproc", "tcp"])
    func framesAroundTheZeroCopySizeArriveIntact(transport: String) throws {
        let context = Context()
        let server = try Socket(context: context, type: .pull)
        let endpoint = try server.bind(transport == "tcp" ? "tcp://127.0.0.1:*" : "inproc://large-\(UUID().uuidString)")
        let client = try Socket(context: context, type: .push)
        try client.connect(endpoint)
        let sizes = [0, 1, (64 << 10) - 1, 64 << 10, (64 << 10) + 1, 3 << 20]
        var sent: [[Data]] = []
        for round in 0..<4 {
            let message = sizes.enumerated().map { Self.pattern($0.element, seed: round * 10 + $0.offset) }
            // A slice of a larger buffer, too: its bytes start inside another allocation.
            let slice = Self.pattern(200_000, seed: round)[1000..<150_000]
            sent.append(message + [Data(slice), slice])
            #expect(try client.send(sent[round]))
        }
        for round in 0..<4 {
            let parts = try #require(try server.receive())
            #expect(parts.map(\.count) == sent[round].map(\.count))
            #expect(parts == sent[round], "round \(round)")
        }
    }

    @Test func aLentFrameIsReleasedOnceLibzmqHasWrittenIt() throws {
        let released = Releases()
        let context = Context()
        let server = try Socket(context: context, type: .pull)
        let endpoint = try server.bind("tcp://127.0.0.1:*")
        let client = try Socket(context: context, type: .push)
        try client.connect(endpoint)
        let original = Self.pattern(1 << 20, seed: 7)
        do {
            let frame = try Self.counted(original, released: released)
            #expect(try client.send([Data("header".utf8), frame]))
        }
        let parts = try #require(try server.receive())
        #expect(parts == [Data("header".utf8), original])
        #expect(Self.waitUntil { released.count == 1 }, "libzmq let the frame go")
        #expect(released.count == 1)
    }

    @Test func aLentFrameNotTakenIsReleasedAtOnce() throws {
        let released = Releases()
        let context = Context()
        // A PUSH with no peer refuses a non-blocking send (EAGAIN); a ROUTER that routes mandatorily refuses a
        // message to an unknown peer (EHOSTUNREACH). Either way the lent frame is given back.
        let push = try Socket(context: context, type: .push)
        try push.bind("inproc://nobody-\(UUID().uuidString)")
        do {
            let frame = try Self.counted(Self.pattern(100_000, seed: 1), released: released)
            #expect(try push.send([frame], wait: false) == false)
        }
        #expect(released.count == 1)
        let router = try Socket(context: context, type: .router)
        try router.set(.routerMandatory(true))
        try router.bind("inproc://router-\(UUID().uuidString)")
        do {
            let frame = try Self.counted(Self.pattern(100_000, seed: 2), released: released)
            let error = #expect(throws: ZMQError.self) { try router.send([Data("nobody".utf8), frame]) }
            #expect(error?.code == EHOSTUNREACH)
        }
        #expect(released.count == 2)
    }

    @Test func aReceivedLargeFrameOutlivesItsSocketAndContext() throws {
        let original = Self.pattern(2 << 20, seed: 3)
        var kept: Data
        do {
            let context = Context()
            let server = try Socket(context: context, type: .pull)
            let endpoint = try server.bind("tcp://127.0.0.1:*")
            let client = try Socket(context: context, type: .push)
            try client.connect(endpoint)
            #expect(try client.send([original]))
            kept = try #require(try server.receive()).first ?? Data()
        }
        #expect(kept == original)
        kept.append(1)
        #expect(kept.count == original.count + 1 && kept.prefix(original.count) == original)
    }
}
