public import Foundation
import Glibc

// Raw-socket HTTP for the tests that attack or probe the /metrics and /healthz endpoints (the metrics server's
// own tests and the integration tests' attack on a running service).

/// A blocking HTTP/1.1 client on raw sockets, able to misbehave.
public enum RawHTTP {
    public struct Reply: Sendable, CustomStringConvertible {
        /// The status code, if a status line came back.
        public var status: Int?
        public var body: String
        /// The status line and headers, as sent.
        public var head = ""
        /// Whether the server closed (end of file or reset) rather than the read timing out.
        public var closed: Bool
        public var description: String { "status \(status.map(String.init) ?? "none"), closed \(closed), body \(body.prefix(200))" }
    }

    /// A connected socket with send and receive timeouts, or nil.
    public static func connect(port: Int, timeout: Double) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var time = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard connected else {
            close(fd)
            return nil
        }
        return fd
    }

    /// Sends `bytes` (stopping at the first failure), then reads the reply until the server closes or `readTimeout`.
    public static func send(_ bytes: [UInt8], to port: Int, readTimeout: Double) -> Reply {
        guard let fd = connect(port: port, timeout: readTimeout) else { return Reply(status: nil, body: "", closed: false) }
        defer { close(fd) }
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent <= 0 { break }
            offset += sent
        }
        return read(fd)
    }

    /// `GET path` with `Connection: close`.
    public static func get(port: Int, _ path: String, timeout: Double = 5) -> Reply {
        send(Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8), to: port, readTimeout: timeout)
    }

    /// Starts a request and sends one more header byte every `every` seconds; returns whether the server closed
    /// the connection within `limit` seconds, and after how long.
    public static func trickle(to port: Int, every: Double, for limit: Double) -> (closed: Bool, after: Double) {
        let start = Date()
        guard let fd = connect(port: port, timeout: 2) else { return (false, 0) }
        defer { close(fd) }
        var head = Array("GET /healthz HTTP/1.1\r\nX-Slow: ".utf8)
        _ = head.withUnsafeMutableBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        while Date().timeIntervalSince(start) < limit {
            var byte = UInt8(ascii: "a")
            if Glibc.send(fd, &byte, 1, Int32(MSG_NOSIGNAL)) <= 0 { return (true, Date().timeIntervalSince(start)) }
            var pending = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&pending, 1, Int32(every * 1000)) > 0 {
                // Readable: the server answered or closed; either way it is not waiting for us any more.
                var buffer = [UInt8](repeating: 0, count: 4096)
                let got = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
                if got <= 0 { return (true, Date().timeIntervalSince(start)) }
            }
        }
        return (false, Date().timeIntervalSince(start))
    }

    /// Reads until end of file, a reset, or the receive timeout, and parses what came.
    public static func read(_ fd: Int32) -> Reply {
        var data = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65536)
        var closed = false
        while data.count < 1 << 20 {
            let got = recv(fd, &buffer, buffer.count, 0)
            if got > 0 {
                data += buffer[0..<got]
                continue
            }
            closed = got == 0 || errno == ECONNRESET || errno == EPIPE
            break
        }
        let text = String(decoding: data, as: UTF8.self)
        let status = text.hasPrefix("HTTP/1.1 ") ? Int(text.dropFirst(9).prefix(3)) : nil
        let split = text.range(of: "\r\n\r\n")
        let body = split.map { String(text[$0.upperBound...]) } ?? ""
        return Reply(status: status, body: body, head: split.map { String(text[..<$0.lowerBound]) } ?? text, closed: closed)
    }

    /// The value of one sample line in a Prometheus exposition.
    public static func sample(_ exposition: String, _ name: String) -> Double? {
        for line in exposition.split(separator: "\n") where line.hasPrefix(name + " ") {
            return Double(line.dropFirst(name.count + 1))
        }
        return nil
    }
}

/// Counts of this host's IPv4 TCP sockets (`/proc/net/tcp`) by local port and state.
public enum TCPTable {
    public enum State: String {
        case established = "01"
        case closeWait = "08"
    }

    public static func count(localPort: Int, state: State) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/net/tcp", encoding: .utf8) else { return 0 }
        var count = 0
        for line in text.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ")
            guard fields.count > 3, let colon = fields[1].lastIndex(of: ":") else { continue }
            if Int(fields[1][fields[1].index(after: colon)...], radix: 16) == localPort, fields[3] == state.rawValue { count += 1 }
        }
        return count
    }
}
