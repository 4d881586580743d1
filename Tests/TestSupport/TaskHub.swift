public import Foundation
public import Messaging
import Synchronization
public import ZMQ

/// The algorithm's side of `results` played by a test: a bound ROUTER that answers processors' asks for work
/// (`ready`) with the tasks the test gives it, each ask once, as the algorithm does.
public final class TaskHub: Sendable {
    /// The bound ROUTER.
    public let socket: AsyncSocket
    /// The highest ask answered per processor (routing id), so an ask repeated while it waits is not answered twice.
    private let answered = Mutex<[Data: UInt64]>([:])

    /// Binds the ROUTER.
    public init(context: Context, endpoint: String) async throws {
        socket = try await AsyncSocket(
            context: context,
            configuration: .init(type: .router, options: [.routerMandatory(true), .routerHandover(true)], bind: [endpoint])
        )
    }

    /// A wait that ran out.
    public struct TimedOut: Error, CustomStringConvertible {
        public var description: String
    }

    /// The next ask not answered yet: the asking processor's routing id and the ask. Marks it answered.
    public func nextAsk(timeout: Duration = .seconds(30)) async throws -> (id: Data, ask: WorkRequest) {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            guard let frames = try await socket.receive(timeout: deadline - ContinuousClock.now), frames.count > 1 else { break }
            guard let ask = try? Wire.decode(WorkRequest.self, from: Array(frames.dropFirst())).message else { continue }
            let new = answered.withLock { answered in
                guard ask.seq > answered[frames[0], default: 0] else { return false }
                answered[frames[0]] = ask.seq
                return true
            }
            if new { return (frames[0], ask) }
        }
        throw TimedOut(description: "no processor asked for work within \(timeout)")
    }

    /// Sends a task to the next processor that asks.
    public func send(_ frames: [Data], timeout: Duration = .seconds(30)) async throws {
        let (id, _) = try await nextAsk(timeout: timeout)
        try await socket.send([id] + frames)
    }

    /// Closes the socket.
    public func close() async { await socket.close() }
}
