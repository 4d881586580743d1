import Config
import Foundation
import Glibc
import ServiceKit
import Synchronization
import Testing
import ZMQ

/// The `curve` settings as a service reads them: key files, server keys by endpoint, the allow-list, and the
/// reporting of refused clients.
struct CurveIdentityTests {
    /// A folder of its own, removed afterwards.
    final class Folder {
        let path: String
        init() throws {
            path = FileManager.default.temporaryDirectory.appendingPathComponent("curve-id-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        }
        func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }
        deinit { try? FileManager.default.removeItem(atPath: path) }
    }

    func configuration(_ folder: Folder) -> Configuration {
        var configuration = Configuration()
        configuration.dataDirectory = folder.file("data")
        return configuration
    }

    @Test func aSelfContainedStackMakesOnePairAtFirstStartReadableByItsOwnerOnly() async throws {
        let folder = try Folder()
        let configuration = configuration(folder)
        // Every service of a stack starts at once: they all end up with the same pair.
        let identities = try await withThrowingTaskGroup(of: CurveIdentity?.self) { group in
            for _ in 0..<8 { group.addTask { try CurveIdentity.load(configuration) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let keys = Set(identities.compactMap { $0?.keys.secretKey })
        #expect(keys.count == 1)
        let secret = try #require(keys.first)
        let key = try CurveKeyPair(secretKey: secret)
        var info = stat()
        #expect(stat(configuration.curveKeyPath, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o600)
        #expect(stat(folder.file("data/keys"), &info) == 0)
        #expect(info.st_mode & 0o077 == 0)
        // Without anything else named, the server key is the pair's own, and only it is allowed.
        let identity = try #require(try CurveIdentity.load(configuration))
        #expect(identity.keys == key)
        #expect(identity.defaultServerKey == key.publicKey)
        #expect(identity.allow.contains(key.publicKey))
        #expect(!identity.allow.contains(try CurveKeyPair.generate().publicKey))
        // Left over by nothing: no temporary files beside the pair.
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.file("data/keys")) == ["baton.key"])
    }

    @Test func curveOffGivesNoIdentity() throws {
        let folder = try Folder()
        var configuration = configuration(folder)
        configuration.curve.enabled = false
        #expect(try CurveIdentity.load(configuration) == nil)
        #expect(!FileManager.default.fileExists(atPath: configuration.curveKeyPath))
    }

    @Test func aKeyFileOthersCanReadOrThatIsNotAPairIsAConfigurationError() throws {
        let folder = try Folder()
        var configuration = configuration(folder)
        configuration.curve.key = folder.file("loose.key")
        configuration.curve.allow = [try CurveKeyPair.generate().publicKey]
        let keys = try CurveKeyPair.generate()
        try KeyFiles.write(KeyFiles.pairText(keys), to: configuration.curve.key, mode: 0o644, replace: false)
        #expect {
            try CurveIdentity.load(configuration)
        } throws: { error in
            let error = error as? ConfigurationError
            return error?.field == "curve.key" && (error?.problem ?? "").contains("chmod 600")
        }
        chmod(configuration.curve.key, 0o600)
        #expect(try CurveIdentity.load(configuration)?.keys == keys)
        // Not self-contained (an allow-list is given): a missing pair is an error, never made up.
        configuration.curve.key = folder.file("missing.key")
        #expect(throws: ConfigurationError.self) { try CurveIdentity.load(configuration) }
        #expect(!FileManager.default.fileExists(atPath: configuration.curve.key))
        try KeyFiles.write("public nothing\n", to: configuration.curve.key, mode: 0o600, replace: false)
        #expect(throws: ConfigurationError.self) { try CurveIdentity.load(configuration) }
    }

    @Test func serverKeysFollowTheServiceThatBindsEachEndpoint() throws {
        let folder = try Folder()
        var configuration = configuration(folder)
        let own = try CurveKeyPair.generate()
        let hub = try CurveKeyPair.generate()
        let logger = try CurveKeyPair.generate()
        configuration.curve.key = folder.file("own.key")
        try KeyFiles.write(KeyFiles.pairText(own), to: configuration.curve.key, mode: 0o600, replace: false)
        try KeyFiles.write(hub.publicKey + "\n", to: folder.file("hub.pub"), mode: 0o644, replace: false)
        configuration.curve.serverKey = folder.file("hub.pub")
        configuration.curve.serverKeys = ["logger": logger.publicKey]
        configuration.endpoints.results = "tcp://10.0.0.1:7603"
        configuration.endpoints.statusIn = "tcp://10.0.0.2:7605"
        let identity = try #require(try CurveIdentity.load(configuration))
        let settings = identity.settings()
        #expect(settings.serverKey(for: "tcp://10.0.0.1:7603") == hub.publicKey)
        #expect(settings.serverKey(for: configuration.endpoints.control) == hub.publicKey)
        #expect(settings.serverKey(for: "tcp://10.0.0.2:7605") == logger.publicKey)
        #expect(settings.serverKey(for: configuration.endpoints.query) == logger.publicKey)
        configuration.curve.serverKeys = ["processor": logger.publicKey]
        #expect(throws: ConfigurationError.self) { try configuration.validate(source: "test") }
    }

    @Test func theAllowListReadsKeysFilesAndFoldersAndNoticesChanges() throws {
        let folder = try Folder()
        let clock = ManualClock()
        let own = try CurveKeyPair.generate().publicKey
        let literal = try CurveKeyPair.generate().publicKey
        let inFile = try CurveKeyPair.generate().publicKey
        let inFolder = try CurveKeyPair.generate().publicKey
        let later = try CurveKeyPair.generate().publicKey
        try FileManager.default.createDirectory(atPath: folder.file("clients"), withIntermediateDirectories: true)
        try KeyFiles.write(inFile + "\n", to: folder.file("one.pub"), mode: 0o644, replace: false)
        try KeyFiles.write(inFolder + "\n", to: folder.file("clients/b.pub"), mode: 0o644, replace: false)
        try KeyFiles.write(later + "\n", to: folder.file("clients/ignored.txt"), mode: 0o644, replace: false)
        let allow = try AllowList(
            own: own,
            entries: [literal, folder.file("one.pub"), folder.file("clients")],
            now: { clock.now }
        )
        for key in [own, literal, inFile, inFolder] { #expect(allow.contains(key)) }
        #expect(!allow.contains(later))
        // A key added to the folder is let in once the folder is looked at again (at most once a second);
        // one removed is turned away.
        try KeyFiles.write(later + "\n", to: folder.file("clients/c.pub"), mode: 0o644, replace: false)
        unlink(folder.file("clients/b.pub"))
        clock.advance(.seconds(2))
        #expect(allow.contains(later))
        #expect(!allow.contains(inFolder))
        #expect(throws: ConfigurationError.self) { try AllowList(own: own, entries: [folder.file("nothing-here")]) }
    }

    /// Z85's alphabet has `/`, `.` and `-`: a 40-character path has a key's shape, and must still be read as a file.
    @Test func aFortyCharacterPathIsReadAsAFileNotTakenAsAKey() throws {
        let folder = "/tmp/ck-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = "\(folder)/" + String(repeating: "k", count: 40 - folder.count - "/.pub".count) + ".pub"
        #expect(path.count == 40 && Configuration.Curve.isZ85(path))
        let key = try CurveKeyPair.generate().publicKey
        try KeyFiles.write(key + "\n", to: path, mode: 0o644, replace: false)
        #expect(try KeyFiles.publicKey(path, field: "curve.server_key") == key)
        let allow = try AllowList(own: try CurveKeyPair.generate().publicKey, entries: [path])
        #expect(allow.contains(key))
        #expect(!allow.contains(path))
    }

    @Test func onlyNonLoopbackTcpEndpointsAreExposed() {
        let endpoints = [
            "tcp://127.0.0.1:1", "tcp://localhost:2", "tcp://[::1]:3", "ipc:///tmp/x", "tcp://0.0.0.0:4", "tcp://10.1.2.3:5",
            "tcp://eth0:6", "tcp://127.0.0.1;10.0.0.1:7",
        ]
        #expect(CurveIdentity.exposed(endpoints) == ["tcp://0.0.0.0:4", "tcp://10.1.2.3:5", "tcp://eth0:6", "tcp://127.0.0.1;10.0.0.1:7"])
    }

    @Test func refusalsOfOneClientAreReportedOncePerWindowWithTheirCount() {
        let clock = ManualClock()
        let refusals = AuthRefusals(window: .seconds(10), now: { clock.now })
        let request = ZAPRequest(domain: "tcp://127.0.0.1:7602", address: "10.0.0.9", publicKey: String(repeating: "a", count: 40))
        #expect(refusals.record(request) == 1)
        #expect(refusals.record(request) == nil)
        #expect(refusals.record(request) == nil)
        var other = request
        other.address = "10.0.0.8"
        #expect(refusals.record(other) == 1)
        clock.advance(.seconds(11))
        #expect(refusals.record(request) == 3)
        #expect(refusals.record(request) == nil)
    }
}
