public import ZMQ

extension SocketOption {
    /// ZMTP heartbeats on every connection between services: a PING every 10 s, and a connection silent for
    /// 30 s is dropped (and reconnected). They notice a peer host that vanished without closing its TCP
    /// connections; a killed process closes them at once. Leases and the status bus's own heartbeats decide
    /// everything else, so this stays slow: every ping wakes both sides (a cost idle services pay).
    public static let peerHeartbeat = SocketOption.heartbeat(interval: .seconds(10), timeout: .seconds(30), ttl: .seconds(30))
}
