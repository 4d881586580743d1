import Glibc

/// Whether a path can be used as a service will use it, as a problem in words (`nil`: fine).
public enum PathCheck {
    /// A folder the service writes into: exists and is a writable directory, or can be created.
    public static func directory(_ path: String) -> String? {
        switch status(path) {
        case .directory:
            return access(path, W_OK | X_OK) == 0 ? nil : "\(path) is not writable (\(String(cString: strerror(errno))))"
        case .other:
            return "\(path) is not a directory"
        case .failed(let code):
            return "\(path) cannot be used (\(String(cString: strerror(code))))"
        case .missing:
            return creatable(path)
        }
    }

    /// A file the service creates or rewrites, with companions beside it (SQLite's `-wal`): not a directory,
    /// writable if it exists, in a folder that is writable or can be created.
    public static func file(_ path: String) -> String? {
        switch status(path) {
        case .directory:
            return "\(path) is a directory, not a file"
        case .other:
            if access(path, W_OK) != 0 { return "\(path) is not writable (\(String(cString: strerror(errno))))" }
        case .failed(let code):
            return "\(path) cannot be used (\(String(cString: strerror(code))))"
        case .missing:
            break
        }
        return directory(parent(of: path))
    }

    /// The file of a bound `ipc://` socket: its folder must exist (libzmq does not create it) and be writable.
    public static func socket(_ path: String) -> String? {
        // sun_path holds 108 bytes, the last a NUL.
        guard path.utf8.count < 108 else { return "the path is \(path.utf8.count) bytes long; a Unix socket path can have at most 107" }
        let folder = parent(of: path)
        switch status(folder) {
        case .missing: return "the folder \(folder) does not exist"
        case .other: return "\(folder) is not a directory"
        default: break
        }
        if case .directory = status(path) { return "\(path) is a directory" }
        return directory(folder)
    }

    /// A command's working directory: empty (the service's own), or an existing directory.
    public static func workingDirectory(_ path: String) -> String? {
        guard !path.isEmpty else { return nil }
        switch status(path) {
        case .directory: return access(path, X_OK) == 0 ? nil : "\(path) cannot be entered (\(String(cString: strerror(errno))))"
        case .missing: return "\(path) does not exist"
        case .other: return "\(path) is not a directory"
        case .failed(let code): return "\(path) cannot be used (\(String(cString: strerror(code))))"
        }
    }

    private enum Status { case directory, other, missing, failed(Int32) }

    private static func status(_ path: String) -> Status {
        var info = stat()
        guard stat(path, &info) == 0 else {
            // ENOTDIR: a folder on the way is a file; reported by `creatable` as such.
            return errno == ENOENT || errno == ENOTDIR ? .missing : .failed(errno)
        }
        return (info.st_mode & S_IFMT) == S_IFDIR ? .directory : .other
    }

    /// A missing folder can be created when its nearest existing ancestor is a writable directory.
    private static func creatable(_ path: String) -> String? {
        var ancestor = parent(of: path)
        while true {
            switch status(ancestor) {
            case .directory:
                guard access(ancestor, W_OK | X_OK) == 0 else {
                    return "\(path) cannot be created: \(ancestor) is not writable (\(String(cString: strerror(errno))))"
                }
                return nil
            case .other:
                return "\(path) cannot be created: \(ancestor) is not a directory"
            case .failed(let code):
                return "\(path) cannot be created: \(ancestor) cannot be used (\(String(cString: strerror(code))))"
            case .missing:
                let next = parent(of: ancestor)
                if next == ancestor { return "\(path) cannot be created" }
                ancestor = next
            }
        }
    }

    /// `folder/name`. (Plain string work: NSString's path methods trap on some long non-ASCII paths, and
    /// these are checked before anything else touches them.)
    public static func join(_ folder: String, _ name: String) -> String {
        folder.hasSuffix("/") ? folder + name : folder + "/" + name
    }

    /// The folder a path is in, `.` for a bare name.
    public static func parent(of path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return "." }
        var folder = trimmed[..<slash]
        while folder.count > 1, folder.hasSuffix("/") { folder = folder.dropLast() }
        return folder.isEmpty ? "/" : String(folder)
    }
}
