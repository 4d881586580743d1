public import Foundation
import Synchronization
public import Messaging
public import ServiceKit
public import ServiceLifecycle

public import ZMQ

/// The processors waiting for work: who asked (`ready` on `results`), in the order they asked, with the credit
/// each has left. The sender hands a task only to a processor taken from here, so a task is never queued at a
/// processor that has not asked for it.
///
/// Each ask is answered once, by its number: a processor re-sending an ask it already made (after a reconnect,
/// or while it waits) gets nothing more, and a higher number replaces what was left of a lower one.
public final class WorkRequests: Sendable {
    /// A processor that asked, as the sender addresses it.
    public struct Taker: Sendable, Equatable {
        /// Its routing id on the `results` ROUTER.
        public var id: Data
        /// Its instance name, from the ask.
        public var processor: String
        /// The ask being answered.
        public var seq: UInt64
        /// It took a batch ask whole (a task that goes alone): given back, the whole ask comes back.
        var whole = false
    }

    /// The latest ask of one processor (routing id), and how much of it is left.
    private struct Peer {
        var processor: String
        var seq: UInt64
        var left: Int
        /// In line for work: it has credit left and was not found gone.
        var waiting: Bool
        /// An ask for a batch (``WorkRequest/batch``): small store tasks up to `left`, or one other task.
        var batch = false
        /// Part of the ask was answered: a batch ask then takes only more small store tasks.
        var touched = false
        /// What the ask granted, for a credit given back.
        var asked = 1
    }

    private struct State {
        var peers: [Data: Peer] = [:]
        /// The ids of waiting peers, each once, oldest ask first.
        var order: [Data] = []
    }

    private let state = Mutex(State())
    /// The most processors remembered: a careless client making up ids cannot grow the table without bound.
    private let capacity: Int

    /// Creates an empty table.
    /// - Parameter capacity: The most processors remembered; beyond it, those not waiting are forgotten, then
    ///   the longest waiting.
    public init(capacity: Int = 10_000) {
        self.capacity = capacity
    }

    /// Records an ask; true when it opened credit (the sender should look for work). An ask older than the
    /// processor's latest is ignored; the latest again is ignored unless its processor was found gone with credit
    /// left (it reconnected), which it then gets back; a newer one replaces what was left.
    @discardableResult
    public func offer(_ request: WorkRequest, from id: Data) -> Bool {
        state.withLock { state in
            if var peer = state.peers[id], request.seq <= peer.seq {
                guard request.seq == peer.seq, !peer.waiting, peer.left > 0 else { return false }
                peer.waiting = true
                state.peers[id] = peer
                state.order.append(id)
                return true
            }
            let wasWaiting = state.peers[id]?.waiting == true
            state.peers[id] = Peer(
                processor: request.processor,
                seq: request.seq,
                left: request.batch ?? request.credit,
                waiting: true,
                batch: request.batch != nil,
                asked: request.batch ?? request.credit
            )
            if !wasWaiting { state.order.append(id) }
            if state.peers.count > capacity { Self.shrink(&state, to: capacity) }
            return true
        }
    }

    private static func shrink(_ state: inout State, to capacity: Int) {
        state.peers = state.peers.filter(\.value.waiting)
        while state.peers.count > capacity, !state.order.isEmpty {
            state.peers[state.order.removeFirst()] = nil
        }
    }

    /// Takes one credit of the processor that has waited longest and can take the task; nil when none can.
    /// - Parameter batchable: The task may go in a batch (``WorkRequest/isBatchable(_:)``). Any other task takes
    ///   a batch ask whole, and only one nothing was sent for yet.
    public func take(batchable: Bool = false) -> Taker? {
        state.withLock { state in
            guard
                let position = state.order.firstIndex(where: { id in
                    guard let peer = state.peers[id] else { return false }
                    return !peer.batch || batchable || !peer.touched
                }),
                var peer = state.peers[state.order[position]]
            else { return nil }
            let id = state.order[position]
            let whole = peer.batch && !batchable
            peer.left = whole ? 0 : peer.left - 1
            peer.touched = true
            if peer.left == 0 {
                peer.waiting = false
                state.order.remove(at: position)
            }
            state.peers[id] = peer
            return Taker(id: id, processor: peer.processor, seq: peer.seq, whole: whole)
        }
    }

    /// Ends the batch asks these takers answered: a batch ask is answered once, by what was due when the sender
    /// took it (up to its `batch`), never topped up later. Its processor asks again once it has stored what came,
    /// and goes to the back of the line: without this, a processor re-asking while the rest of its batch was still
    /// on the way kept its place at the front, with its credit renewed, and the others got nothing.
    public func endBatches(_ takers: [Taker]) {
        guard !takers.isEmpty else { return }
        state.withLock { state in
            for taker in takers {
                guard var peer = state.peers[taker.id], peer.batch, peer.seq == taker.seq, peer.left > 0 else { continue }
                peer.left = 0
                if peer.waiting {
                    peer.waiting = false
                    state.order.removeAll { $0 == taker.id }
                }
                state.peers[taker.id] = peer
            }
        }
    }

    /// The credit of every waiting processor together: how many tasks could go out now, at most.
    public var credit: Int { state.withLock { state in state.order.reduce(0) { $0 + (state.peers[$1]?.left ?? 0) } } }

    /// Gives back a credit taken for a task that was not sent after all (it was dead-lettered), first in line.
    public func giveBack(_ taker: Taker) {
        state.withLock { state in
            guard var peer = state.peers[taker.id], peer.seq == taker.seq else { return }
            // A batch ask taken whole by one task comes back whole; nothing sent on an ask leaves it untouched.
            peer.left = taker.whole ? peer.asked : min(peer.left + 1, peer.asked)
            if peer.left == peer.asked { peer.touched = false }
            if !peer.waiting {
                peer.waiting = true
                state.order.insert(taker.id, at: 0)
            }
            state.peers[taker.id] = peer
        }
    }

    /// Takes a processor that could not be reached out of line; what it had left of its ask is kept for when it
    /// comes back with that ask.
    public func drop(_ id: Data) {
        state.withLock { state in
            guard var peer = state.peers[id], peer.waiting else { return }
            peer.waiting = false
            state.peers[id] = peer
            state.order.removeAll { $0 == id }
        }
    }

    /// How many processors are waiting for work.
    public var waiting: Int { state.withLock { $0.order.count } }
}

/// Takes the processors' asks off the `results` ROUTER and records them in ``WorkRequests``, ringing the sender's
/// doorbell when one opens credit. Anything else arriving there is rejected as malformed.
public struct WorkRequestReceiver: Service {
    private let requests: WorkRequests
    private let results: SocketInbound
    private let doorbell: Doorbell
    private let rejector: MessageRejector

    /// Creates the receiver.
    /// - Parameters:
    ///   - requests: Where the asks go.
    ///   - results: The inbound side of the bound `results` ROUTER.
    ///   - doorbell: The sender's doorbell.
    ///   - rejector: How malformed messages are turned away.
    public init(requests: WorkRequests, results: SocketInbound, doorbell: Doorbell, rejector: MessageRejector) {
        self.requests = requests
        self.results = results
        self.doorbell = doorbell
        self.rejector = rejector
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                guard let frames = try? await results.receive() else { return }
                // Frame 0 is the routing id the ROUTER put in front of what the processor sent.
                guard let id = frames.first else { continue }
                let message = Array(frames.dropFirst())
                do {
                    let request = try Wire.decode(WorkRequest.self, from: message).message
                    if requests.offer(request, from: id) { doorbell.ring() }
                } catch {
                    rejector.reject(error, frames: message)
                }
            }
        }
    }
}
