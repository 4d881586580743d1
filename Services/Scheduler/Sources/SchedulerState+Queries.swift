public import Foundation
import GRDB
public import Messaging
import Persistence

// What the scheduler's parts ask its state: what to resend or ask about, what the overlap policy counts, the
// jobs' history for `baton jobs`, and the fires `baton audit` gets through the `control` socket.
extension SchedulerState {
    /// Requests not yet accepted whose last send is older than `before`: to send again.
    public func unaccepted(sentBefore before: Date) async throws -> [RunRequest] {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: "SELECT * FROM fires WHERE state = \(Self.fired) AND last_sent <= ? ORDER BY logical_time",
                arguments: [before.timeIntervalSince1970]
            ).map { Self.fire($0).request }
        }
    }

    /// When the oldest unaccepted request was last sent, if any is waiting.
    public func oldestUnacceptedSend() async throws -> Date? {
        try await pool.read { db in
            try Double.fetchOne(db, sql: "SELECT MIN(last_sent) FROM fires WHERE state = \(Self.fired)").map {
                Date(timeIntervalSince1970: $0)
            }
        }
    }

    /// Runs the algorithm has (accepted or running) that it has not spoken of, nor been asked about, since
    /// `before`: to ask again. A report lost on the way (the scheduler killed as it arrived) is found this way.
    public func unsettled(quietSince before: Date) async throws -> [Fire] {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT * FROM fires WHERE state IN (\(Self.atTheAlgorithm))
                    AND last_sent <= ? AND COALESCE(last_heard, 0) <= ? ORDER BY logical_time
                    """,
                arguments: [before.timeIntervalSince1970, before.timeIntervalSince1970]
            ).map(Self.fire)
        }
    }

    /// Whether any run was fired and has not ended (sent, accepted or running): with none, there is nothing to
    /// send again, ask about or cancel until the next fire.
    public func anyInFlight() async throws -> Bool {
        try await pool.read { db in
            try Bool.fetchOne(db, sql: "SELECT EXISTS(SELECT 1 FROM fires WHERE state IN (\(Self.inFlight)))") ?? false
        }
    }

    /// Runs a user asked to cancel that have not ended yet: the cancel is sent until they do.
    public func cancelsPending() async throws -> [Fire] {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: "SELECT * FROM fires WHERE cancel_requested = 1 AND state IN (\(Self.inFlight)) ORDER BY logical_time"
            ).map(Self.fire)
        }
    }

    /// Live runs of a job that were fired and have not ended (sent, accepted or running): what the overlap
    /// policy counts. Backfilled runs have their own lane at the algorithm and are never counted.
    public func inFlight(job: String) async throws -> [Fire] {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT * FROM fires WHERE job = ? AND state IN (\(Self.inFlight)) AND trigger != 'backfill'
                    ORDER BY logical_time
                    """,
                arguments: [job]
            ).map(Self.fire)
        }
    }

    /// Every run of a job that has not ended (queued, sent, accepted or running), live or backfilled.
    public func unfinished(job: String) async throws -> [Fire] {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: "SELECT * FROM fires WHERE job = ? AND state IN (\(Self.unfinished)) ORDER BY logical_time",
                arguments: [job]
            ).map(Self.fire)
        }
    }

    /// Runs of a job not started yet: queued at the scheduler, or sent and waiting at the algorithm.
    public func waiting(job: String) async throws -> [Fire] {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: "SELECT * FROM fires WHERE job = ? AND state IN (\(Self.notStarted)) ORDER BY logical_time",
                arguments: [job]
            ).map(Self.fire)
        }
    }

    /// The oldest queued fire of a job, if any.
    public func oldestQueued(job: String) async throws -> Fire? {
        try await pool.read { db in
            try Row.fetchOne(
                db,
                sql: "SELECT * FROM fires WHERE job = ? AND state = \(Self.queued) ORDER BY logical_time LIMIT 1",
                arguments: [job]
            ).map(Self.fire)
        }
    }

    /// The durations (seconds) of a job's last `limit` finished runs, newest first.
    public func recentDurations(job: String, limit: Int = 10) async throws -> [Double] {
        try await pool.read { db in
            try Double.fetchAll(
                db,
                sql: """
                    SELECT ended_at - accepted_at FROM fires WHERE job = ? AND state = \(Self.finished)
                    AND accepted_at IS NOT NULL AND ended_at IS NOT NULL ORDER BY logical_time DESC LIMIT ?
                    """,
                arguments: [job, limit]
            )
        }
    }

    /// The latest run of a job that ended (finished, failed or cancelled).
    public func lastEnded(job: String) async throws -> Fire? {
        try await pool.read { db in
            try Row.fetchOne(
                db,
                sql:
                    "SELECT * FROM fires WHERE job = ? AND state IN (\(Self.ended)) ORDER BY logical_time DESC LIMIT 1",
                arguments: [job]
            ).map(Self.fire)
        }
    }

    /// Whether a job is paused.
    public func isPaused(job: String) async throws -> Bool {
        try await pool.read { db in
            try Bool.fetchOne(db, sql: "SELECT paused FROM jobs WHERE name = ?", arguments: [job]) ?? false
        }
    }

    /// Whether a run id was recorded (in any state).
    public func contains(runID: String) async throws -> Bool {
        try await pool.read { db in
            try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM fires WHERE run_id = ?)", arguments: [runID]) ?? false
        }
    }

    /// The state of a run id, if recorded.
    public func state(runID: String) async throws -> FireState? {
        try await fire(runID)?.state
    }

    /// One fire.
    public func fire(_ runID: String) async throws -> Fire? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM fires WHERE run_id = ?", arguments: [runID]).map(Self.fire)
        }
    }

    /// Every fire of a job (or all), oldest first.
    public func fires(job: String? = nil) async throws -> [Fire] {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: "SELECT * FROM fires WHERE (? IS NULL OR job = ?) ORDER BY logical_time",
                arguments: [job, job]
            ).map(Self.fire)
        }
    }

    // The sets of states the queries select, as SQL lists taken from the machine.
    static let fired = FireState.sqlList([.fired])
    static let queued = FireState.sqlList([.queued])
    static let finished = FireState.sqlList([.finished])
    static let atTheAlgorithm = FireState.sqlList([.accepted, .running])
    static let inFlight = FireState.sqlList(FireState.allCases.filter(\.isInFlight))
    static let unfinished = FireState.sqlList(FireState.allCases.filter { !$0.isTerminal })
    static let notStarted = FireState.sqlList([.queued, .fired, .accepted])
    static let ended = FireState.sqlList([.finished, .failed, .cancelled])

    static func fire(_ row: Row) -> Fire {
        Fire(
            request: RunRequest(row: row),
            state: FireState.fromDatabaseValue(row["state"] as DatabaseValue) ?? .fired,
            sends: row["sends"],
            detail: row["detail"],
            duration: (row["ended_at"] as Double?).flatMap { end in (row["accepted_at"] as Double?).map { end - $0 } },
            cancelRequested: (row["cancel_requested"] as Int) != 0,
            cancelQueuedOnly: (row["cancel_requested"] as Int) == 2,
            lastHeard: (row["last_heard"] as Double?).map { Date(timeIntervalSince1970: $0) },
            lastAnswer: (row["last_answer"] as Double?).map { Date(timeIntervalSince1970: $0) }
        )
    }
}
