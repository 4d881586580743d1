import Foundation
import GRDB
import Messaging

/// Fills a store with history fast: one run made through the project's own types (the template) is copied
/// under new run ids and logical times by SQL, many thousand rows per transaction, into every table of the
/// file that has a `run_id` column. Each copy is the template's rows byte for byte except for the run id and
/// the logical time, so the tables, their indexes and the row sizes are what the same number of real runs
/// would leave behind; only the time it takes to make them differs.
enum ScaleSeeding {
    /// The run id and logical time of copy `index`: one a minute from `base`, as a minutely job's are.
    static func sqlTimestamp(base: Int64) -> String {
        // Timestamp.format's `YYYY-MM-DDTHH:MM:SS.mmmZ` for whole seconds (checked against it by ``check``).
        "strftime('%Y-%m-%dT%H:%M:%fZ', \(base) + n.i * 60, 'unixepoch')"
    }

    /// Copies run `template`'s rows in every table of `path` with a `run_id` column as runs `index` in `range`
    /// of `job`, one a minute from `base` (seconds since 1970), `batch` copies per transaction.
    static func copy(path: String, template: String, job: String, base: Int64, range: Range<Int>, batch: Int = 50_000) throws {
        guard !range.isEmpty else { return }
        let queue = try DatabaseQueue(path: path)
        let tables = try queue.read { db in
            try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
                .compactMap { table -> (String, [(name: String, autoKey: Bool)])? in
                    let columns = try Row.fetchAll(db, sql: "PRAGMA table_info(\(table))").map { row in
                        (name: row["name"] as String, autoKey: (row["pk"] as Int) == 1 && (row["type"] as String).uppercased() == "INTEGER")
                    }
                    return columns.contains { $0.name == "run_id" } ? (table, columns) : nil
                }
        }
        let time = sqlTimestamp(base: base)
        for start in stride(from: range.lowerBound, to: range.upperBound, by: batch) {
            let end = min(start + batch, range.upperBound)
            try queue.inTransaction(.immediate) { db in
                for (table, columns) in tables {
                    let kept = columns.filter { !$0.autoKey }
                    let values = kept.map { column in
                        switch column.name {
                        case "run_id": "'\(job)@' || \(time)"
                        case "logical_time": time
                        case "path": "t.path || '.' || n.i"
                        default: "t.\(column.name)"
                        }
                    }
                    try db.execute(
                        sql: """
                            WITH RECURSIVE n(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?)
                            INSERT OR IGNORE INTO \(table) (\(kept.map(\.name).joined(separator: ", ")))
                            SELECT \(values.joined(separator: ", ")) FROM n, (SELECT * FROM \(table) WHERE run_id = ?) AS t
                            """,
                        arguments: [start, end, template]
                    )
                }
                return .commit
            }
        }
        // As a deployment's outbox is between its commits: the copies in the database file, not in a WAL of
        // hundreds of megabytes that every read would have to look through.
        try queue.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
    }

    /// The run id copy `index` gets, as the scheduler makes it.
    static func runID(job: String, base: Int64, index: Int) -> String {
        RunID.make(job: job, logicalTime: time(base: base, index: index))
    }

    static func time(base: Int64, index: Int) -> Date { Date(timeIntervalSince1970: TimeInterval(base + Int64(index) * 60)) }
}
