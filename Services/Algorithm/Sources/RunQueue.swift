import Messaging

/// Runs accepted and waiting for a worker, in two lanes: live runs (scheduled and manual) and backfills,
/// so a backfill never delays a live slot. First come, first run within a lane.
actor RunQueue {
    enum Lane: Sendable { case live, backfill }

    private var waiting: [Lane: [RunRequest]] = [.live: [], .backfill: []]
    private var waiters: [Lane: [CheckedContinuation<RunRequest?, Never>]] = [.live: [], .backfill: []]
    private var closed = false

    static func lane(of request: RunRequest) -> Lane { request.trigger == .backfill ? .backfill : .live }

    func push(_ request: RunRequest) {
        let lane = Self.lane(of: request)
        if !waiters[lane, default: []].isEmpty {
            waiters[lane, default: []].removeFirst().resume(returning: request)
            return
        }
        waiting[lane, default: []].append(request)
    }

    /// The next run of a lane, waiting for one; nil once the queue is closed (or the task cancelled).
    func next(_ lane: Lane) async -> RunRequest? {
        if closed || Task.isCancelled { return nil }
        if !waiting[lane, default: []].isEmpty { return waiting[lane, default: []].removeFirst() }
        return await withCheckedContinuation { continuation in
            waiters[lane, default: []].append(continuation)
        }
    }

    /// Drops a waiting run; returns whether it was waiting.
    @discardableResult
    func remove(_ runID: String) -> Bool {
        for lane in [Lane.live, .backfill] {
            if let index = waiting[lane]?.firstIndex(where: { $0.runID == runID }) {
                waiting[lane, default: []].remove(at: index)
                return true
            }
        }
        return false
    }

    /// No more runs start: waiting workers get nil (their runs stay `accepted` and run at the next start).
    func close() {
        closed = true
        for lane in [Lane.live, .backfill] {
            for waiter in waiters[lane] ?? [] { waiter.resume(returning: nil) }
            waiters[lane] = []
        }
    }
}
