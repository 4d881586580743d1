public import Foundation
import Glibc
import Messaging
import Persistence

/// Reads a sealed raw result for sending, checking it against its outbox record as it goes.
///
/// A ZeroMQ frame is one contiguous buffer and the result message carries the whole result in one frame
/// (docs/PROTOCOL.md, "result"), so the payload must be in memory to be sent. What is streamed is the work
/// around it: the file is read in 1 MiB blocks straight into the frame's buffer and each block hashed as
/// it arrives (one pass over the bytes instead of a read and then a second pass to hash), its size is
/// checked before anything is allocated, and all of it runs on ``BlockingWork``, off the cooperative pool.
public enum ResultPayload {
    /// Why a raw result cannot be sent.
    public static let mismatch = "the raw result file does not match its recorded size and sha256"

    /// Reads `path`, which must hold exactly `size` bytes whose SHA-256 is `sha256`.
    /// - Throws: a `StorageError` if the file cannot be read or does not match.
    public static func read(path: String, size: Int, sha256: String) throws -> Data {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw StorageError("cannot open \(path)", errno: errno) }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw StorageError("cannot stat \(path)", errno: errno) }
        // A file of the wrong size is refused before a buffer of its size is allocated.
        guard Int(status.st_size) == size else { throw StorageError(mismatch) }
        var payload = Data(count: size)
        var digest = SHA256()
        var filled = 0
        let block = 1 << 20
        while true {
            let got = payload.withUnsafeMutableBytes { buffer -> Int in
                // Past the expected size, read into a scratch byte only to notice that the file grew.
                if filled == size {
                    var extra: UInt8 = 0
                    return Glibc.read(fd, &extra, 1)
                }
                let base = buffer.baseAddress.map { $0 + filled }
                return Glibc.read(fd, base, min(block, size - filled))
            }
            if got < 0 {
                if errno == EINTR { continue }
                throw StorageError("cannot read \(path)", errno: errno)
            }
            if got == 0 { break }
            guard filled < size else { throw StorageError(mismatch) }
            payload.withUnsafeBytes { digest.update(UnsafeRawBufferPointer(rebasing: $0[filled..<(filled + got)])) }
            filled += got
        }
        guard filled == size, digest.hexDigest() == sha256 else { throw StorageError(mismatch) }
        return payload
    }
}
