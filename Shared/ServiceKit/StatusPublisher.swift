import Foundation
import DequeModule
import Messaging
import Racing
public import ServiceLifecycle
import Synchronization
public import ZMQ

/// Publishes a service's status events on the bus, numbered, and announces the service with heartbeats.
///
/// The publisher is an XPUB socket connected to the logger's XSUB. An XPUB learns when a subscriber arrives
/// or leaves, so events are held in a bounded buffer while no subscriber is there (at start-up, while the
/// logger restarts) and sent once one is. The socket is open while ``run()`` runs (events published before
/// or after are held in the buffer). Every event gets the next sequence number whether it is sent,
/// buffered or dropped, so a subscriber can count what it missed.
///
/// ```swift
/// let publisher = try await StatusPublisher(context: context, endpoint: config.endpoints.statusIn,
///                                           source: "processor", instance: "host:42")
/// publisher.publish(EventType.resultStored, run: id, part: 0)
/// ```
public final class StatusPublisher: Service, Sendable {
    /// The service name in every event, e.g. `processor`.
    public let source: String
    /// The instance name in every event, e.g. `host:1234`.
    public let instance: String
    private let socketConfiguration: AsyncSocket.Configuration
    private let context: Context
    private let heartbeatInterval: Duration
    private let capacity: Int
    private let state = Mutex(State())
    private let started = ContinuousClock.now
    /// The heartbeat's JSON, made once: a heartbeat only fills in its counters and time.
    private let heartbeat: HeartbeatTemplate
    /// Run after each heartbeat, on the socket's thread (``onHeartbeat(_:)``).
    private let heartbeatActions = Mutex<[@Sendable () -> Void]>([])
    /// This host's name, looked up once (Foundation's lookup is not free, and heartbeats repeat it).
    static let host = ProcessInfo.processInfo.hostName

    private struct State {
        var seq: UInt64 = 0
        /// Set while ``run()`` holds the socket open.
        var socket: SocketOutbound?
        /// True while a logger is subscribed (and the socket open).
        var connected = false
        var pending: Deque<StatusEvent> = []
        var dropped: UInt64 = 0
    }

    /// Creates a publisher; its socket connects to the bus when it runs.
    /// - Parameters:
    ///   - context: The ZeroMQ context.
    ///   - endpoint: The logger's `status_in` endpoint.
    ///   - source: The service's name.
    ///   - instance: This instance's name.
    ///   - heartbeatInterval: How often to publish `service.heartbeat`.
    ///   - capacity: How many events to hold while no subscriber is connected.
    public init(
        context: Context,
        endpoint: String,
        source: String,
        instance: String,
        heartbeatInterval: Duration = .seconds(5),
        capacity: Int = 10_000
    ) async throws {
        self.source = source
        self.instance = instance
        self.heartbeatInterval = heartbeatInterval
        self.capacity = capacity
        self.context = context
        heartbeat = HeartbeatTemplate(
            source: source,
            instance: instance,
            boot: Boot.id,
            pid: "\(getpid())",
            host: Self.host,
            version: BatonVersion.current,
            intervalMs: Int(heartbeatInterval / .milliseconds(1))
        )
        socketConfiguration = .init(
            type: .xpublish,
            options: [
                .sendHighWaterMark(100_000),
                .reconnectInterval(.milliseconds(100), max: .seconds(2)),
                .peerHeartbeat,
            ],
            connect: [endpoint],
            lingerOnClose: .milliseconds(500),
            maxPosted: capacity
        )
    }

    /// Events dropped because the buffer was full while no subscriber was connected.
    public var droppedCount: UInt64 { state.withLock { $0.dropped } }

    /// Publishes an event: sends it now when a subscriber is connected, else buffers it. Never blocks.
    public func publish(
        _ type: String,
        job: String? = nil,
        run: String? = nil,
        part: Int? = nil,
        level: String? = nil,
        message: String? = nil,
        attributes: [String: String]? = nil
    ) {
        state.withLock { state in
            state.seq += 1
            let event = StatusEvent(
                type: type,
                source: source,
                instance: instance,
                boot: Boot.id,
                seq: state.seq,
                time: Date(),
                job: job,
                run: run,
                part: part,
                level: level,
                message: message,
                attributes: attributes
            )
            if state.connected, let socket = state.socket {
                if !socket.post(event.frames) { state.dropped += 1 }
            } else {
                hold(event, in: &state)
            }
        }
    }

    private func hold(_ event: StatusEvent, in state: inout State) {
        if state.pending.count >= capacity {
            state.pending.removeFirst()
            state.dropped += 1
        }
        state.pending.append(event)
    }

    /// Opens the socket, follows subscriptions and sends heartbeats until graceful shutdown, then publishes
    /// `service.stopped` and closes the socket.
    public func run() async throws {
        publish(
            EventType.serviceStarted,
            attributes: ["pid": "\(getpid())", "host": Self.host, "version": BatonVersion.current]
        )
        // Heartbeats are timed by the socket's own thread, which waits in its poll anyway: an idle service wakes
        // one thread per heartbeat, not a timer, a pool thread and then the socket's thread.
        var configuration = socketConfiguration
        configuration.tick = .init(every: heartbeatInterval) { [self] in publishHeartbeat() }
        try await context.withSocket(configuration) { socket in
            state.withLock { $0.socket = socket.outbound }
            await withDiscardingTaskGroup { group in
                group.addTask { await self.followSubscriptions(socket.inbound) }
                // Returns when graceful shutdown begins (or the task is cancelled).
                try? await gracefulShutdown()
                group.cancelAll()
            }
            publish(EventType.serviceStopped)
            // Give the stop event a moment to reach the logger, then close (the socket lingers briefly).
            if state.withLock({ $0.connected }) { try? await Task.sleep(for: .milliseconds(50)) }
            state.withLock { state in
                state.socket = nil
                state.connected = false
            }
        }
    }

    private func followSubscriptions(_ subscriptions: SocketInbound) async {
        while !Task.isCancelled {
            guard let message = try? await subscriptions.receive(), let frame = message.first, let first = frame.first else { return }
            // XPUB delivers subscriptions as 0x01+prefix and unsubscriptions as 0x00+prefix. The logger
            // subscribes to everything (the empty prefix); its proxy also forwards the prefixes its own
            // subscribers ask for, and their unsubscriptions when they leave. Only the empty prefix says
            // whether the logger is there: a `baton watch --type run.` that exits must not silence us.
            // (The XPUB reports the empty prefix's unsubscription only when no connected logger holds it.)
            guard frame.count == 1 else { continue }
            state.withLock { state in
                if first == 1, let socket = state.socket {
                    state.connected = true
                    while let event = state.pending.popFirst() {
                        if !socket.post(event.frames) { state.dropped += 1 }
                    }
                } else if first == 0 {
                    state.connected = false
                }
            }
        }
    }

    /// Adds work to do after each heartbeat, on the socket's own thread, which wakes for the heartbeat anyway:
    /// for a look that costs next to nothing (a counter read) and rings a doorbell only when there is
    /// something to do, so that an idle service wakes no other thread for it. It must be short and must not block.
    public func onHeartbeat(_ action: @escaping @Sendable () -> Void) {
        heartbeatActions.withLock { $0.append(action) }
    }

    /// Publishes `service.heartbeat` from its template (on the socket's thread: no encoder, nothing that waits).
    private func publishHeartbeat() {
        defer { for action in heartbeatActions.withLock({ $0 }) { action() } }
        let uptime = Int((ContinuousClock.now - started) / .seconds(1))
        let time = Date()
        state.withLock { state in
            state.seq += 1
            if state.connected, let socket = state.socket {
                if !socket.post(heartbeat.frames(seq: state.seq, time: time, uptimeSeconds: uptime)) { state.dropped += 1 }
            } else {
                let attributes = [
                    "uptime_s": "\(uptime)", "pid": "\(getpid())", "host": Self.host, "version": BatonVersion.current,
                    "interval_ms": "\(Int(heartbeatInterval / .milliseconds(1)))",
                ]
                let event = StatusEvent(
                    type: EventType.serviceHeartbeat,
                    source: source,
                    instance: instance,
                    boot: Boot.id,
                    seq: state.seq,
                    time: time,
                    attributes: attributes
                )
                hold(event, in: &state)
            }
        }
    }
}
