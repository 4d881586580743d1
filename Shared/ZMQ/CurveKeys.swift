import CZMQ
import Glibc

/// A CURVE key pair (libzmq's CurveZMQ, Curve25519) in Z85 text: 40 printable characters per key.
///
/// A binding service keeps a pair whose public key its clients are given (the server key); each client has a
/// pair of its own, whose public key the server's allow-list names. The secret keys never leave their host.
public struct CurveKeyPair: Sendable, Equatable {
    /// The public key, Z85, 40 characters.
    public let publicKey: String
    /// The secret key, Z85, 40 characters.
    public let secretKey: String

    /// A new random key pair.
    public static func generate() throws(ZMQError) -> CurveKeyPair {
        var publicKey = [CChar](repeating: 0, count: 41)
        var secretKey = [CChar](repeating: 0, count: 41)
        guard zmq_curve_keypair(&publicKey, &secretKey) == 0 else { throw ZMQError.last("zmq_curve_keypair") }
        return CurveKeyPair(publicKey: String(cString: publicKey), secretKey: String(cString: secretKey))
    }

    /// The pair of a secret key (its public key derived from it).
    public init(secretKey: String) throws(ZMQError) {
        guard Self.isKey(secretKey) else { throw ZMQError(code: EINVAL, operation: "a CURVE key is 40 Z85 characters") }
        var publicKey = [CChar](repeating: 0, count: 41)
        guard zmq_curve_public(&publicKey, secretKey) == 0 else { throw ZMQError.last("zmq_curve_public") }
        self.publicKey = String(cString: publicKey)
        self.secretKey = secretKey
    }

    private init(publicKey: String, secretKey: String) {
        self.publicKey = publicKey
        self.secretKey = secretKey
    }

    /// True when `text` has the shape of a Z85 CURVE key: 40 characters of the Z85 alphabet.
    public static func isKey(_ text: String) -> Bool {
        let alphabet = Set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#".utf8)
        return text.utf8.count == 40 && text.utf8.allSatisfy(alphabet.contains)
    }

    /// Whether this libzmq can do CURVE (it is built with libsodium or its own tweetnacl).
    public static var isAvailable: Bool { zmq_has("curve") != 0 }
}
