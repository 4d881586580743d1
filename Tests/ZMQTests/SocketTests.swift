import Foundation
import Glibc
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
}
