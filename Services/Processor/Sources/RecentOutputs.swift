import Foundation
import Messaging
import Synchronization

/// The outputs of the stage tasks this processor finished last, so that a second delivery of one of them is
/// answered with the same outputs instead of running the stage's command again.
///
/// A task sent to a busy processor waits in its one-message queue; if its lease runs out there, the hub sends it
/// again, and it may come back to the same processor (the only one, or the next free one) after the first copy
/// was done. The processor cannot ask the hub whether a task is settled, but it knows what it did itself: a copy
/// of a task it finished, with the same input (sha256), gets the same ack again, which the hub ignores if it
/// settled the task already and commits otherwise (the first ack may have been lost with a restarting hub).
/// Only re-sent deliveries (`attempt` > 1) are answered from here: a task made again on purpose
/// (`baton replay --from-stage`) is a first delivery and runs.
/// Bounded: at most `capacity` tasks and `maxBytes` of outputs, oldest forgotten first; a forgotten task is
/// simply run again, which is what a stage's command must tolerate anyway (at-least-once).
final class RecentOutputs: Sendable {
    private struct State {
        var outputs: [String: [Data]] = [:]
        var order: [String] = []
        var bytes = 0
    }

    private let state = Mutex(State())
    private let capacity: Int
    private let maxBytes: Int

    init(capacity: Int = 1024, maxBytes: Int = 64 << 20) {
        self.capacity = capacity
        self.maxBytes = maxBytes
    }

    static func key(_ header: ResultHeader) -> String {
        "\(header.runID)#\(header.stageNumber)#\(header.part)#\(header.sha256)"
    }

    /// The outputs this processor sent for the task of `header`, if it remembers them.
    func outputs(for header: ResultHeader) -> [Data]? {
        state.withLock { $0.outputs[Self.key(header)] }
    }

    /// Remembers a finished task's outputs (unless they alone are over the byte bound).
    func remember(_ outputs: [Data], for header: ResultHeader) {
        let size = outputs.reduce(0) { $0 + $1.count }
        guard size <= maxBytes else { return }
        let key = Self.key(header)
        state.withLock { state in
            guard state.outputs[key] == nil else { return }
            state.outputs[key] = outputs
            state.order.append(key)
            state.bytes += size
            while state.order.count > capacity || state.bytes > maxBytes, let oldest = state.order.first {
                state.order.removeFirst()
                state.bytes -= state.outputs.removeValue(forKey: oldest)?.reduce(0) { $0 + $1.count } ?? 0
            }
        }
    }
}
