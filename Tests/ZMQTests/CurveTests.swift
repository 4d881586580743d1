import Foundation
import Synchronization
import Testing
import ZMQ

/// CURVE on tcp: a client that knows the server's public key talks to it, encrypted; one with another server key
/// never gets through.
struct CurveTests {
    @Test func keyPairsAreFreshAndThePublicKeyFollowsFromTheSecret() throws {
        try #require(CurveKeyPair.isAvailable)
        let first = try CurveKeyPair.generate()
        let second = try CurveKeyPair.generate()
        #expect(first != second)
        for key in [first.publicKey, first.secretKey] { #expect(CurveKeyPair.isKey(key)) }
        #expect(try CurveKeyPair(secretKey: first.secretKey) == first)
        #expect(throws: ZMQError.self) { try CurveKeyPair(secretKey: "short") }
        #expect(!CurveKeyPair.isKey(String(repeating: "\"", count: 40)))
    }

    @Test(.timeLimit(.minutes(1)))
    func aClientWithTheServersKeyIsHeardAndOneWithAnotherIsNot() async throws {
        let context = Context()
        let server = try CurveKeyPair.generate()
        let pull = try await AsyncSocket(
            context: context,
            configuration: .init(type: .pull, options: [.curveServer(server)], bind: ["tcp://127.0.0.1:*"])
        )
        let endpoint = try #require(pull.boundEndpoints.first)
        let good = try await AsyncSocket(
            context: context,
            configuration: .init(
                type: .push,
                options: [.curveClient(serverKey: server.publicKey, keys: try CurveKeyPair.generate())],
                connect: [endpoint]
            )
        )
        let impostor = try CurveKeyPair.generate()
        let wrong = try await AsyncSocket(
            context: context,
            configuration: .init(
                type: .push,
                options: [.curveClient(serverKey: impostor.publicKey, keys: try CurveKeyPair.generate())],
                connect: [endpoint]
            )
        )
        wrong.post([Data("forged".utf8)])
        try await good.send([Data("hello".utf8)])
        #expect(try await pull.receive(timeout: .seconds(20)) == [Data("hello".utf8)])
        // The client that has another server key fails its handshake: nothing of it ever arrives.
        #expect(try await pull.receive(timeout: .seconds(1)) == nil)
        for socket in [good, wrong, pull] { await socket.close() }
    }

    /// A context with CURVE settings applies them by itself to tcp endpoints, and its ZAP handler lets in only the
    /// client keys the check allows, telling it the domain (the bound endpoint), the address and the key.
    @Test(.timeLimit(.minutes(1)))
    func theZAPHandlerAdmitsOnlyAllowedClientKeys() async throws {
        let serverKeys = try CurveKeyPair.generate()
        let friend = try CurveKeyPair.generate()
        let stranger = try CurveKeyPair.generate()
        let asked = Mutex<[ZAPRequest]>([])
        let server = Context(
            curve: CurveSettings(
                keys: serverKeys,
                authorize: { request in
                    asked.withLock { $0.append(request) }
                    return request.publicKey == friend.publicKey
                }
            )
        )
        let pull = try await AsyncSocket(context: server, configuration: .init(type: .pull, bind: ["tcp://127.0.0.1:*"]))
        let endpoint = try #require(pull.boundEndpoints.first)
        let strangers = Context(curve: CurveSettings(keys: stranger, defaultServerKey: serverKeys.publicKey))
        let friends = Context(curve: CurveSettings(keys: friend, serverKeys: [endpoint: serverKeys.publicKey]))
        let refused = try await AsyncSocket(context: strangers, configuration: .init(type: .push, connect: [endpoint]))
        refused.post([Data("forged".utf8)])
        let admitted = try await AsyncSocket(context: friends, configuration: .init(type: .push, connect: [endpoint]))
        try await admitted.send([Data("hello".utf8)])
        #expect(try await pull.receive(timeout: .seconds(20)) == [Data("hello".utf8)])
        #expect(try await pull.receive(timeout: .seconds(1)) == nil)
        let requests = asked.withLock { $0 }
        #expect(requests.contains { $0.publicKey == stranger.publicKey && $0.address == "127.0.0.1" })
        #expect(requests.allSatisfy { $0.domain == "tcp://127.0.0.1:*" })
        for socket in [admitted, refused, pull] { await socket.close() }
    }

    /// Plain sockets in a CURVE context stay plain where CURVE does not apply (ipc, inproc).
    @Test(.timeLimit(.minutes(1)))
    func ipcAndInprocStayPlain() async throws {
        let keys = try CurveKeyPair.generate()
        let context = Context(curve: CurveSettings(keys: keys, authorize: { _ in false }))
        let plain = Context()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("curve-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let endpoint = "ipc://\(folder.path)/s"
        let pull = try await AsyncSocket(context: context, configuration: .init(type: .pull, bind: [endpoint]))
        let push = try await AsyncSocket(context: plain, configuration: .init(type: .push, connect: [endpoint]))
        try await push.send([Data("over ipc".utf8)])
        #expect(try await pull.receive(timeout: .seconds(20)) == [Data("over ipc".utf8)])
        for socket in [push, pull] { await socket.close() }
    }

    /// libzmq gives up on an endpoint whose handshake was refused; the socket connects again by itself, so a key
    /// allowed a little later gets through without a restart, and each refusal is told to the context's hook.
    @Test(.timeLimit(.minutes(1)))
    func aRefusedClientConnectsAgainAndGetsThroughOnceAllowed() async throws {
        let serverKeys = try CurveKeyPair.generate()
        let client = try CurveKeyPair.generate()
        let allowed = Mutex(false)
        let server = Context(curve: CurveSettings(keys: serverKeys, authorize: { _ in allowed.withLock { $0 } }))
        let pull = try await AsyncSocket(context: server, configuration: .init(type: .pull, bind: ["tcp://127.0.0.1:*"]))
        let endpoint = try #require(pull.boundEndpoints.first)
        let failures = Mutex<[String]>([])
        let clients = Context(
            curve: CurveSettings(
                keys: client,
                defaultServerKey: serverKeys.publicKey,
                handshakeFailed: { endpoint in failures.withLock { $0.append(endpoint) } }
            )
        )
        let push = try await AsyncSocket(context: clients, configuration: .init(type: .push, connect: [endpoint]))
        push.post([Data("held until allowed".utf8)])
        #expect(try await pull.receive(timeout: .milliseconds(500)) == nil)
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: .seconds(20))
        while failures.withLock({ $0.isEmpty }) && clock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(failures.withLock { $0 }.first == endpoint)
        allowed.withLock { $0 = true }
        // What was queued for the refused connection went with it (libzmq drops a failed session's pipe), and so
        // may a message sent while that pipe was being torn down: like a real client, the test sends again each
        // second until one gets through (the reconnect is due 1 s after the refusal).
        var received: [Data]?
        while received == nil && clock.now < deadline {
            push.post([Data("after".utf8)])
            received = try await pull.receive(timeout: .seconds(1))
        }
        #expect(
            received == [Data("after".utf8)] || received == [Data("held until allowed".utf8)],
            "refusals seen: \(failures.withLock { $0.count })"
        )
        for socket in [push, pull] { await socket.close() }
    }
}
