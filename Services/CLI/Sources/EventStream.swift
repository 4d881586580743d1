import Foundation
import Messaging
import ZMQ

/// A subscription to the status bus (`status_out`), yielding decoded events.
struct EventStream {
    let socket: AsyncSocket

    /// Connects to the bus.
    /// - Parameters:
    ///   - context: The ZeroMQ context.
    ///   - endpoint: The logger's `status_out`.
    ///   - prefixes: Event type prefixes to receive; empty for all.
    init(context: Context, endpoint: String, prefixes: [String]) async throws {
        let subscriptions = prefixes.isEmpty ? [SocketOption.subscribe([])] : prefixes.map { SocketOption.subscribe(Array($0.utf8)) }
        socket = try await AsyncSocket(
            context: context,
            configuration: .init(
                type: .subscribe,
                options: subscriptions + [.receiveHighWaterMark(100_000), .reconnectInterval(.milliseconds(100), max: .seconds(2))],
                connect: [endpoint]
            )
        )
    }

    /// The next event; malformed messages are skipped. Throws when the socket is closed or the task cancelled.
    func next() async throws -> StatusEvent {
        while true {
            let frames = try await socket.receive()
            if let event = try? StatusEvent(frames: frames) { return event }
        }
    }

    func close() async { await socket.close() }
}
