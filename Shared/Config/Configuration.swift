import Foundation

/// Everything a Baton deployment is configured with: one YAML file, overridable by environment variables.
///
/// The file is a set of sections, each its own type declaring its keys once (``Setting``): how each is read,
/// which environment variable overrides it and how it is checked. Every service reads the whole file, so that a
/// mistake anywhere (a misspelt key) is reported by whichever service starts first, and by `baton up` before
/// it starts any. See `docs/CONFIGURATION.md` for each key.
public struct Configuration: Sendable, Equatable {
    /// Where raw results, state databases and logs live.
    public var dataDirectory: String = "./data"
    /// Socket endpoints.
    public var endpoints = Endpoints()
    /// Where processors store results.
    public var store = Store()
    /// How processors process results.
    public var processor = Processor()
    /// How the algorithm service runs jobs.
    public var algorithm = Algorithm()
    /// Logging.
    public var log = Log()
    /// How long raw results are kept.
    public var retention = Retention()
    /// Where each service serves `/metrics` and `/healthz`.
    public var metrics = Metrics()
    /// The jobs the scheduler fires.
    public var jobs: [Job] = []
    /// Bounds on message sizes, queues and subscriptions (`limits`).
    public var limits = Limits()
    /// CURVE on `tcp://` sockets (`curve`).
    public var curve = Curve()
    /// Who is told when something goes wrong (`alerts`).
    public var alerts = Alerts()
    /// The logger's web view (`web`).
    public var web = Web()

    /// The default configuration: no jobs, everything on 127.0.0.1.
    public init() {}

    /// The SQLite file processors store into.
    public var storePath: String {
        store.path.isEmpty ? (dataDirectory as NSString).appendingPathComponent("results.sqlite") : store.path
    }

    /// The job with this name.
    public func job(named name: String) -> Job? {
        jobs.first { $0.name == name }
    }
}

extension Configuration: ConfigurationSection {
    /// The file's top level, in the order of the `--help` table of environment variables.
    static let settings: [Setting<Configuration>] = [
        // An empty data_dir from the environment is refused at once; from the file, by `validate`.
        .value("data_dir", \.dataDirectory, env: "BATON_DATA_DIR", parse: { $0.isEmpty ? nil : $0 }),
        .section("endpoints", \.endpoints),
        .section("store", \.store),
        .section("processor", \.processor),
        .section("algorithm", \.algorithm),
        .section("log", \.log),
        .section("retention", \.retention),
        .section("curve", \.curve),
        .section("alerts", \.alerts),
        .section("web", \.web),
        .section("metrics", \.metrics),
        Setting(
            key: "jobs",
            read: { reader, configuration in configuration.jobs = try reader.value("jobs", configuration.jobs) },
            problem: { configuration in Job.firstProblem(in: configuration.jobs).map { ("jobs\($0.field)", $0.problem) } }
        ),
        .section("limits", \.limits),
    ]
}

extension Configuration: Decodable {
    public init(from decoder: any Decoder) throws {
        try self.init(reading: decoder)
    }
}
