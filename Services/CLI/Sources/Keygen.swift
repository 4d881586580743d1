import ArgumentParser
import Foundation
import Glibc
import ZMQ

extension Baton {
    /// `baton keygen`: a CURVE key pair for a service or a client (docs/SECURITY.md).
    struct Keygen: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a new CURVE key pair: NAME.key (public and secret, readable by you only) and NAME.pub.",
            discussion: """
                The .pub file holds the public key (40 Z85 characters): give a service's to its clients, and put a \
                client's in the service's allow-list. The .key file holds both keys and stays on its host. Existing \
                files are not overwritten without --force.
                """
        )

        @Option(help: ArgumentHelp("The files' name, without extension.", valueName: "name"))
        var name = "baton"

        @Option(help: ArgumentHelp("The folder to write them to (created if missing, only you may enter it).", valueName: "dir"))
        var out = "."

        @Flag(help: "Replace existing files of that name.")
        var force = false

        func validate() throws {
            guard !name.isEmpty, !name.contains("/"), name != ".", name != ".." else {
                throw ValidationError("--name is a file name without a folder, e.g. scheduler")
            }
        }

        func run() throws {
            guard CurveKeyPair.isAvailable else {
                throw ValidationError("this libzmq has no CURVE support (zmq_has(\"curve\") is false)")
            }
            let keys = try CurveKeyPair.generate()
            if !FileManager.default.fileExists(atPath: out) {
                try FileManager.default.createDirectory(
                    atPath: out,
                    withIntermediateDirectories: true,
                    attributes: [.posixPermissions: 0o700]
                )
            }
            let secret = (out as NSString).appendingPathComponent("\(name).key")
            let pub = (out as NSString).appendingPathComponent("\(name).pub")
            for path in [secret, pub] where FileManager.default.fileExists(atPath: path) && !force {
                throw ValidationError("\(path) exists; --force replaces it (clients that trust its public key then need the new one)")
            }
            try Self.write("public \(keys.publicKey)\nsecret \(keys.secretKey)\n", to: secret, mode: 0o600)
            try Self.write("\(keys.publicKey)\n", to: pub, mode: 0o644)
            print("wrote \(secret) (secret, mode 600) and \(pub)")
            print("public key: \(keys.publicKey)")
        }

        /// Writes a file created with `mode` (never readable by others in between), replacing an old one.
        static func write(_ text: String, to path: String, mode: mode_t) throws {
            let temporary = path + ".tmp-\(getpid())"
            let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
            guard fd >= 0 else { throw ValidationError("cannot create \(temporary): \(String(cString: strerror(errno)))") }
            let bytes = Array(text.utf8)
            let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            let synced = fsync(fd) == 0
            close(fd)
            guard written == bytes.count, synced, rename(temporary, path) == 0 else {
                unlink(temporary)
                throw ValidationError("cannot write \(path): \(String(cString: strerror(errno)))")
            }
        }
    }
}
