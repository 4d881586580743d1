import Foundation
public import ServiceKit

/// Which jobs are paused, and how to wake a job's timer when that changes. Shared by the timers and the
/// control server; the paused flags persist in the scheduler's state.
public actor JobControl {
    /// How a job was resumed.
    public struct Resume: Sendable {
        /// Apply the misfire policy to the slots missed while paused (otherwise they are skipped).
        public var catchUp: Bool
    }

    private let ledger: (any PausedFlagStore)?
    private var paused: [String: Bool] = [:]
    private var resumes: [String: Resume] = [:]
    private var doorbells: [String: Doorbell] = [:]

    /// Creates the control state.
    /// - Parameter ledger: Where paused flags persist; `nil` keeps them in memory (tests).
    public init(ledger: SchedulerState?) {
        self.ledger = ledger
    }

    /// Creates the control state over any store of paused flags.
    /// - Parameter flags: Where paused flags persist; `nil` keeps them in memory.
    init(flags: (any PausedFlagStore)?) {
        self.ledger = flags
    }

    /// The doorbell that wakes a job's timer.
    public func doorbell(_ job: String) -> Doorbell {
        if let doorbell = doorbells[job] { return doorbell }
        let doorbell = Doorbell()
        doorbells[job] = doorbell
        return doorbell
    }

    /// Whether a job is paused (read from the state the first time).
    public func isPaused(_ job: String) async -> Bool {
        if let known = paused[job] { return known }
        let stored = (try? await ledger?.isPaused(job: job)) ?? false
        // A pause or resume may have come in while the state was read (the actor is re-entered at the
        // await): it is newer than what was read and must not be overwritten by it.
        if let known = paused[job] { return known }
        paused[job] = stored
        return stored
    }

    /// Pauses a job: its timer stops firing until it is resumed.
    public func pause(_ job: String) async throws {
        try await ledger?.setPaused(job: job, true)
        paused[job] = true
        doorbell(job).ring()
    }

    /// Resumes a job.
    public func resume(_ job: String, catchUp: Bool) async throws {
        try await ledger?.setPaused(job: job, false)
        paused[job] = false
        resumes[job] = Resume(catchUp: catchUp)
        doorbell(job).ring()
    }

    /// Whether a resume is waiting to be handled.
    public func hasResume(_ job: String) -> Bool {
        resumes[job] != nil
    }

    /// How the job was last resumed, once.
    public func takeResume(_ job: String) -> Resume? {
        resumes.removeValue(forKey: job)
    }
}

/// Where paused flags persist: the scheduler's state (a seam so tests can hold a read open).
protocol PausedFlagStore: Sendable {
    func isPaused(job: String) async throws -> Bool
    func setPaused(job: String, _ paused: Bool) async throws
}

extension SchedulerState: PausedFlagStore {}
