import CoreMetrics
import Foundation
import HTTPTypes
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import Synchronization

/// `baton_http_connections_closed_total{reason}`: connections the server closed or refused, by why.
struct ClosedCounters: Sendable {
    let timeout: CoreMetrics.Counter
    let evicted: CoreMetrics.Counter
    let refused: CoreMetrics.Counter
    let headerTooLarge: CoreMetrics.Counter
    let badRequest: CoreMetrics.Counter

    init(metrics: ServiceMetrics) {
        let name = "baton_http_connections_closed_total"
        timeout = metrics.counter(name, [("reason", "timeout")])
        evicted = metrics.counter(name, [("reason", "evicted")])
        refused = metrics.counter(name, [("reason", "refused")])
        headerTooLarge = metrics.counter(name, [("reason", "header_too_large")])
        badRequest = metrics.counter(name, [("reason", "bad_request")])
    }
}

/// The open connections of one server, with the cap: a new connection over it closes the one idle the longest
/// (not between a request and its answer). All of them live on the server's one event loop; the lock only
/// keeps the type honest.
final class ConnectionTable: Sendable {
    private struct Entry {
        let channel: any Channel
        var busy: Bool
        var idleSince: NIODeadline
    }

    private let capacity: Int
    private let closed: ClosedCounters
    private let entries = Mutex<[ObjectIdentifier: Entry]>([:])

    init(capacity: Int, closed: ClosedCounters) {
        self.capacity = capacity
        self.closed = closed
    }

    /// Admits a new connection, closing the longest-idle one if the table is full; false if all are busy.
    func open(_ channel: any Channel) -> Bool {
        let now = NIODeadline.now()
        let outcome: (admitted: Bool, victim: (any Channel)?) = entries.withLock { entries in
            var victim: (any Channel)?
            if entries.count >= capacity {
                guard let oldest = entries.filter({ !$0.value.busy }).min(by: { $0.value.idleSince < $1.value.idleSince }) else {
                    return (false, nil)
                }
                victim = entries.removeValue(forKey: oldest.key)?.channel
            }
            entries[ObjectIdentifier(channel)] = Entry(channel: channel, busy: false, idleSince: now)
            return (true, victim)
        }
        // Closing runs the victim's handlers at once (same loop): outside the lock.
        if let victim = outcome.victim {
            closed.evicted.increment()
            victim.close(promise: nil)
        }
        if !outcome.admitted { closed.refused.increment() }
        return outcome.admitted
    }

    /// Marks a connection as between a request and its answer (busy), or idle from now.
    func setBusy(_ channel: any Channel, _ busy: Bool) {
        let now = NIODeadline.now()
        entries.withLock { entries in
            let key = ObjectIdentifier(channel)
            entries[key]?.busy = busy
            if !busy { entries[key]?.idleSince = now }
        }
    }

    func remove(_ channel: any Channel) {
        _ = entries.withLock { $0.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    /// How many connections are open (tests).
    var count: Int { entries.withLock { $0.count } }
}

/// One per connection, after HTTP decoding: admits it to the ``ConnectionTable``, and closes it when a
/// request (from the connection's start or the previous answer, to the end of this answer) takes longer
/// than the request timeout, which covers slow senders, slow readers and idle keep-alive alike.
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let table: ConnectionTable
    private let timeout: TimeAmount
    private let closed: ClosedCounters
    private var admitted = false
    private var deadline: Scheduled<Void>?

    init(table: ConnectionTable, timeout: TimeAmount, closed: ClosedCounters) {
        self.table = table
        self.timeout = timeout
        self.closed = closed
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { admit(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        admit(context: context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        release(context: context)
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        release(context: context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head = unwrapInboundIn(data) { table.setBusy(context.channel, true) }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .end:
            table.setBusy(context.channel, false)
            arm(context: context)
        case .body:
            // A streamed answer (server-sent events) that keeps writing is alive; one that stops writing, or whose
            // client stops reading (the writes then wait), is closed a timeout later.
            arm(context: context)
        case .head:
            break
        }
        context.write(data, promise: promise)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? HTTPParserError {
            (error == .headerOverflow ? closed.headerTooLarge : closed.badRequest).increment()
        }
        context.fireErrorCaught(error)
    }

    private func admit(context: ChannelHandlerContext) {
        guard !admitted else { return }
        admitted = true
        guard table.open(context.channel) else {
            context.close(promise: nil)
            return
        }
        arm(context: context)
    }

    private func arm(context: ChannelHandlerContext) {
        deadline?.cancel()
        let closed = closed
        deadline = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            closed.timeout.increment()
            context.close(promise: nil)
        }
    }

    private func release(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        table.remove(context.channel)
    }
}
