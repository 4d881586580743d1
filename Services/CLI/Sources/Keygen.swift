import ArgumentParser
import Foundation
import Glibc
import ServiceKit
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
            do {
                try KeyFiles.write(KeyFiles.pairText(keys), to: secret, mode: 0o600, replace: true)
                try KeyFiles.write("\(keys.publicKey)\n", to: pub, mode: 0o644, replace: true)
            } catch {
                throw ValidationError(error.description)
            }
            Console.line("wrote \(secret) (secret, mode 600) and \(pub)")
            Console.line("public key: \(keys.publicKey)")
        }
    }
}
