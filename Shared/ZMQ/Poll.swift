import CZMQ
import Glibc

/// Readiness flags for ``poll(_:timeout:)``.
public struct PollEvents: OptionSet, Sendable {
    public let rawValue: Int16
    public init(rawValue: Int16) { self.rawValue = rawValue }
    /// A message (or bytes, for a file descriptor) can be read.
    public static let readable = PollEvents(rawValue: Int16(ZMQ_POLLIN))
    /// A message can be written without blocking.
    public static let writable = PollEvents(rawValue: Int16(ZMQ_POLLOUT))
    /// An error condition (file descriptors only).
    public static let error = PollEvents(rawValue: Int16(ZMQ_POLLERR))
}

/// One socket or file descriptor to wait on, and, after polling, what it is ready for.
public struct PollItem {
    var socket: UnsafeMutableRawPointer?
    var fd: Int32
    /// The events asked for.
    public var events: PollEvents
    /// The events that happened, filled in by ``poll(_:timeout:)``.
    public var ready: PollEvents = []

    init(socket: UnsafeMutableRawPointer?, fd: Int32, events: PollEvents) {
        self.socket = socket
        self.fd = fd
        self.events = events
    }

    /// A poll item for a plain file descriptor (a pipe, an eventfd, a timerfd).
    public static func fileDescriptor(_ fd: Int32, events: PollEvents) -> PollItem {
        PollItem(socket: nil, fd: fd, events: events)
    }
}

/// Waits until one of `items` is ready or `timeout` passes, blocking the calling thread (never spinning).
///
/// A signal (EINTR) does not shorten or lengthen the wait: the remaining time is recomputed and the wait resumed.
/// - Parameters:
///   - items: What to wait on; each item's `ready` is filled in.
///   - timeout: How long to wait at most; `nil` waits until something is ready.
/// - Returns: The number of ready items (0 on timeout).
@discardableResult
public func poll(_ items: inout [PollItem], timeout: Duration?) throws(ZMQError) -> Int {
    var raw = items.map { item in
        var entry = zmq_pollitem_t()
        entry.socket = item.socket
        entry.fd = item.fd
        entry.events = item.events.rawValue
        return entry
    }
    let clock = ContinuousClock()
    let deadline = timeout.map { clock.now.advanced(by: $0) }
    while true {
        var milliseconds: Int = -1
        if let deadline {
            let remaining = clock.now.duration(to: deadline)
            milliseconds = remaining <= .zero ? 0 : Int(SocketOption.milliseconds(remaining + .microseconds(999)))
        }
        let count = zmq_poll(&raw, Int32(raw.count), milliseconds)
        if count >= 0 {
            for index in items.indices { items[index].ready = PollEvents(rawValue: raw[index].revents) }
            return Int(count)
        }
        let error = ZMQError.last("zmq_poll")
        if error.code != EINTR { throw error }
    }
}
