import Foundation
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
}
