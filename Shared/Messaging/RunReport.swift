public import Foundation

/// Algorithm → scheduler, on the reliable `reports` channel: what became of a run request.
///
/// The scheduler re-sends a run request until it hears `accepted`, and learns of completion from
/// `finished` or `failed` (never from the lossy status bus).
public struct RunReport: WireMessage, Equatable {
    public static let kind = "report"

    /// What happened.
    public enum State: String, Codable, Sendable {
        /// The algorithm has recorded the request durably and will run it (or is running it).
        case accepted
        /// The run succeeded and its result is handed off.
        case finished
        /// The run failed after its retries.
        case failed
    }

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

    /// Creates a report.
    public init(runID: String, job: String, state: State, detail: String? = nil, time: Date = Date()) {
        self.runID = runID
        self.job = job
        self.state = state
        self.detail = detail
        self.time = time
    }

    enum CodingKeys: String, CodingKey {
        case runID = "runId", job, state, detail, time
    }

    public func validate() throws(ProtocolError) {
        try RunID.validate(runID, field: "runId")
        try JobName.validate(job, field: "job")
    }
}
