public import Foundation
import CZMQ

/// A proxy on a dedicated thread: forwards messages from a frontend to a backend socket, and the backend's
/// messages (subscriptions, for XSUB/XPUB) back to the frontend, optionally copying each forwarded message to
/// a capture socket, like libzmq's `zmq_proxy_steerable`, but with a ``Policy`` that decides what passes.
///
/// The status bus is an XSUB frontend and an XPUB backend; the capture copy is how the logger sees every
/// event without being a subscriber itself. Its policy forwards only well-formed events, keeps subscribers'
/// subscriptions at the XPUB (the XSUB already subscribes to everything), and bounds how many there are.
public final class Proxy: Sendable {
    /// What passes the proxy, decided on its thread for every message.
    public struct Policy: Sendable {
        /// Called for each message from the frontend: true forwards it to the backend and the capture.
        public var forward: @Sendable ([Data]) -> Bool
        /// Called for each message from the backend: true forwards it to the frontend. Subscriptions
        /// (one frame, `0x01`/`0x00` + prefix) are counted before this is asked.
        public var backward: @Sendable ([Data]) -> Bool
        /// The most distinct subscriptions the backend may hold; past it the backend socket is closed and
        /// bound again, which drops every subscriber (they reconnect and subscribe again) and frees what they
        /// subscribed to. `nil` sets no bound.
        public var maxSubscriptions: Int?
        /// Called (on the proxy's thread) after the backend was reset, with the number of subscriptions it held.
        public var onSubscriptionOverflow: @Sendable (Int) -> Void

        /// Creates a policy.
        /// - Parameters:
        ///   - forward: Whether a frontend message goes on to the backend and capture.
        ///   - backward: Whether a backend message goes on to the frontend.
        ///   - maxSubscriptions: Bound on distinct backend subscriptions.
        ///   - onSubscriptionOverflow: Told when the bound reset the backend.
        public init(
            forward: @escaping @Sendable ([Data]) -> Bool = { _ in true },
            backward: @escaping @Sendable ([Data]) -> Bool = { _ in true },
            maxSubscriptions: Int? = nil,
            onSubscriptionOverflow: @escaping @Sendable (Int) -> Void = { _ in }
        ) {
            self.forward = forward
            self.backward = backward
            self.maxSubscriptions = maxSubscriptions
            self.onSubscriptionOverflow = onSubscriptionOverflow
        }

        /// Everything passes both ways, as with `zmq_proxy`.
        public static let everything = Policy()
    }

    /// The endpoints the frontend and backend bound, wildcard ports resolved.
    public let frontendEndpoints: [String]
    /// See ``frontendEndpoints``.
    public let backendEndpoints: [String]
    private let context: Context
    private let controlEndpoint: String
    private let finished: Latch

    /// Starts the proxy.
    /// - Parameters:
    ///   - context: The context for all of the proxy's sockets.
    ///   - frontend: The frontend socket (e.g. XSUB bound where publishers connect).
    ///   - backend: The backend socket (e.g. XPUB bound where subscribers connect).
    ///   - capture: A socket that receives a copy of every forwarded message (e.g. PUSH to an `inproc://` PULL).
    ///   - policy: What passes.
    public init(
        context: Context,
        frontend: AsyncSocket.Configuration,
        backend: AsyncSocket.Configuration,
        capture: AsyncSocket.Configuration? = nil,
        policy: Policy = .everything
    ) async throws {
        let control = "inproc://proxy-control-\(UUID().uuidString)"
        let finished = Latch()
        let endpoints = try await withCheckedThrowingContinuation {
            (continuation: CheckedContinuation<([String], [String]), any Error>) in
            let thread = Thread {
                Self.run(
                    context: context,
                    sockets: (frontend, backend, capture),
                    policy: policy,
                    controlEndpoint: control,
                    started: continuation
                )
                finished.open()
            }
            thread.name = "zmq-proxy"
            thread.stackSize = 512 * 1024
            thread.start()
        }
        self.context = context
        self.controlEndpoint = control
        self.finished = finished
        (self.frontendEndpoints, self.backendEndpoints) = endpoints
    }

    /// Starts a proxy, runs `body` while it forwards, and stops it (closing its sockets) however `body` ends.
    /// - Parameters:
    ///   - context: The context for all of the proxy's sockets.
    ///   - frontend: The frontend socket.
    ///   - backend: The backend socket.
    ///   - capture: A socket that receives a copy of every forwarded message.
    ///   - policy: What passes.
    ///   - body: Runs while the proxy forwards.
    /// - Throws: ``ZMQError`` if a socket cannot be created, bound or connected (then `body` does not run), or
    ///   what `body` throws.
    public static func withProxy<Result>(
        context: Context,
        frontend: AsyncSocket.Configuration,
        backend: AsyncSocket.Configuration,
        capture: AsyncSocket.Configuration? = nil,
        policy: Policy = .everything,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (Proxy) async throws -> Result
    ) async throws -> Result {
        let proxy = try await Proxy(context: context, frontend: frontend, backend: backend, capture: capture, policy: policy)
        let result: Result
        do {
            result = try await body(proxy)
        } catch {
            await proxy.stop()
            throw error
        }
        await proxy.stop()
        return result
    }

    /// Stops the proxy and closes its sockets; returns once its thread has ended. Safe to call more than once.
    public func stop() async {
        if finished.isOpen { return }
        let finished = finished
        let asked: Void? = try? await context.withOutbound(.init(type: .pair, connect: [controlEndpoint])) { control in
            // Never wait on the send: a proxy that already ended has no control peer.
            control.post([Data("TERMINATE".utf8)])
            await finished.wait()
        }
        if asked == nil { await finished.wait() }
    }

    private static func run(
        context: Context,
        sockets: (AsyncSocket.Configuration, AsyncSocket.Configuration, AsyncSocket.Configuration?),
        policy: Policy,
        controlEndpoint: String,
        started: CheckedContinuation<([String], [String]), any Error>
    ) {
        var frontEndpoints: [String] = []
        var backEndpoints: [String] = []
        var ignored: [String] = []
        let control: Socket
        do {
            control = try Socket.make(
                context: context,
                configuration: .init(type: .pair, bind: [controlEndpoint]),
                boundEndpoints: &ignored
            )
        } catch {
            started.resume(throwing: error)
            return
        }
        let frontend: Socket
        do {
            frontend = try Socket.make(context: context, configuration: sockets.0, boundEndpoints: &frontEndpoints)
        } catch {
            started.resume(throwing: error)
            return
        }
        var backend: Socket
        do {
            backend = try Socket.make(context: context, configuration: sockets.1, boundEndpoints: &backEndpoints)
        } catch {
            started.resume(throwing: error)
            return
        }
        var capture: Socket? = nil
        if let captureConfiguration = sockets.2 {
            do {
                capture = try Socket.make(context: context, configuration: captureConfiguration, boundEndpoints: &ignored)
            } catch {
                started.resume(throwing: error)
                return
            }
        }
        started.resume(returning: (frontEndpoints, backEndpoints))
        // A reset binds the resolved endpoints again, so a wildcard port stays the same.
        var rebind = sockets.1
        rebind.bind = backEndpoints
        var loop = Loop(policy: policy, backendConfiguration: rebind, context: context)
        loop.run(frontend: frontend, backend: &backend, control: control, capture: &capture)
    }

    /// The proxy's loop and its count of subscriptions; lives on the proxy's thread.
    private struct Loop {
        let policy: Policy
        let backendConfiguration: AsyncSocket.Configuration
        let context: Context
        var subscriptions: Set<Data> = []
        /// Messages handled per socket before polling again, so one busy side cannot starve the others.
        static let batch = 1000

        init(policy: Policy, backendConfiguration: AsyncSocket.Configuration, context: Context) {
            self.policy = policy
            self.backendConfiguration = backendConfiguration
            self.context = context
        }

        mutating func run(frontend: borrowing Socket, backend: inout Socket, control: borrowing Socket, capture: inout Socket?) {
            while true {
                var items = [frontend.pollItem(.readable), backend.pollItem(.readable), control.pollItem(.readable)]
                do {
                    try poll(&items, timeout: nil)
                    // TERMINATE (or anything) on the control socket stops the proxy.
                    if items[2].ready.contains(.readable) { return }
                    if items[0].ready.contains(.readable) { try pumpForward(frontend, backend, &capture) }
                    if items[1].ready.contains(.readable) {
                        if try pumpBackward(backend, frontend) {
                            resetBackend(&backend)
                            if !backend.isOpen { return }
                        }
                    }
                } catch {
                    if error.isTerminated { return }
                    // Anything else concerns one message; go on with the next.
                }
            }
        }

        private func pumpForward(_ frontend: borrowing Socket, _ backend: borrowing Socket, _ capture: inout Socket?) throws(ZMQError) {
            for _ in 0..<Self.batch {
                guard let message = try frontend.receive(wait: false) else { return }
                guard policy.forward(message) else { continue }
                // XPUB never blocks (a slow subscriber's messages are dropped at its high-water mark); the capture
                // may, which slows the publishers rather than losing events, as zmq_proxy does.
                _ = try? backend.send(message, wait: false)
                _ = try capture?.send(message)
            }
        }

        /// Returns true when the subscriptions went past their bound and the backend must be reset.
        private mutating func pumpBackward(_ backend: borrowing Socket, _ frontend: borrowing Socket) throws(ZMQError) -> Bool {
            for _ in 0..<Self.batch {
                guard let message = try backend.receive(wait: false) else { return false }
                if message.count == 1, let first = message[0].first, first <= 1 {
                    let prefix = message[0].dropFirst()
                    if first == 1 { subscriptions.insert(Data(prefix)) } else { subscriptions.remove(Data(prefix)) }
                    if let max = policy.maxSubscriptions, subscriptions.count > max { return true }
                }
                if policy.backward(message) { _ = try? frontend.send(message, wait: false) }
            }
            return false
        }

        private mutating func resetBackend(_ backend: inout Socket) {
            let held = subscriptions.count
            subscriptions.removeAll()
            backend.close()
            // libzmq releases a closed socket's listener in its I/O thread: bind again until the address is free.
            for _ in 0..<200 {
                var ignored: [String] = []
                if let fresh = try? Socket.make(context: context, configuration: backendConfiguration, boundEndpoints: &ignored) {
                    backend = fresh
                    break
                }
                usleep(10_000)
            }
            policy.onSubscriptionOverflow(held)
        }
    }
}
