import Foundation
import GRDB
import Persistence

/// A value bound to a history statement's `?`, or read from a row.
enum HistoryValue: Sendable {
    case null
    case int(Int64)
    case double(Double)
    case text(String)
}

/// What can be bound to a history statement: integers, doubles, text, and their optionals (nil binds NULL).
protocol HistoryArgument: Sendable {
    var historyValue: HistoryValue { get }
}

extension Int: HistoryArgument { var historyValue: HistoryValue { .int(Int64(self)) } }
extension Int64: HistoryArgument { var historyValue: HistoryValue { .int(self) } }
extension Double: HistoryArgument { var historyValue: HistoryValue { .double(self) } }
extension String: HistoryArgument { var historyValue: HistoryValue { .text(self) } }
extension Optional: HistoryArgument where Wrapped: HistoryArgument {
    var historyValue: HistoryValue { map(\.historyValue) ?? .null }
}

/// One row of a history query, its columns in the order the query names them. PostgreSQL hands every value over
/// as text; the accessors read either form.
struct HistoryRow {
    let values: [HistoryValue]

    func text(_ column: Int) -> String? {
        switch values[column] {
        case .null: nil
        case .int(let value): String(value)
        case .double(let value): String(value)
        case .text(let value): value
        }
    }

    func int(_ column: Int) -> Int64? {
        switch values[column] {
        case .null: nil
        case .int(let value): value
        case .double(let value): value.isFinite ? Int64(value) : nil
        case .text(let value): Int64(value) ?? Double(value).flatMap { $0.isFinite ? Int64($0) : nil }
        }
    }

    func double(_ column: Int) -> Double? {
        switch values[column] {
        case .null: nil
        case .int(let value): Double(value)
        case .double(let value): value
        case .text(let value): Double(value)
        }
    }

    func count(_ column: Int) -> Int { int(column).map { Int(clamping: $0) } ?? 0 }
}

/// The statements of one history transaction, on either backend: SQL written once, with `?` for its arguments and
/// ``greatest`` for the larger of two values (SQLite's two-argument `MAX`, PostgreSQL's `GREATEST`).
protocol HistorySQL {
    var greatest: String { get }
    func execute(_ sql: String, _ arguments: [any HistoryArgument]) throws
    func rows(_ sql: String, _ arguments: [any HistoryArgument]) throws -> [HistoryRow]
}

extension HistorySQL {
    func row(_ sql: String, _ arguments: [any HistoryArgument]) throws -> HistoryRow? { try rows(sql, arguments).first }
}

/// The history in SQLite (`<data_dir>/logger/history.sqlite`): statements from the connection's cache.
struct SQLiteHistorySQL: HistorySQL {
    let db: Database
    var greatest: String { "MAX" }

    func execute(_ sql: String, _ arguments: [any HistoryArgument]) throws {
        try db.cachedStatement(sql: sql).execute(arguments: Self.bind(arguments))
    }

    func rows(_ sql: String, _ arguments: [any HistoryArgument]) throws -> [HistoryRow] {
        let cursor = try Row.fetchCursor(db.cachedStatement(sql: sql), arguments: Self.bind(arguments))
        var rows: [HistoryRow] = []
        while let row = try cursor.next() {
            rows.append(
                HistoryRow(
                    values: row.databaseValues.map { value in
                        switch value.storage {
                        case .null: .null
                        case .int64(let int): .int(int)
                        case .double(let double): .double(double)
                        case .string(let string): .text(string)
                        case .blob(let data): .text(String(decoding: data, as: UTF8.self))
                        }
                    }
                )
            )
        }
        return rows
    }

    static func bind(_ arguments: [any HistoryArgument]) -> StatementArguments {
        StatementArguments(
            arguments.map { argument -> (any DatabaseValueConvertible)? in
                switch argument.historyValue {
                case .null: nil
                case .int(let value): value
                case .double(let value): value
                case .text(let value): value
                }
            }
        )
    }
}

/// The history in PostgreSQL (the deployment's `store.url`): `?` become `$1`, `$2`, ... (no statement of the
/// history has a `?` anywhere else).
struct PostgresHistorySQL: HistorySQL {
    let session: PostgresSession
    var greatest: String { "GREATEST" }

    func execute(_ sql: String, _ arguments: [any HistoryArgument]) throws {
        try session.query(Self.numbered(sql), Self.bind(arguments))
    }

    func rows(_ sql: String, _ arguments: [any HistoryArgument]) throws -> [HistoryRow] {
        try session.query(Self.numbered(sql), Self.bind(arguments)).map { row in
            HistoryRow(values: row.map { $0.map(HistoryValue.text) ?? .null })
        }
    }

    static func numbered(_ sql: String) -> String {
        var result = ""
        result.reserveCapacity(sql.utf8.count + 8)
        var next = 1
        for character in sql {
            if character == "?" {
                result += "$\(next)"
                next += 1
            } else {
                result.append(character)
            }
        }
        return result
    }

    static func bind(_ arguments: [any HistoryArgument]) -> [PostgresValue] {
        arguments.map { argument in
            switch argument.historyValue {
            case .null: .null
            case .int(let value): .text(String(value))
            case .double(let value): .text(value.isFinite ? String(value) : "NaN")
            case .text(let value): .text(value)
            }
        }
    }

    /// The history's tables in PostgreSQL: those of SQLite's `history-v2`, with PostgreSQL's types.
    static let migrations = PostgresMigrations(
        table: "baton_history_migrations",
        lockKey: 0x6261_746f_6e02,
        versions: [
            (
                1, "runs, stages and tasks",
                """
                CREATE TABLE history_runs (
                    run TEXT PRIMARY KEY NOT NULL,
                    job TEXT NOT NULL,
                    slot_ms BIGINT NOT NULL,
                    trigger TEXT,
                    state TEXT NOT NULL,
                    scheduled_ms BIGINT,
                    lateness_ms DOUBLE PRECISION,
                    accepted_ms BIGINT,
                    started_ms BIGINT,
                    finished_ms BIGINT,
                    ended_ms BIGINT,
                    attempts INTEGER NOT NULL DEFAULT 0,
                    duration_ms DOUBLE PRECISION,
                    size BIGINT,
                    parts INTEGER,
                    dead INTEGER NOT NULL DEFAULT 0,
                    error TEXT,
                    updated_ms BIGINT NOT NULL
                );
                CREATE INDEX history_runs_job_slot ON history_runs (job, slot_ms);
                CREATE INDEX history_runs_slot ON history_runs (slot_ms);
                CREATE INDEX history_runs_updated ON history_runs (updated_ms);
                CREATE TABLE history_stages (
                    run TEXT NOT NULL,
                    stage INTEGER NOT NULL,
                    name TEXT,
                    parts INTEGER,
                    ready_ms BIGINT,
                    done_ms BIGINT,
                    succeeded INTEGER NOT NULL DEFAULT 0,
                    failed INTEGER NOT NULL DEFAULT 0,
                    dead INTEGER NOT NULL DEFAULT 0,
                    PRIMARY KEY (run, stage)
                );
                CREATE TABLE history_tasks (
                    run TEXT NOT NULL,
                    stage INTEGER NOT NULL,
                    part INTEGER NOT NULL,
                    state TEXT NOT NULL,
                    attempts INTEGER NOT NULL DEFAULT 0,
                    processor TEXT,
                    error TEXT,
                    started_ms BIGINT,
                    ended_ms BIGINT,
                    PRIMARY KEY (run, stage, part)
                );
                """
            )
        ]
    )
}
