import Foundation
import DequeModule
import Glibc
import Synchronization

/// The socket's own thread: creates the socket, then polls it together with the wake-up pipe, sending what is
/// queued while the socket can take it and receiving only while someone waits (demand-driven), until close.
extension SocketCore {
    func run(context: Context, configuration: AsyncSocket.Configuration, started: CheckedContinuation<[String], any Error>) {
        state.withLock { $0.maxPosted = configuration.maxPosted }
        var endpoints: [String] = []
        var socket: Socket
        do {
            socket = try Socket.make(context: context, configuration: configuration, boundEndpoints: &endpoints)
        } catch {
            finish(error: error)
            started.resume(throwing: error)
            return
        }
        started.resume(returning: endpoints)

        var failure: ZMQError?
        var watch = HandshakeWatch(
            socket: socket,
            context: context,
            connects: configuration.connect,
            connections: configuration.watchConnections
        )
        var items = [socket.pollItem([]), PollItem.fileDescriptor(wakeRead, events: .readable)]
        if let item = watch?.pollItem() { items.append(item) }
        // A ROUTER is never waited on for writing: it takes a message or refuses it at once (see flushSends), and
        // with mandatory routing it is not writable at all while no peer is connected.
        let router = configuration.type == .router
        // The next tick is due at fixed steps from the start (no drift); one that is late is not repeated.
        var nextTick = configuration.tick.map { ContinuousClock.now.advanced(by: $0.interval) }
        state.withLock { $0.thread = pthread_self() }
        while true {
            var (wantIn, wantOut, closing) = state.withLock { ($0.receivers.count > 0, !$0.sends.isEmpty, $0.closing) }
            if closing { break }
            if router && wantOut {
                do { try flushSends(socket, failWhenFull: true) } catch {
                    failure = error
                    break
                }
                wantOut = false
            }
            var events: PollEvents = []
            if wantIn { events.insert(.readable) }
            if wantOut { events.insert(.writable) }
            items[0] = socket.pollItem(events)
            do {
                let now = ContinuousClock.now
                if let tick = configuration.tick, let due = nextTick, due <= now {
                    tick.action()
                    var next = due.advanced(by: tick.interval)
                    while next <= now { next = next.advanced(by: tick.interval) }
                    nextTick = next
                    continue
                }
                let untilTick = nextTick.map { now.duration(to: $0) }
                let timeout = [watch?.timeout(now: now), untilTick].compactMap { $0 }.min()
                try poll(&items, timeout: timeout)
                if items.count > 2 {
                    if items[2].ready.contains(.readable), watch?.readEvents(now: .now) == true { sendGreeting() }
                    watch?.reconnectDue(socket, now: .now)
                }
                if items[1].ready.contains(.readable) { drainWakePipe() }
                if items[0].ready.contains(.writable) { try flushSends(socket, failWhenFull: router) }
                if items[0].ready.contains(.readable) { try deliver(socket) }
            } catch {
                failure = error
                break
            }
        }
        _ = try? socket.set(.linger(configuration.lingerOnClose))
        socket.close()
        finish(error: failure ?? closedError())
    }

    /// After a connection was made: queues the message set for every connection (``AsyncSocket/greet(_:)``), if any,
    /// ahead of what waits, so the loop sends it at once.
    fileprivate func sendGreeting() {
        state.withLock { state in
            guard let greeting = state.greeting, !state.closing else { return }
            state.posted += 1
            state.sends.prepend(Outgoing(id: 0, parts: greeting, continuation: nil))
        }
    }

    fileprivate func drainWakePipe() {
        var buffer = [UInt8](repeating: 0, count: 64)
        // Empty the pipe first, then allow the next wake to write. The other order loses wake-ups: a wake
        // between clearing the flag and reading would have its byte read here, leaving the flag set over an
        // empty pipe, and every later wake() would skip writing while this thread sleeps in poll.
        while read(wakeRead, &buffer, buffer.count) > 0 {}
        state.withLock { $0.wakePending = false }
        // Work queued before the flag cleared is picked up by the loop, which reads the state before polling.
    }

    /// With `failWhenFull` (a ROUTER), a message the socket cannot take now fails instead of waiting: a ROUTER
    /// is full for one peer at a time (with mandatory routing), and waiting for it to become writable would spin
    /// while other peers have room, or stall every later message behind one peer that stopped reading.
    fileprivate func flushSends(_ socket: borrowing Socket, failWhenFull: Bool) throws(ZMQError) {
        while let next = state.withLock({ $0.sends.popFirst() }) {
            let sent: Bool
            do {
                sent = try socket.send(next.parts, wait: false)
            } catch {
                if error.isTerminated { throw error }
                // A message the socket refuses (wrong state, unroutable) fails alone; the socket goes on.
                complete(next, error: error)
                continue
            }
            if !sent {
                if failWhenFull {
                    complete(next, error: ZMQError(code: ZMQError.wouldBlock, operation: "zmq_send (the peer's queue is full)"))
                    continue
                }
                state.withLock { $0.sends.prepend(next) }
                return
            }
            complete(next, error: nil)
        }
    }

    fileprivate func complete(_ outgoing: Outgoing, error: ZMQError?) {
        if outgoing.completion == nil { state.withLock { $0.posted -= 1 } }
        outgoing.complete(error)
    }

    fileprivate func deliver(_ socket: borrowing Socket) throws(ZMQError) {
        while state.withLock({ !$0.receivers.isEmpty }) {
            guard let message = try socket.receive(wait: false) else { return }
            let waiter: Waiter? = state.withLock { state in
                if let waiter = state.receivers.popFirst() { return waiter }
                state.inbox.append(message)
                return nil
            }
            waiter?.continuation.resume(returning: message)
        }
    }

    fileprivate func finish(error: any Error) {
        let (sends, receivers, watchers) = state.withLock { state in
            state.closing = true
            defer {
                state.sends.removeAll()
                state.receivers.removeAll()
                state.receiverWatchers.removeAll()
                state.posted = 0
            }
            return (state.sends, state.receivers, state.receiverWatchers)
        }
        for send in sends { send.complete(error) }
        for receiver in receivers { receiver.continuation.resume(throwing: error) }
        // No receive will ever be registered again: a watcher waits no longer.
        for watcher in watchers { watcher.continuation.resume() }
        closed.open()
    }
}
