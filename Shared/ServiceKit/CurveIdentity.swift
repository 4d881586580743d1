public import Config
import Foundation
import Glibc
import Synchronization
public import ZMQ

/// A process's CURVE identity and trust, from the `curve` settings (docs/SECURITY.md): its key pair, the server
/// key of each endpoint it connects to, and the client keys its bound sockets accept.
public struct CurveIdentity: Sendable {
    /// This process's key pair.
    public let keys: CurveKeyPair
    /// The servers' public key where ``serverKeys`` names none.
    public let defaultServerKey: String
    /// The server's public key by endpoint.
    public let serverKeys: [String: String]
    /// The client keys the bound sockets accept.
    public let allow: AllowList

    /// The identity a configuration gives, or nil when CURVE is off. A self-contained configuration (one that
    /// names no other party) makes its key pair at first start when the file is missing.
    /// - Throws: A ``ConfigurationError`` naming the `curve` key at fault (an unreadable or malformed key file,
    ///   a missing allow-list entry).
    public static func load(_ configuration: Configuration) throws(ConfigurationError) -> CurveIdentity? {
        let curve = configuration.curve
        guard curve.enabled else { return nil }
        guard CurveKeyPair.isAvailable else {
            throw ConfigurationError(source: "", field: "curve.enabled", problem: "this libzmq has no CURVE support; set it to false")
        }
        let path = configuration.curveKeyPath
        let keys = try KeyFiles.pair(at: path, create: curve.isSelfContained, field: "curve.key")
        let defaultServerKey =
            curve.serverKey.isEmpty ? keys.publicKey : try KeyFiles.publicKey(curve.serverKey, field: "curve.server_key")
        var byService: [String: String] = [:]
        for (service, text) in curve.serverKeys {
            byService[service] = try KeyFiles.publicKey(text, field: "curve.server_keys.\(service)")
        }
        var serverKeys: [String: String] = [:]
        for (service, endpoints) in Self.boundBy(configuration.endpoints) {
            for endpoint in endpoints { serverKeys[endpoint] = byService[service] ?? defaultServerKey }
        }
        let allow = try AllowList(own: keys.publicKey, entries: curve.allow)
        return CurveIdentity(keys: keys, defaultServerKey: defaultServerKey, serverKeys: serverKeys, allow: allow)
    }

    /// The context settings: clients use ``keys`` and the server keys, and tell `handshakeFailed` of each
    /// handshake a server turned down; bound sockets admit the allow-list's keys and tell `refused` of every
    /// client they turn away. A process that binds nothing (`baton`) passes `binds: false`, and runs no ZAP handler.
    public func settings(
        binds: Bool = true,
        refused: (@Sendable (ZAPRequest) -> Void)? = nil,
        handshakeFailed: (@Sendable (String) -> Void)? = nil
    ) -> CurveSettings {
        let allow = allow
        var authorize: (@Sendable (ZAPRequest) -> Bool)?
        if binds {
            authorize = { request in
                if allow.contains(request.publicKey) { return true }
                refused?(request)
                return false
            }
        }
        return CurveSettings(
            keys: keys,
            defaultServerKey: defaultServerKey,
            serverKeys: serverKeys,
            handshakeFailed: handshakeFailed,
            authorize: authorize
        )
    }

    /// The endpoints each binding service binds, by the service's name in `curve.server_keys`.
    static func boundBy(_ endpoints: Configuration.Endpoints) -> [String: [String]] {
        [
            "scheduler": [endpoints.runs, endpoints.control, endpoints.reports],
            "algorithm": [endpoints.results, endpoints.acks, endpoints.algorithmControl],
            "logger": [endpoints.statusIn, endpoints.statusOut, endpoints.query],
        ]
    }

    /// The `tcp://` endpoints on a non-loopback address, of those given: without CURVE, anyone who can reach
    /// the address can use them.
    public static func exposed(_ endpoints: [String]) -> [String] {
        endpoints.filter { endpoint in
            guard endpoint.hasPrefix("tcp://") else { return false }
            var host = String(endpoint.dropFirst("tcp://".count))
            if let colon = host.lastIndex(of: ":") { host = String(host[..<colon]) }
            // A connecting endpoint may name its source: tcp://source;host:port.
            if let semicolon = host.lastIndex(of: ";") { host = String(host[host.index(after: semicolon)...]) }
            host = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
            return !(host == "localhost" || host == "::1" || host.hasPrefix("127."))
        }
    }
}

/// The client public keys bound sockets accept: this process's own, plus Z85 keys, `.pub` files and folders of
/// `.pub` files from `curve.allow`. Files and folders are read again when they change (looked at no more than
/// once a second), so a key is added or withdrawn without a restart.
public final class AllowList: Sendable {
    private struct State {
        var keys: Set<String>
        var stamps: [String: Int]
        var checked: ContinuousClock.Instant
    }

    private let own: String
    private let literal: Set<String>
    private let paths: [String]
    private let state: Mutex<State>
    private let now: @Sendable () -> ContinuousClock.Instant

    /// Reads the entries.
    /// - Parameters:
    ///   - own: This process's public key, always allowed.
    ///   - entries: Z85 keys, key files and folders of `.pub` files.
    ///   - now: The clock that paces re-reading (injected by tests).
    /// - Throws: A ``ConfigurationError`` naming `curve.allow` for an entry that is neither a key nor a readable
    ///   file or folder, or a file that holds no key.
    public init(
        own: String,
        entries: [String],
        now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }
    ) throws(ConfigurationError) {
        self.own = own
        self.now = now
        literal = Set(entries.filter(KeyFiles.isKeyText))
        paths = entries.filter { !KeyFiles.isKeyText($0) }
        let (keys, stamps) = try Self.read(paths)
        state = Mutex(State(keys: keys, stamps: stamps, checked: now()))
    }

    /// How many client keys are allowed now (this process's own included).
    public var count: Int { state.withLock { $0.keys.union(literal).union([own]).count } }

    /// True when `key` is allowed.
    public func contains(_ key: String) -> Bool {
        if key == own || literal.contains(key) { return true }
        guard !paths.isEmpty else { return false }
        return state.withLock { state in
            let time = now()
            if time - state.checked >= .seconds(1) {
                state.checked = time
                let stamps = Self.stamps(paths)
                // A folder or file that changed is read again; one that cannot be read keeps the last keys.
                if stamps != state.stamps, let (keys, fresh) = try? Self.read(paths) {
                    state.keys = keys
                    state.stamps = fresh
                }
            }
            return state.keys.contains(key)
        }
    }

    private static func read(_ paths: [String]) throws(ConfigurationError) -> (Set<String>, [String: Int]) {
        var keys: Set<String> = []
        for path in paths {
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else {
                throw ConfigurationError(source: "", field: "curve.allow", problem: "\(path): no such key, file or folder")
            }
            if isFolder.boolValue {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
                for name in names.sorted() where name.hasSuffix(".pub") {
                    let file = (path as NSString).appendingPathComponent(name)
                    keys.insert(try KeyFiles.publicKey(file, field: "curve.allow"))
                }
            } else {
                keys.insert(try KeyFiles.publicKey(path, field: "curve.allow"))
            }
        }
        return (keys, stamps(paths))
    }

    /// Each path's modification time (a folder's changes when a file is added, removed or renamed in it).
    private static func stamps(_ paths: [String]) -> [String: Int] {
        var stamps: [String: Int] = [:]
        for path in paths {
            var info = stat()
            if stat(path, &info) == 0 { stamps[path] = info.st_mtim.tv_sec * 1_000_000_000 + info.st_mtim.tv_nsec }
        }
        return stamps
    }
}

/// Key files as `baton keygen` writes them: `NAME.key` (`public …` and `secret …` lines, mode 600) and
/// `NAME.pub` (the public key and a newline).
public enum KeyFiles {
    /// The key pair in the file at `path`; made there first when `create` is set and it is missing.
    /// - Throws: A ``ConfigurationError`` naming `field`.
    public static func pair(at path: String, create: Bool, field: String) throws(ConfigurationError) -> CurveKeyPair {
        func fail(_ problem: String) -> ConfigurationError { ConfigurationError(source: "", field: field, problem: "\(path): \(problem)") }
        if create && access(path, F_OK) != 0 && errno == ENOENT {
            do {
                let keys = try CurveKeyPair.generate()
                let folder = (path as NSString).deletingLastPathComponent
                if !folder.isEmpty {
                    try FileManager.default.createDirectory(
                        atPath: folder,
                        withIntermediateDirectories: true,
                        attributes: [.posixPermissions: 0o700]
                    )
                }
                // Every service of a stack may start at once: the first link wins, and the others read its pair.
                try write(Self.pairText(keys), to: path, mode: 0o600, replace: false)
            } catch let error as WriteError where error.exists {
            } catch {
                throw fail("cannot make a key pair: \(error)")
            }
        }
        var info = stat()
        guard stat(path, &info) == 0 else { throw fail("cannot read the key pair: \(String(cString: strerror(errno)))") }
        guard info.st_mode & 0o077 == 0 else {
            throw fail("the secret key is readable by others (mode \(String(info.st_mode & 0o777, radix: 8))); chmod 600 it")
        }
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw fail("cannot read the key pair: \(error.localizedDescription)")
        }
        var fields: [String: String] = [:]
        for line in text.split(whereSeparator: \.isNewline) {
            let words = line.split(separator: " ", maxSplits: 1)
            if words.count == 2 { fields[String(words[0])] = words[1].trimmingCharacters(in: .whitespaces) }
        }
        guard let secret = fields["secret"], let keys = try? CurveKeyPair(secretKey: secret) else {
            throw fail("not a key pair file (expected a \"secret\" line with a 40-character Z85 key, as baton keygen writes)")
        }
        if let stated = fields["public"], stated != keys.publicKey {
            throw fail("its public key does not belong to its secret key")
        }
        return keys
    }

    /// A public key given as Z85 text or as a file holding one (a `.pub` file, or the `public` line of a pair).
    /// - Throws: A ``ConfigurationError`` naming `field`.
    public static func publicKey(_ text: String, field: String) throws(ConfigurationError) -> String {
        if isKeyText(text) { return text }
        guard let contents = try? String(contentsOfFile: text, encoding: .utf8) else {
            throw ConfigurationError(source: "", field: field, problem: "\(text): neither a 40-character Z85 key nor a readable file")
        }
        for line in contents.split(whereSeparator: \.isNewline) {
            let word = line.split(separator: " ").last.map(String.init) ?? ""
            if Configuration.Curve.isZ85(word), !line.hasPrefix("secret") { return word }
        }
        throw ConfigurationError(source: "", field: field, problem: "\(text): holds no public key (40 Z85 characters)")
    }

    /// True when `text` is a key itself rather than a file's name. Z85's alphabet has `/`, `.` and `-`, so a
    /// 40-character path such as `/etc/baton/keys/clients/processor-b.pub` has a key's shape: what exists on
    /// disk is a file.
    public static func isKeyText(_ text: String) -> Bool {
        Configuration.Curve.isZ85(text) && access(text, F_OK) != 0
    }

    /// The text of a pair file.
    public static func pairText(_ keys: CurveKeyPair) -> String { "public \(keys.publicKey)\nsecret \(keys.secretKey)\n" }

    /// Why a file could not be written.
    public struct WriteError: Error, CustomStringConvertible {
        /// The file exists and was not to be replaced.
        public let exists: Bool
        public let description: String
    }

    /// Writes a file created with `mode` (never readable by others in between), synced. An existing file is
    /// replaced only when `replace` is set; otherwise the write fails with `exists`, whoever made the file.
    public static func write(_ text: String, to path: String, mode: UInt32, replace: Bool) throws(WriteError) {
        let temporary = path + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode_t(mode))
        guard fd >= 0 else {
            throw WriteError(exists: false, description: "cannot create \(temporary): \(String(cString: strerror(errno)))")
        }
        defer { unlink(temporary) }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd) == 0
        close(fd)
        guard written == bytes.count, synced else {
            throw WriteError(exists: false, description: "cannot write \(path): \(String(cString: strerror(errno)))")
        }
        // rename replaces; link fails with EEXIST instead, so of two processes making the same file, one wins.
        guard (replace ? rename(temporary, path) : link(temporary, path)) == 0 else {
            let exists = errno == EEXIST
            throw WriteError(
                exists: exists,
                description: exists ? "\(path) exists" : "cannot write \(path): \(String(cString: strerror(errno)))"
            )
        }
    }
}
