import Foundation

extension Socket {
    /// Creates a socket as a configuration describes it: options, binds, connects, initial messages.
    /// - Parameters:
    ///   - context: The context.
    ///   - configuration: What to create.
    ///   - boundEndpoints: Receives the endpoints actually bound, wildcard ports resolved.
    static func make(
        context: Context,
        configuration: AsyncSocket.Configuration,
        boundEndpoints: inout [String]
    ) throws(ZMQError) -> Socket {
        let socket = try Socket(context: context, type: configuration.type)
        for option in configuration.options { try socket.set(option) }
        for endpoint in configuration.bind { boundEndpoints.append(try socket.bind(endpoint)) }
        for endpoint in configuration.connect { try socket.connect(endpoint) }
        for message in configuration.initialMessages { try socket.send(message) }
        return socket
    }
}
