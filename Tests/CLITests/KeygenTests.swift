import ArgumentParser
import Foundation
import Testing
import ZMQ

@testable import CLI

/// `baton keygen`: a key pair whose secret only its owner can read, never overwritten by accident.
struct KeygenTests {
    @Test func writesAPairWhoseSecretOnlyItsOwnerReads() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("bt-keygen-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let folder = root + "/keys"
        try Baton.Keygen.parse(["--name", "scheduler", "--out", folder]).run()
        let secret = try String(contentsOfFile: folder + "/scheduler.key", encoding: .utf8)
        let pub = try String(contentsOfFile: folder + "/scheduler.pub", encoding: .utf8)
        let lines = Dictionary(
            uniqueKeysWithValues: secret.split(separator: "\n").map { line in
                let fields = line.split(separator: " ", maxSplits: 1)
                return (String(fields[0]), fields.count > 1 ? String(fields[1]) : "")
            }
        )
        let keys = try CurveKeyPair(secretKey: try #require(lines["secret"]))
        #expect(lines["public"] == keys.publicKey)
        #expect(pub == keys.publicKey + "\n")
        func mode(_ path: String) throws -> Int {
            (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) ?? -1
        }
        #expect(try mode(folder + "/scheduler.key") == 0o600)
        #expect(try mode(folder) == 0o700)
        // A second pair of that name is refused without --force, and replaces the first with it.
        #expect(throws: (any Error).self) { try Baton.Keygen.parse(["--name", "scheduler", "--out", folder]).run() }
        #expect(try String(contentsOfFile: folder + "/scheduler.pub", encoding: .utf8) == pub)
        try Baton.Keygen.parse(["--name", "scheduler", "--out", folder, "--force"]).run()
        #expect(try String(contentsOfFile: folder + "/scheduler.pub", encoding: .utf8) != pub)
        #expect(throws: (any Error).self) { try Baton.Keygen.parse(["--name", "../x", "--out", folder]) }
    }
}
