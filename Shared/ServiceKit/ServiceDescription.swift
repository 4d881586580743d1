public import Config

/// What the shared machinery needs to know about one service, given by the service itself (each service
/// library defines its own, e.g. `ServiceDescription.processor`), so that no shared code names a service.
///
/// ``ServiceRunner`` takes it to name the process, pick its metrics port and pid file, and check, before
/// anything is created, what the configuration names outside itself; `baton up` runs the same checks for every
/// service it will start.
public struct ServiceDescription: Sendable {
    /// An endpoint the service binds, with the key it is configured under (e.g. `endpoints.runs`).
    public typealias BoundEndpoint = (key: String, endpoint: String)
    /// A file the service creates or rewrites, with the key that names it (e.g. `store.path`).
    public typealias OwnFile = (key: String, path: String)
    /// The check of the commands a service runs: configuration, process environment, source named in errors.
    public typealias StartupCheck = @Sendable (Configuration, [String: String], String) throws(ConfigurationError) -> Void

    /// The service's name on the bus and in its program's name (`baton-<name>`).
    public let name: String
    /// The metrics port the configuration gives this service (its own port when one was given).
    public let metricsPort: @Sendable (Configuration.Metrics) -> Int
    /// How many ports above the configured one to try when it is taken, unless the process was given its own.
    public let metricsPortSearch: Int
    /// The folders under `data_dir` the service writes into, besides `run` (its pid file's).
    public let dataFolders: [String]
    /// The files the service writes, besides those in ``dataFolders``.
    public let files: @Sendable (Configuration) -> [OwnFile]
    /// The endpoints the service binds (the others it connects to, which needs nothing local).
    public let boundEndpoints: @Sendable (Configuration.Endpoints) -> [BoundEndpoint]
    /// The name of the pid file under `<data_dir>/run`, from the instance's name.
    public let pidName: @Sendable (_ instance: String) -> String
    /// Checks that the commands the service runs can be started; nothing for a service that runs none.
    public let checkCommands: StartupCheck

    /// Describes a service.
    /// - Parameters:
    ///   - name: The name on the bus, e.g. `scheduler`.
    ///   - metricsPort: Its port from the `metrics` settings, e.g. `{ $0.port(\.scheduler) }`.
    ///   - metricsPortSearch: How many ports above it to try when it is taken.
    ///   - dataFolders: The folders under `data_dir` it writes into (`run` is added).
    ///   - files: The files it writes elsewhere.
    ///   - boundEndpoints: The endpoints it binds.
    ///   - pidName: Its pid file's name; by default the service's name (one instance per data directory).
    ///   - checkCommands: The check of the commands it runs.
    public init(
        name: String,
        metricsPort: @escaping @Sendable (Configuration.Metrics) -> Int,
        metricsPortSearch: Int = 0,
        dataFolders: [String] = [],
        files: @escaping @Sendable (Configuration) -> [OwnFile] = { _ in [] },
        boundEndpoints: @escaping @Sendable (Configuration.Endpoints) -> [BoundEndpoint] = { _ in [] },
        pidName: (@Sendable (_ instance: String) -> String)? = nil,
        checkCommands: @escaping StartupCheck = { _, _, _ in }
    ) {
        self.name = name
        self.metricsPort = metricsPort
        self.metricsPortSearch = metricsPortSearch
        self.dataFolders = dataFolders
        self.files = files
        self.boundEndpoints = boundEndpoints
        self.pidName = pidName ?? { _ in name }
        self.checkCommands = checkCommands
    }

    /// The program's name, e.g. `baton-processor`.
    public var program: String { "baton-\(name)" }

    /// Everything the service checks before it starts: ``checkPaths(_:source:)`` then ``checkCommands``.
    /// - Parameters:
    ///   - configuration: The validated configuration.
    ///   - environment: The process environment (its `PATH` finds commands).
    ///   - source: The file named in errors.
    public func checkStartup(_ configuration: Configuration, environment: [String: String], source: String) throws(ConfigurationError) {
        try checkPaths(configuration, source: source)
        try checkCommands(configuration, environment, source)
    }

    /// Checks that the service can write what it writes: `data_dir` and the folders it keeps there, its other
    /// files, and the folders of the `ipc://` endpoints it binds. Creates nothing.
    public func checkPaths(_ configuration: Configuration, source: String) throws(ConfigurationError) {
        func fail(_ field: String, _ problem: String) -> ConfigurationError {
            ConfigurationError(source: source, field: field, problem: problem)
        }
        let dataDirectory = configuration.dataDirectory
        if let problem = PathCheck.directory(dataDirectory) { throw fail("data_dir", problem) }
        for folder in ["run"] + dataFolders {
            if let problem = PathCheck.directory(PathCheck.join(dataDirectory, folder)) { throw fail("data_dir", problem) }
        }
        for (key, path) in files(configuration) {
            if let problem = PathCheck.file(path) { throw fail(key, problem) }
        }
        for (key, endpoint) in boundEndpoints(configuration.endpoints) where endpoint.hasPrefix("ipc://") {
            if let problem = PathCheck.socket(String(endpoint.dropFirst("ipc://".count))) {
                throw fail(key, "\(endpoint): \(problem)")
            }
        }
    }
}
