import CLibPQ
public import Foundation

/// One libpq connection to PostgreSQL whose every libpq call runs on a thread of its own, never on the
/// cooperative pool (libpq blocks: connecting, each query, each commit). Callers hand it a synchronous body,
/// ``run(_:)``, which gets a ``PostgresSession`` for that thread; a body's statements are thus serialised.
///
/// The connection is made when first needed and again after it was lost: a body that fails because the
/// server went away throws a ``PostgresError`` whose ``PostgresError/isConnectionLoss`` is true, and the next
/// body connects anew.
public final class PostgresConnection: Sendable {
    /// The connection string (a `postgresql://` URL, as libpq takes it).
    public let url: String
    private let worker: DedicatedThread
    private let state: Connection

    /// Prepares a connection; nothing is connected until the first ``run(_:)``.
    /// - Parameters:
    ///   - url: `postgresql://USER[:PASS]@HOST[:PORT]/DB`, `postgres://…`, or with `?host=/socket/dir`.
    ///   - name: The thread's name, and the `application_name` the server shows.
    public init(url: String, name: String = "baton") {
        self.url = url
        worker = DedicatedThread(name: "postgres \(name)")
        state = Connection(url: url, application: name)
    }

    deinit {
        let state = state
        worker.stop { state.close() }
    }

    /// Runs `body` on the connection's thread, connecting first if needed.
    public func run<T: Sendable>(_ body: @escaping @Sendable (PostgresSession) throws -> T) async throws -> T {
        let state = state
        return try await worker.run {
            let session = try state.session()
            do {
                return try body(session)
            } catch let error as PostgresError where error.isConnectionLoss {
                state.close()
                throw error
            }
        }
    }

    /// The libpq handle; touched only on the worker thread.
    private final class Connection: @unchecked Sendable {
        let url: String
        let application: String
        var handle: OpaquePointer?

        init(url: String, application: String) {
            self.url = url
            self.application = application
        }

        func session() throws -> PostgresSession {
            if let handle, PQstatus(handle) == CONNECTION_OK { return PostgresSession(handle: handle) }
            close()
            // `dbname` is expanded from the URL; the keywords after it override what it says. A connect timeout
            // and TCP keepalives so that a server that vanished is noticed rather than waited for.
            let pairs: [(String, String)] = [
                ("dbname", url), ("connect_timeout", "5"), ("application_name", application), ("keepalives", "1"),
                ("keepalives_idle", "10"), ("keepalives_interval", "5"), ("keepalives_count", "3"),
            ]
            let keywords = pairs.map { strdup($0.0) }
            let values = pairs.map { strdup($0.1) }
            defer {
                keywords.forEach { free($0) }
                values.forEach { free($0) }
            }
            let connection = (keywords.map { UnsafePointer($0) } + [nil]).withUnsafeBufferPointer { keywordPointers in
                (values.map { UnsafePointer($0) } + [nil]).withUnsafeBufferPointer { valuePointers in
                    PQconnectdbParams(keywordPointers.baseAddress, valuePointers.baseAddress, 1)
                }
            }
            guard let connection else { throw PostgresError(message: "out of memory connecting", connectionLost: true) }
            guard PQstatus(connection) == CONNECTION_OK else {
                let message = String(cString: PQerrorMessage(connection)).trimmingCharacters(in: .whitespacesAndNewlines)
                PQfinish(connection)
                throw PostgresError(message: "cannot connect: \(message)", connectionLost: true)
            }
            handle = connection
            return PostgresSession(handle: connection)
        }

        func close() {
            if let handle { PQfinish(handle) }
            handle = nil
        }
    }
}

/// A value bound to a statement's `$n` parameter.
public enum PostgresValue: Sendable {
    case text(String)
    case bytes(Data)
    case null

    /// An integer, sent as text and typed by the statement.
    public static func int(_ value: Int) -> Self { .text(String(value)) }
}

/// The statements of one ``PostgresConnection/run(_:)`` body: usable only inside it, on the connection's thread.
public struct PostgresSession {
    fileprivate let handle: OpaquePointer

    /// Runs one statement with parameters; returns its rows as text (NULL as nil; `bytea` in PostgreSQL's
    /// `\x` hex form, see ``PostgresSession/bytes(_:)``).
    @discardableResult
    public func query(_ sql: String, _ parameters: [PostgresValue] = []) throws -> [[String?]] {
        var buffers: [UnsafeMutablePointer<CChar>?] = []
        var lengths: [Int32] = []
        var formats: [Int32] = []
        defer { buffers.forEach { free($0) } }
        for parameter in parameters {
            switch parameter {
            case .text(let text):
                buffers.append(strdup(text))
                lengths.append(0)
                formats.append(0)
            case .bytes(let data):
                // malloc'd like strdup's buffers, so that one `free` releases them all.
                let malloced = malloc(max(data.count, 1))?.assumingMemoryBound(to: CChar.self)
                if let malloced {
                    data.copyBytes(to: UnsafeMutableRawPointer(malloced).assumingMemoryBound(to: UInt8.self), count: data.count)
                }
                buffers.append(malloced)
                lengths.append(Int32(data.count))
                formats.append(1)
            case .null:
                buffers.append(nil)
                lengths.append(0)
                formats.append(0)
            }
        }
        let result = buffers.map { UnsafePointer($0) }.withUnsafeBufferPointer { values in
            PQexecParams(handle, sql, Int32(parameters.count), nil, values.baseAddress, lengths, formats, 0)
        }
        defer { PQclear(result) }
        let status = PQresultStatus(result)
        guard status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK else { throw error(result) }
        var rows: [[String?]] = []
        let count = PQntuples(result)
        let fields = PQnfields(result)
        rows.reserveCapacity(Int(count))
        for row in 0..<count {
            rows.append(
                (0..<fields).map { field in
                    PQgetisnull(result, row, field) == 1 ? nil : String(cString: PQgetvalue(result, row, field))
                }
            )
        }
        return rows
    }

    /// Runs statements without parameters, several separated by `;` (a schema version), through libpq's simple
    /// query protocol: the extended one of ``query(_:_:)`` takes one statement only.
    public func script(_ sql: String) throws {
        let result = PQexec(handle, sql)
        defer { PQclear(result) }
        let status = PQresultStatus(result)
        guard status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK else { throw error(result) }
    }

    /// Runs `body` in one transaction: committed when it returns, rolled back when it throws. A failure of the
    /// COMMIT itself is thrown with ``PostgresError/duringCommit`` set: the transaction may or may not have
    /// happened, and the caller must look before it says so.
    public func transaction<T>(_ body: () throws -> T) throws -> T {
        try query("BEGIN")
        let value: T
        do {
            value = try body()
        } catch {
            if PQstatus(handle) == CONNECTION_OK { _ = try? query("ROLLBACK") }
            throw error
        }
        do {
            try query("COMMIT")
        } catch var error as PostgresError {
            error.duringCommit = true
            throw error
        }
        return value
    }

    /// The bytes of a `bytea` column read as text (`\x` followed by hex digits).
    public static func bytes(_ text: String?) -> Data? {
        guard let text else { return nil }
        let digits = Array(text.utf8.dropFirst(2))
        guard text.hasPrefix("\\x"), digits.count % 2 == 0 else { return nil }
        var data = Data(capacity: digits.count / 2)
        var index = 0
        while index < digits.count {
            guard let high = hexValue(digits[index]), let low = hexValue(digits[index + 1]) else { return nil }
            data.append(high << 4 | low)
            index += 2
        }
        return data
    }

    private static func hexValue(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    private func error(_ result: OpaquePointer?) -> PostgresError {
        let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
        var message = String(cString: PQerrorMessage(handle)).trimmingCharacters(in: .whitespacesAndNewlines)
        if message.isEmpty, let result { message = String(cString: PQresultErrorMessage(result)) }
        let lost = PQstatus(handle) != CONNECTION_OK || PostgresError.isConnectionState(state)
        return PostgresError(message: message, sqlState: state, connectionLost: lost)
    }
}

/// A PostgreSQL failure.
public struct PostgresError: Error, Sendable, CustomStringConvertible {
    /// The server's or libpq's message.
    public var message: String
    /// The SQLSTATE code, when the server sent one.
    public var sqlState: String?
    /// The server could not be reached or went away (or is shutting down, starting, or out of connections):
    /// nothing is wrong with the statement, and it can be retried whole once the server is back.
    public var isConnectionLoss: Bool
    /// The failure happened during COMMIT, so whether the transaction happened is unknown.
    public var duringCommit = false

    public init(message: String, sqlState: String? = nil, connectionLost: Bool) {
        self.message = message
        self.sqlState = sqlState
        isConnectionLoss = connectionLost
    }

    /// A serialization failure or deadlock: the transaction was rolled back and can be run again at once.
    public var isTransient: Bool { sqlState == "40001" || sqlState == "40P01" }

    public var description: String { sqlState.map { "\(message) (SQLSTATE \($0))" } ?? message }

    /// Class 08 (connection exception), 57P01–57P03 (shutdown, crash shutdown, cannot connect now), 53300
    /// (too many connections).
    static func isConnectionState(_ state: String?) -> Bool {
        guard let state else { return false }
        return state.hasPrefix("08") || ["57P01", "57P02", "57P03", "53300"].contains(state)
    }
}

/// A thread that runs submitted closures one after another: where the blocking libpq calls go.
final class DedicatedThread: @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [() -> Void] = []
    private var stopping = false

    init(name: String) {
        let thread = Thread { [self] in loop() }
        thread.name = name
        thread.start()
    }

    /// Runs `body` on the thread and returns what it returned (or threw).
    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            submit { continuation.resume(with: Result { try body() }) }
        }
    }

    /// Runs `last` after what was submitted, then ends the thread.
    func stop(after last: @escaping () -> Void) {
        submit(last)
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
    }

    private func submit(_ job: @escaping () -> Void) {
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    private func loop() {
        while true {
            condition.lock()
            while jobs.isEmpty && !stopping { condition.wait() }
            if jobs.isEmpty {
                condition.unlock()
                return
            }
            let job = jobs.removeFirst()
            condition.unlock()
            job()
        }
    }
}
