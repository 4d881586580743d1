public import Logging

/// A swift-log handler that publishes every record on the status bus as a `log.<level>` event.
///
/// Metadata `job`, `run` and `part` fill the event's fields of the same names; other metadata
/// becomes attributes. Combine with a stderr handler through `MultiplexLogHandler`.
public struct BusLogHandler: LogHandler {
    private let publisher: StatusPublisher
    /// Metadata attached to every record of this logger.
    public var metadata: Logger.Metadata = [:]
    /// The lowest level published.
    public var logLevel: Logger.Level = .info

    /// Creates a handler that publishes through `publisher`.
    public init(publisher: StatusPublisher) {
        self.publisher = publisher
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var all = metadata
        if let explicit = event.metadata { all.merge(explicit) { $1 } }
        if let error = event.error { all["error"] = "\(error)" }
        let job = all.removeValue(forKey: "job").map { "\($0)" }
        let run = all.removeValue(forKey: "run").map { "\($0)" }
        let part = all.removeValue(forKey: "part").flatMap { Int("\($0)") }
        let attributes = all.isEmpty ? nil : all.mapValues { "\($0)" }
        publisher.publish(
            "log.\(event.level.rawValue)",
            job: job,
            run: run,
            part: part,
            level: event.level.rawValue,
            message: event.message.description,
            attributes: attributes
        )
    }
}
