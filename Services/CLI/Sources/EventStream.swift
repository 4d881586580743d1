import Foundation
import Synchronization
import Messaging
import ZMQ

/// A subscription to the status bus (`status_out`), yielding decoded events.
struct EventStream {
    private let events: SocketInbound

    /// Connects to the bus, runs `body` with the stream, and disconnects however `body` ends.
    /// - Parameters:
    ///   - context: The ZeroMQ context.
    ///   - endpoint: The logger's `status_out`.
    ///   - prefixes: Event type prefixes to receive; empty for all. Heartbeats (`service.heartbeat`) are always
    ///     received too, so that a quiet bus can be told from an unreachable logger; filter them out to show
    ///     only the prefixes asked for.
    ///   - body: Reads the stream.
    static func with<Result>(
        context: Context,
        endpoint: String,
        prefixes: [String],
        isolation: isolated (any Actor)? = #isolation,
        _ body: (EventStream) async throws -> Result
    ) async throws -> Result {
        let subscriptions =
            prefixes.isEmpty
            ? [SocketOption.subscribe([])]
            : (prefixes + [EventType.serviceHeartbeat]).map { SocketOption.subscribe(Array($0.utf8)) }
        return try await context.withInbound(
            .init(
                type: .subscribe,
                options: subscriptions + [.receiveHighWaterMark(100_000), .reconnectInterval(.milliseconds(100), max: .seconds(2))],
                connect: [endpoint]
            )
        ) { events in
            try await body(EventStream(events: events))
        }
    }

    /// The next event; malformed messages are skipped. Throws when the socket is closed or the task cancelled.
    func next() async throws -> StatusEvent {
        while true {
            let frames = try await events.receive()
            if let event = try? StatusEvent(frames: frames) { return event }
        }
    }
}

/// Whether the status bus is reachable, from when events last arrived: every service (the logger too)
/// heartbeats, so a bus silent for longer than a couple of heartbeat intervals means the logger cannot be
/// reached. Reports each change once: unreachable, then back.
struct BusLiveness {
    /// What changed.
    enum Change: Equatable {
        case unreachable
        case back
    }

    /// How long without events means unreachable.
    let silence: Duration
    private var lastHeard: ContinuousClock.Instant
    private var reachable = true

    /// Starts counting from `now` (a bus never heard from is unreachable after `silence` too).
    init(silence: Duration, now: ContinuousClock.Instant) {
        self.silence = silence
        lastHeard = now
    }

    /// An event arrived.
    mutating func heard(at now: ContinuousClock.Instant) -> Change? {
        lastHeard = now
        guard !reachable else { return nil }
        reachable = true
        return .back
    }

    /// Checks the time since the last event.
    mutating func check(at now: ContinuousClock.Instant) -> Change? {
        guard reachable, now - lastHeard > silence else { return nil }
        reachable = false
        return .unreachable
    }
}

/// A ``BusLiveness`` shared between the task that receives events and the one that checks the silence.
final class SharedBusLiveness: Sendable {
    private let state: Mutex<BusLiveness>

    init(_ liveness: BusLiveness) { state = Mutex(liveness) }

    func heard() -> BusLiveness.Change? { state.withLock { $0.heard(at: .now) } }
    func check() -> BusLiveness.Change? { state.withLock { $0.check(at: .now) } }
}
