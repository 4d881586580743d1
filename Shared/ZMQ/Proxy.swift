import Foundation
import CZMQ

/// libzmq's built-in proxy (`zmq_proxy_steerable`) on a dedicated thread: forwards messages between a
/// frontend and a backend socket in both directions, optionally copying each one to a capture socket.
///
/// The status bus is an XSUB frontend and an XPUB backend; the capture copy is how the logger sees every
/// event without being a subscriber itself.
public final class Proxy: Sendable {
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
    ///   - capture: A socket that receives a copy of every message (e.g. PUSH to an `inproc://` PULL).
    public init(
        context: Context,
        frontend: AsyncSocket.Configuration,
        backend: AsyncSocket.Configuration,
        capture: AsyncSocket.Configuration? = nil
    ) async throws {
        let control = "inproc://proxy-control-\(UUID().uuidString)"
        let finished = Latch()
        let endpoints = try await withCheckedThrowingContinuation {
            (continuation: CheckedContinuation<([String], [String]), any Error>) in
            let thread = Thread {
                Self.run(
                    context: context,
                    sockets: (frontend, backend, capture),
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

    /// Stops the proxy and closes its sockets; returns once its thread has ended. Safe to call more than once.
    public func stop() async {
        if finished.isOpen { return }
        if let control = try? await AsyncSocket(
            context: context,
            configuration: .init(type: .pair, connect: [controlEndpoint])
        ) {
            // Never wait on the send: a proxy that already ended has no control peer.
            control.post([Data("TERMINATE".utf8)])
            await finished.wait()
            await control.close()
        } else {
            await finished.wait()
        }
    }

    private static func run(
        context: Context,
        sockets: (AsyncSocket.Configuration, AsyncSocket.Configuration, AsyncSocket.Configuration?),
        controlEndpoint: String,
        started: CheckedContinuation<([String], [String]), any Error>
    ) {
        var frontEndpoints: [String] = []
        var backEndpoints: [String] = []
        var ignored: [String] = []
        let frontend: Socket
        let backend: Socket
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
        do {
            frontend = try Socket.make(context: context, configuration: sockets.0, boundEndpoints: &frontEndpoints)
        } catch {
            started.resume(throwing: error)
            return
        }
        do {
            backend = try Socket.make(context: context, configuration: sockets.1, boundEndpoints: &backEndpoints)
        } catch {
            started.resume(throwing: error)
            return
        }
        if let captureConfiguration = sockets.2 {
            let capture: Socket
            do {
                capture = try Socket.make(context: context, configuration: captureConfiguration, boundEndpoints: &ignored)
            } catch {
                started.resume(throwing: error)
                return
            }
            started.resume(returning: (frontEndpoints, backEndpoints))
            runProxy(frontend, backend, capture: try? capture.withHandle { $0 }, control: control)
        } else {
            started.resume(returning: (frontEndpoints, backEndpoints))
            runProxy(frontend, backend, capture: nil, control: control)
        }
    }

    private static func runProxy(
        _ frontend: borrowing Socket,
        _ backend: borrowing Socket,
        capture captureHandle: UnsafeMutableRawPointer?,
        control: borrowing Socket
    ) {
        _ = try? frontend.withHandle { front throws(ZMQError) in
            try backend.withHandle { back throws(ZMQError) in
                try control.withHandle { ctrl throws(ZMQError) in
                    // Returns when TERMINATE arrives on the control socket, or the context is terminated.
                    _ = zmq_proxy_steerable(front, back, captureHandle, ctrl)
                }
            }
        }
    }
}
