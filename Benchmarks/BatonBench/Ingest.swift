import Foundation
import GRDBSQLite
import Messaging
import ProcessorService
import TestSupport

extension Scenarios {
    /// The built-in store taking one JSON-lines payload, next to SQLite's own insert of the same rows.
    struct Ingest: Codable {
        var label: String
        var bytes: Int
        var lines: Int
        /// `ResultStore.store` into a fresh SQLite store, as a processor opens it (WAL, synchronous FULL), in ms.
        var storeMs: Sample?
        /// Only the check that every line is one JSON value (``JSONLines``), in ms.
        var validateMs: Sample?
        /// SQLite alone: the same rows into the same tables of a fresh file with the same settings, one
        /// prepared statement, one transaction, the lines' bounds known beforehand, in ms.
        var baselineMs: Sample?
        /// Of SQLite alone, its COMMIT: the WAL written and synced (and checkpointed, when it grew past 1,000 pages).
        var baselineCommitMs: Sample?
        /// SQLite alone writing the same bytes as one blob in the part's row (what the disk allows through SQLite),
        /// in ms.
        var blobMs: Sample?
        var loadAverage: Double?

        var storeMBps: Double? { storeMs.map { Double(bytes) / 1e3 / $0.p50 } }
        var baselineMBps: Double? { baselineMs.map { Double(bytes) / 1e3 / $0.p50 } }
        var blobMBps: Double? { blobMs.map { Double(bytes) / 1e3 / $0.p50 } }
    }

    /// The checksum both sides compute (``SHA256``, libcrypto) over `size` bytes, next to `sha256sum` of the
    /// same bytes in a file (read from the page cache), in ms.
    struct Checksum: Codable {
        var label: String
        var bytes: Int
        var sha256Ms: Sample?
        var sha256sumMs: Sample?
    }

    // MARK: Store ingest

    /// Stores a payload of `size` bytes of JSON lines of `lineSize` bytes (deterministic content), `runs` times,
    /// each into a fresh store; the same for SQLite alone.
    func ingest(label: String, size: Int, lineSize: Int, runs: Int) async throws -> Ingest {
        let payload = Self.jsonLines(size: size, lineSize: lineSize)
        guard let lines = JSONLines.lines(in: payload) else { throw BenchError("the ingest payload is not JSON lines") }
        let header = Fixtures.header(payload, run: "ingest@1")
        var store: [Double] = []
        var validate: [Double] = []
        var baseline: [Double] = []
        var commits: [Double] = []
        var blobs: [Double] = []
        for run in 0..<runs {
            let path = "\(root)/ingest-\(label)-\(run).sqlite"
            let opened = try await ResultStore(path: path)
            let start = monotonicNanos()
            let outcome = try await opened.store(header, payload: payload, processor: "bench")
            store.append(Double(monotonicNanos() - start) / 1e6)
            guard outcome == .stored(records: lines.count) else { throw BenchError("ingest stored \(outcome), not \(lines.count) records") }

            let checked = monotonicNanos()
            guard JSONLines.lines(in: payload)?.count == lines.count else { throw BenchError("the ingest payload changed") }
            validate.append(Double(monotonicNanos() - checked) / 1e6)

            let alone = try Self.sqliteIngest(path: "\(root)/ingest-\(label)-\(run)-baseline.sqlite", payload: payload, lines: lines)
            baseline.append(alone.total)
            commits.append(alone.commit)
            blobs.append(try Self.sqliteIngest(path: "\(root)/ingest-\(label)-\(run)-blob.sqlite", payload: payload, lines: nil).total)
        }
        var load = [0.0, 0.0, 0.0]
        let loads = getloadavg(&load, 3)
        return Ingest(
            label: label,
            bytes: payload.count,
            lines: lines.count,
            storeMs: Sample(store),
            validateMs: Sample(validate),
            baselineMs: Sample(baseline),
            baselineCommitMs: Sample(commits),
            blobMs: Sample(blobs),
            loadAverage: loads > 0 ? load[0] : nil
        )
    }

    /// JSON lines of `lineSize` bytes each (newline included), `size / lineSize` of them: objects with a
    /// number, a float, a nested array and a string padded to length, with an escape and a non-ASCII letter
    /// in each, all from a fixed seed.
    static func jsonLines(size: Int, lineSize: Int) -> Data {
        var random: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            random = random &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return random >> 33
        }
        let letters = Array("abcdefghijklmnopqrstuvwxyz0123456789 ".utf8)
        var data = Data(capacity: size)
        for sequence in 0..<max(1, size / lineSize) {
            var line = Array(
                "{\"seq\":\(sequence),\"value\":\(next() % 100_000).\(next() % 1000),\"tags\":[\(next() % 10),true,null],\"text\":\"é\\\""
                    .utf8
            )
            let padding = max(0, lineSize - line.count - 3)
            for _ in 0..<padding { line.append(letters[Int(next() % UInt64(letters.count))]) }
            line += Array("\"}\n".utf8)
            data.append(contentsOf: line)
        }
        return data
    }

    /// SQLite's own rate for the same rows: a fresh file opened as Baton's stores are (WAL, synchronous FULL,
    /// foreign keys on), the store's two tables, the part's row and one row per line through one prepared
    /// statement in one transaction, bound from the payload's buffer; without `lines`, the payload as the part's
    /// blob instead. Returns the ms from BEGIN to the end of COMMIT, and of them the COMMIT's.
    static func sqliteIngest(path: String, payload: Data, lines: [Range<Int>]?) throws -> (total: Double, commit: Double) {
        var connection: OpaquePointer?
        guard sqlite3_open(path, &connection) == SQLITE_OK, let db = connection else { throw BenchError("cannot open \(path)") }
        defer { sqlite3_close_v2(db) }
        func exec(_ sql: String) throws {
            guard sqlite3_exec(db, sql, nil, nil, nil) == SQLITE_OK else { throw BenchError(String(cString: sqlite3_errmsg(db))) }
        }
        try exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON")
        try exec(
            """
            CREATE TABLE results (run_id TEXT NOT NULL, part INTEGER NOT NULL, job TEXT NOT NULL, logical_time TEXT NOT NULL,
                size INTEGER NOT NULL, sha256 TEXT NOT NULL, format TEXT NOT NULL, blob BLOB, processor TEXT NOT NULL,
                stored_at TEXT NOT NULL, stage TEXT, PRIMARY KEY (run_id, part));
            CREATE TABLE records (run_id TEXT NOT NULL, part INTEGER NOT NULL, line INTEGER NOT NULL, data TEXT NOT NULL,
                PRIMARY KEY (run_id, part, line), FOREIGN KEY (run_id, part) REFERENCES results (run_id, part) ON DELETE CASCADE);
            """
        )
        var prepared: OpaquePointer?
        guard sqlite3_prepare_v2(db, "INSERT INTO records VALUES ('ingest@1', 0, ?, ?)", -1, &prepared, nil) == SQLITE_OK,
            let statement = prepared
        else { throw BenchError(String(cString: sqlite3_errmsg(db))) }
        defer { sqlite3_finalize(statement) }
        guard let lines else {
            var blobPrepared: OpaquePointer?
            let sql =
                "INSERT INTO results VALUES ('ingest@1', 0, 'ingest', '1970-01-01T00:01:00.000Z', \(payload.count), '', 'blob', ?, 'bench', '', NULL)"
            guard sqlite3_prepare_v2(db, sql, -1, &blobPrepared, nil) == SQLITE_OK, let insert = blobPrepared else {
                throw BenchError(String(cString: sqlite3_errmsg(db)))
            }
            defer { sqlite3_finalize(insert) }
            let start = monotonicNanos()
            try exec("BEGIN IMMEDIATE")
            try payload.withUnsafeBytes { buffer in
                sqlite3_bind_blob64(insert, 1, buffer.baseAddress, sqlite3_uint64(buffer.count), nil)
                guard sqlite3_step(insert) == SQLITE_DONE else { throw BenchError(String(cString: sqlite3_errmsg(db))) }
            }
            let committing = monotonicNanos()
            try exec("COMMIT")
            let end = monotonicNanos()
            return (Double(end - start) / 1e6, Double(end - committing) / 1e6)
        }
        let start = monotonicNanos()
        try exec("BEGIN IMMEDIATE")
        try exec(
            "INSERT INTO results VALUES ('ingest@1', 0, 'ingest', '1970-01-01T00:01:00.000Z', \(payload.count), '', 'jsonl', NULL, 'bench', '', NULL)"
        )
        try payload.withUnsafeBytes { buffer in
            guard let base = buffer.baseAddress?.assumingMemoryBound(to: CChar.self) else { return }
            for (index, line) in lines.enumerated() {
                sqlite3_bind_int64(statement, 1, Int64(index))
                sqlite3_bind_text64(statement, 2, base + line.lowerBound, sqlite3_uint64(line.count), nil, UInt8(SQLITE_UTF8))
                guard sqlite3_step(statement) == SQLITE_DONE else { throw BenchError(String(cString: sqlite3_errmsg(db))) }
                sqlite3_reset(statement)
            }
        }
        let committing = monotonicNanos()
        try exec("COMMIT")
        let end = monotonicNanos()
        return (Double(end - start) / 1e6, Double(end - committing) / 1e6)
    }

    // MARK: Checksum

    /// ``SHA256`` over `size` bytes, `runs` times, and `sha256sum` over the same bytes in a file as many times.
    func checksum(label: String, size: Int, runs: Int) throws -> Checksum {
        var data = Data(count: size)
        data.withUnsafeMutableBytes { buffer in
            for index in buffer.indices { buffer[index] = UInt8(truncatingIfNeeded: index &* 2_654_435_761 >> 13) }
        }
        let file = "\(root)/checksum-\(label)"
        try data.write(to: URL(fileURLWithPath: file))
        defer { try? FileManager.default.removeItem(atPath: file) }
        let expected = SHA256.hex(of: data)
        var ours: [Double] = []
        var tool: [Double] = []
        for _ in 0..<runs {
            let start = monotonicNanos()
            guard SHA256.hex(of: data) == expected else { throw BenchError("SHA256 changed its mind") }
            ours.append(Double(monotonicNanos() - start) / 1e6)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
            process.arguments = [file]
            let output = Pipe()
            process.standardOutput = output
            let launched = monotonicNanos()
            try process.run()
            let printed = output.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            tool.append(Double(monotonicNanos() - launched) / 1e6)
            guard String(decoding: printed, as: UTF8.self).hasPrefix(expected) else { throw BenchError("sha256sum disagrees with SHA256") }
        }
        return Checksum(label: label, bytes: size, sha256Ms: Sample(ours), sha256sumMs: Sample(tool))
    }
}

/// A benchmark that could not measure what it meant to.
struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

extension Report {
    /// ≥ 100 MB/s of JSON lines into the built-in store, for every payload measured (issue 15).
    func ingestTargets() -> [Target] {
        guard !ingest.isEmpty else { return [] }
        let rates = ingest.map { $0.storeMBps ?? 0 }
        return [
            .init(
                name: "store ingest",
                target: "≥ 100 MB/s of JSON lines (1 MiB ≤ 10 ms)",
                measured: zip(ingest, rates).map { "\($0.label) \(formatted($1, 0)) MB/s" }.joined(separator: ", "),
                met: rates.allSatisfy { $0 >= 100 }
            )
        ]
    }

    func ingestTable() -> [String] {
        var lines: [String] = []
        if !ingest.isEmpty {
            lines.append(
                [
                    "store ingest", "lines", "store p50 ms", "store MB/s", "of it JSON check p50 ms", "SQLite alone p50 ms",
                    "of it COMMIT p50 ms", "SQLite alone MB/s", "ratio", "SQLite one blob p50 ms", "SQLite one blob MB/s", "load",
                ].joined(separator: " | ")
            )
            for entry in ingest {
                func cell(_ sample: Sample?) -> String { sample.map { formatted($0.p50, 2) } ?? "-" }
                func rate(_ value: Double?) -> String { value.map { formatted($0, 0) } ?? "-" }
                let ratio: String = both(entry.storeMs, entry.baselineMs).map { formatted($0.0.p50 / $0.1.p50, 2) } ?? "-"
                let load: String = entry.loadAverage.map { formatted($0, 1) } ?? "-"
                let cells: [String] = [
                    entry.label, "\(entry.lines)", cell(entry.storeMs), rate(entry.storeMBps), cell(entry.validateMs),
                    cell(entry.baselineMs), cell(entry.baselineCommitMs), rate(entry.baselineMBps), ratio, cell(entry.blobMs),
                    rate(entry.blobMBps), load,
                ]
                lines.append(cells.joined(separator: " | "))
            }
            lines.append("")
        }
        if !checksums.isEmpty {
            lines.append(["checksum", "SHA256 p50 ms", "SHA256 MB/s", "sha256sum p50 ms (process, file)"].joined(separator: " | "))
            for entry in checksums {
                let ours: String = entry.sha256Ms.map { formatted($0.p50, 2) } ?? "-"
                let rate: String = entry.sha256Ms.map { formatted(Double(entry.bytes) / 1e3 / $0.p50, 0) } ?? "-"
                let tool: String = entry.sha256sumMs.map { formatted($0.p50, 2) } ?? "-"
                lines.append([entry.label, ours, rate, tool].joined(separator: " | "))
            }
            lines.append("")
        }
        return lines
    }
}

/// Both values, or nil.
private func both<A, B>(_ a: A?, _ b: B?) -> (A, B)? {
    guard let a, let b else { return nil }
    return (a, b)
}
