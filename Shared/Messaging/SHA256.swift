public import Foundation
import CPlatform

/// SHA-256 digests, computed by the system's libcrypto (OpenSSL).
public struct SHA256: ~Copyable {
    private let context: OpaquePointer

    /// Starts a new digest.
    public init() {
        guard let context = EVP_MD_CTX_new(), EVP_DigestInit_ex(context, EVP_sha256(), nil) == 1 else {
            preconditionFailure("libcrypto could not start a SHA-256 digest")
        }
        self.context = context
    }

    deinit { EVP_MD_CTX_free(context) }

    /// Adds bytes to the digest.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        if let base = bytes.baseAddress, bytes.count > 0 { EVP_DigestUpdate(context, base, bytes.count) }
    }

    /// Adds bytes to the digest.
    public mutating func update(_ data: Data) {
        data.withUnsafeBytes { update($0) }
    }

    /// Finishes the digest and returns its 32 bytes.
    public consuming func digest() -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        EVP_DigestFinal_ex(context, &digest, &length)
        return Array(digest.prefix(Int(length)))
    }

    /// Finishes the digest and returns it as 64 lowercase hex digits.
    public consuming func hexDigest() -> String {
        Self.hex(digest())
    }

    /// HMAC-SHA256 (RFC 2104) of `message` under `key`, as 64 lowercase hex digits.
    public static func hmac(key: [UInt8], message: Data) -> String {
        var block = key
        if block.count > 64 {
            var long = SHA256()
            long.update(Data(key))
            block = long.digest()
        }
        block += [UInt8](repeating: 0, count: 64 - block.count)
        var inner = SHA256()
        inner.update(Data(block.map { $0 ^ 0x36 }))
        inner.update(message)
        var outer = SHA256()
        outer.update(Data(block.map { $0 ^ 0x5C }))
        outer.update(Data(inner.digest()))
        return outer.hexDigest()
    }

    private static func hex(_ digest: [UInt8]) -> String {
        // By hand: `String(format:)` per byte was a seventh of a small hand-off's CPU in a profile.
        let digits = Array("0123456789abcdef".utf8)
        var hex = [UInt8]()
        hex.reserveCapacity(digest.count * 2)
        for byte in digest {
            hex.append(digits[Int(byte >> 4)])
            hex.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: hex, as: UTF8.self)
    }

    /// The hex digest of `data`.
    public static func hex(of data: Data) -> String {
        var digest = SHA256()
        digest.update(data)
        return digest.hexDigest()
    }

    /// True when `text` has the shape of a hex SHA-256 digest.
    public static func isDigest(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }
}
