public import Foundation

/// Algorithm → scheduler, on the reliable `reports` channel: what became of a run request.
///
/// The scheduler re-sends a run request until it hears `accepted`, and learns of completion from
/// `finished`, `failed` or `cancelled` (never from the lossy status bus). A request the algorithm already
/// has is answered with a report of its current state, which is how the scheduler reconciles runs whose
/// reports it missed.
public struct RunReport: WireMessage, Equatable {
    public static let kind = "report"

    /// What the algorithm's run ledger says of the run (see ``RunState``).
    public typealias State = RunState

    /// The run.
    public var runID: String
    /// The job.
    public var job: String
    /// The new state.
    public var state: State
    /// A reason, for failures.
    public var detail: String?
    /// When it happened.
    public var time: Date
    /// In an answer to a request (a first delivery, a re-send, or the scheduler asking about the run): that
    /// request's `firedAt`. The scheduler stamps a question with the time it asks, so an answer with `askedAt`
    /// at or after a moment tells the run's state as it was after that moment (reports on one connection
    /// arrive in order).
    public var askedAt: Date?

    /// Creates a report.
    public init(runID: String, job: String, state: State, detail: String? = nil, time: Date = Date(), askedAt: Date? = nil) {
        self.askedAt = askedAt
        self.runID = runID
        self.job = job
        self.state = state
        self.detail = detail
        self.time = time
    }

    enum CodingKeys: String, CodingKey {
        case runID = "runId", job, state, detail, time, askedAt
    }

    public func validate() throws(ProtocolError) {
        try JobName.validate(job, field: "job")
        try RunID.validate(runID, field: "runId", job: job)
    }
}
