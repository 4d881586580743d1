import Foundation
public import GRDB
public import Messaging

// The lifecycle states are stored as their text values (the columns and CHECK constraints the stores have
// always had), read and written as the enums: no store compares a state as a string.
extension DeliveryState: DatabaseValueConvertible {}
extension RunState: DatabaseValueConvertible {}
extension FireState: DatabaseValueConvertible {}

extension RawRepresentable where RawValue == String {
    /// States as a SQL list (`'pending', 'sent'`), for `state IN (…)`: the values come from the enum, never
    /// from input, so they are safe to inline, and an index on `state` still serves the query.
    public static func sqlList(_ states: some Sequence<Self>) -> String {
        states.map { "'\($0.rawValue)'" }.joined(separator: ", ")
    }
}

extension RunRequest {
    /// The request stored in a row with `run_id`, `job`, `logical_time`, `fired_at` and `trigger` columns
    /// (the algorithm's run ledger and the scheduler's fires keep requests alike).
    public init(row: Row) {
        let logical: String = row["logical_time"]
        let fired: String = row["fired_at"]
        let trigger: String = row["trigger"]
        self.init(
            runID: row["run_id"],
            job: row["job"],
            logicalTime: Timestamp.parse(logical) ?? Date(timeIntervalSince1970: 0),
            firedAt: Timestamp.parse(fired) ?? Date(timeIntervalSince1970: 0),
            trigger: RunRequest.Trigger(rawValue: trigger) ?? .schedule
        )
    }
}
