import Testing

@testable import SchedulerService

/// Paused flags whose reads wait until the test lets them answer, so a pause can land mid-read.
private actor GatedFlags: PausedFlagStore {
    private var flags: [String: Bool] = [:]
    private var gate: CheckedContinuation<Void, Never>?
    private var readStarted: CheckedContinuation<Void, Never>?
    private var started = false
    private var released = false

    func isPaused(job: String) async throws -> Bool {
        // What was stored when the read began: a write that lands meanwhile is not seen by this read.
        let stored = flags[job] ?? false
        started = true
        readStarted?.resume()
        readStarted = nil
        if !released { await withCheckedContinuation { gate = $0 } }
        return stored
    }

    func setPaused(job: String, _ paused: Bool) async throws { flags[job] = paused }

    /// Returns once a read is under way.
    func waitForRead() async {
        if started { return }
        await withCheckedContinuation { readStarted = $0 }
    }

    /// Lets the read under way answer.
    func release() {
        released = true
        gate?.resume()
        gate = nil
    }
}

struct JobControlTests {
    /// The first `isPaused` reads the stored flag; a pause that comes in while it reads must win over the
    /// stale value read, for this answer and every later one.
    @Test func aPauseDuringTheFirstReadIsNotLost() async throws {
        let flags = GatedFlags()
        let control = JobControl(flags: flags)
        async let first = control.isPaused("j")
        await flags.waitForRead()
        try await control.pause("j")
        await flags.release()
        let answer = await first
        #expect(answer == true)
        #expect(await control.isPaused("j") == true)
    }

    @Test func theStoredFlagIsReadOnce() async throws {
        let control = JobControl(ledger: nil)
        #expect(await control.isPaused("j") == false)
        try await control.pause("j")
        #expect(await control.isPaused("j") == true)
        try await control.resume("j", catchUp: true)
        #expect(await control.isPaused("j") == false)
        #expect(await control.takeResume("j")?.catchUp == true)
        #expect(await control.takeResume("j") == nil)
    }
}
