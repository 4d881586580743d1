import ArgumentParser
import CPlatform
public import Config
import Foundation
import Glibc
public import Logging
public import MetricsHTTP
public import ServiceLifecycle
public import ZMQ
import UnixSignals

/// What a service needs from its surroundings, built once by ``ServiceRunner``.
public struct ServiceEnvironment: Sendable {
    /// The validated configuration.
    public let configuration: Configuration
    /// The ZeroMQ context shared by the service's sockets.
    public let context: Context
    /// The status bus publisher.
    public let publisher: StatusPublisher
    /// The service's logger (stderr and the bus).
    public let logger: Logger
    /// This instance's name, e.g. `host:1234`.
    public let instance: String
    /// Where the service's metrics go (served on `/metrics` when it has a metrics port).
    public let metrics: ServiceMetrics
    /// Where the service may put routes served on its metrics port beside `/metrics` (the logger's web view).
    public let web = WebRoutesSlot()

    /// Runs a service's parts (its receivers, senders, workers) until they end, as a `ServiceGroup` inside the
    /// service: graceful shutdown reaches it from the outer group (a task-local) and stops the parts in reverse
    /// order, each once the one after it has stopped. A service calls this inside the scopes of its sockets,
    /// so every user of a socket has stopped before the socket closes.
    public func runParts(_ parts: [any Service]) async throws {
        try await ServiceGroup(configuration: .init(services: parts, logger: logger)).run()
    }

    /// The rejector for one of the service's receiving sockets: on the bus, counted, rate-limited per `limits`.
    public func rejector(socket: String) -> MessageRejector {
        MessageRejector(
            socket: socket,
            publisher: publisher,
            logger: logger,
            metrics: metrics,
            maxPerSecond: configuration.limits.rejectionsPerSecond
        )
    }
}

/// Starts a Baton service process: configuration, parent watch, status publisher, logging, and a
/// `ServiceGroup` that stops everything on SIGTERM or SIGINT.
public enum ServiceRunner {
    /// An instance's name when none is given: `host:pid`, or the host name alone for a container's main process
    /// (pid 1), whose pid tells nothing: scaled compose replicas would all be `<container id>:1`, and a restarted
    /// container keeps its name, so its restarts show as the same instance's.
    public static func defaultInstance(host: String, pid: Int32) -> String {
        pid == 1 ? host : "\(host):\(pid)"
    }

    /// Runs a service until it is stopped.
    /// - Parameters:
    ///   - service: What the service is: its name, metrics port, pid file, what it binds and checks.
    ///   - options: The parsed common options.
    ///   - instance: This instance's name; defaults to `$BATON_INSTANCE` (set by `baton up`), else
    ///     ``defaultInstance(host:pid:)``.
    ///   - metricsPort: The `--metrics-port` option, if given.
    ///   - makeServices: Builds the service (state opened, nothing running yet). A service opens its sockets in
    ///     its `run()`, scoped (`Context.withSocket`), and runs its parts inside those scopes with
    ///     ``ServiceEnvironment/runParts(_:)``, so they stop before the sockets close.
    public static func run(
        _ service: ServiceDescription,
        options: ServiceOptions,
        instance: String? = nil,
        metricsPort: Int? = nil,
        makeServices: (ServiceEnvironment) async throws -> [any Service]
    ) async throws {
        // A child command that exits without reading its input must not kill the service with SIGPIPE:
        // the write fails with EPIPE instead, and the command's exit status tells what happened.
        signal(SIGPIPE, SIG_IGN)
        raiseFileLimit()
        let name = service.name
        let environment = ProcessInfo.processInfo.environment
        var configuration = try options.loadConfiguration(program: "baton-\(name)", environment: environment)
        if let metricsPort {
            guard (0...65535).contains(metricsPort) else {
                FileHandle.standardError.write(Data("baton-\(name): --metrics-port must be from 0 to 65535 (got \(metricsPort))\n".utf8))
                throw ExitCode(2)
            }
            configuration.metrics.ownPort = metricsPort
        }
        // What the configuration names outside itself (folders, files, ipc sockets, commands), checked before
        // anything is created: a problem is a configuration error naming its key, exit status 2.
        let source = options.configPath(environment: environment) ?? "configuration"
        let problem: ConfigurationError? =
            switch Result(catching: { () throws(ConfigurationError) in
                try service.checkStartup(configuration, environment: environment, source: source)
            }) {
            case .success: nil
            case .failure(let error): error
            }
        if let problem { throw configurationError(problem, program: "baton-\(name)", source: source) }
        // CURVE for every tcp:// socket: the key pair (made at first start when the stack is self-contained),
        // the server keys and the allow-list, checked before anything is created.
        let identity: CurveIdentity?
        do {
            identity = try CurveIdentity.load(configuration)
        } catch {
            throw configurationError(error, program: "baton-\(name)", source: source)
        }
        let port = service.metricsPort(configuration.metrics)
        let metrics = port > 0 ? ServiceMetrics.prometheus() : .disabled
        watchParent(environment: environment)

        let instance =
            instance ?? environment["BATON_INSTANCE"].flatMap { $0.isEmpty ? nil : $0 }
            ?? defaultInstance(host: ProcessInfo.processInfo.hostName, pid: getpid())
        // One instance per name and data directory: held (flock) while this process runs, checked by `baton up`.
        let pidName = service.pidName(instance)
        let pidPath = PidFile.path(dataDirectory: configuration.dataDirectory, name: pidName)
        let pidFile: Int32
        do {
            pidFile = try PidFile.acquire(
                path: pidPath,
                program: "baton-\(name)",
                supervisor: environment["BATON_SUPERVISOR_PID"].flatMap { Int32($0) }
            )
        } catch let held as PidFile.Held {
            let other = held.info.map { "pid \($0.pid)" } ?? "another process"
            FileHandle.standardError.write(
                Data(
                    "baton-\(name): \(pidName) is already running (\(other)) with data dir \(configuration.dataDirectory); stop it first\n"
                        .utf8
                )
            )
            throw ExitCode(1)
        }
        defer { close(pidFile) }
        let refusals = AuthRefusals()
        let context = Context(curve: identity?.settings(refused: { refusals.record($0) }, handshakeFailed: { refusals.turnedDown($0) }))
        let publisher = try await StatusPublisher(
            context: context,
            endpoint: configuration.endpoints.statusIn,
            source: name,
            instance: instance,
            heartbeatInterval: configuration.log.heartbeat
        )
        let level = Logger.Level(rawValue: configuration.log.level) ?? .info
        LoggingSystem.bootstrap { label in
            // Escaped: records quote text from the wire (errors, excerpts), which must not forge lines.
            var stderr = EscapingLogHandler(StreamLogHandler.standardError(label: label))
            stderr.logLevel = level
            var bus = BusLogHandler(publisher: publisher)
            bus.logLevel = level
            return MultiplexLogHandler([stderr, bus])
        }
        var logger = Logger(label: "baton.\(name)")
        logger[metadataKey: "instance"] = "\(instance)"
        refusals.attach(publisher: publisher, logger: logger, metrics: metrics)
        if let identity {
            logger.info("CURVE on tcp endpoints", metadata: ["key": "\(identity.keys.publicKey)", "allowed": "\(identity.allow.count)"])
        } else {
            for endpoint in CurveIdentity.exposed(configuration.endpoints.all) {
                logger.warning(
                    "CURVE is off and this endpoint is not on loopback: anyone who can reach it can use it (docs/SECURITY.md)",
                    metadata: ["endpoint": "\(endpoint)"]
                )
            }
        }
        let serviceEnvironment = ServiceEnvironment(
            configuration: configuration,
            context: context,
            publisher: publisher,
            logger: logger,
            instance: instance,
            metrics: metrics
        )
        let services: [any Service]
        do {
            services = try await makeServices(serviceEnvironment)
        } catch let error as ConfigurationError {
            // A configuration problem found while building, named by its key.
            logger.critical("cannot start: \(error)")
            throw configurationError(error, program: "baton-\(name)", source: source)
        } catch {
            logger.critical("cannot start: \(error)")
            // Let the critical record reach the bus before exiting.
            await withTaskGroup(of: Void.self) { group in
                group.addTask { try? await publisher.run() }
                try? await Task.sleep(for: .milliseconds(300))
                group.cancelAll()
            }
            throw ExitCode(1)
        }
        var parts: [any Service] = [publisher]
        if port > 0 {
            parts.append(
                MetricsServer(
                    host: configuration.metrics.host,
                    port: port,
                    metrics: metrics,
                    service: name,
                    instance: instance,
                    search: configuration.metrics.ownPort == nil ? service.metricsPortSearch : 0,
                    limits: .init(
                        maxConnections: configuration.metrics.maxConnections,
                        maxHeaderBytes: configuration.metrics.maxHeaderBytes,
                        requestTimeout: configuration.metrics.requestTimeout
                    ),
                    logger: logger,
                    web: serviceEnvironment.web
                )
            )
        }
        let group = ServiceGroup(
            configuration: .init(
                services: (parts + services).map { .init(service: $0) },
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        logger.info("started", metadata: ["config": "\(options.configPath(environment: environment) ?? "defaults")"])
        do {
            try await group.run()
        } catch let error as ConfigurationError {
            // A socket that cannot be bound (services bind when they run, before any of their parts starts),
            // named by its key: exit status 2.
            logger.critical("cannot run: \(error)")
            throw configurationError(error, program: "baton-\(name)", source: source)
        }
    }

    /// Reports a configuration error on standard error (naming the file when the error does not) and returns
    /// the exit status 2 to throw.
    static func configurationError(_ error: ConfigurationError, program: String, source: String) -> ExitCode {
        var error = error
        if error.source.isEmpty { error.source = source }
        FileHandle.standardError.write(Data("\(program): configuration error: \(error)\n".utf8))
        return ExitCode(2)
    }

    /// Raises the soft limit on open files to the hard limit: the default soft limit (often 1024) is what a
    /// crowd of HTTP clients or many ZeroMQ peers would hit first. The HTTP endpoint keeps its own cap
    /// (`metrics.max_connections`) well below it, so ZeroMQ and the store always have descriptors.
    static func raiseFileLimit() {
        var limit = rlimit()
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        guard getrlimit(resource, &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(resource, &limit)
    }

    /// Under a supervisor, stop when the supervisor dies, however it dies.
    ///
    /// `baton up` passes each child the read end of a pipe whose write end only it holds
    /// (`BATON_SUPERVISOR_FD`, its standard input). A dedicated thread (a real thread: Swift's pool threads
    /// come and go) blocks reading it; end-of-file means the supervisor is gone, and the service begins its
    /// graceful shutdown (SIGTERM to itself), and exits hard if it has not exited 0.5 s later. Nothing is lost
    /// by that: every service is designed to survive `kill -9`.
    ///
    /// Without `BATON_SUPERVISOR_FD` but with `BATON_SUPERVISOR_PID`, the kernel's parent-death signal is the
    /// fallback (best effort: Linux ties it to the thread that asked, which may exit).
    static func watchParent(environment: [String: String]) {
        if let text = environment["BATON_SUPERVISOR_FD"], let fd = Int32(text), fd >= 0 {
            // Off standard input, close-on-exec: no command of ours inherits the lifeline.
            let lifeline = fcntl(fd, F_DUPFD_CLOEXEC, 3)
            guard lifeline >= 0 else { exit(1) }
            let null = open("/dev/null", O_RDONLY)
            if null >= 0 {
                dup2(null, fd)
                if null != fd { close(null) }
            }
            let thread = Thread {
                _ = baton_set_thread_name("baton-lifeline")
                var byte: UInt8 = 0
                while true {
                    let got = read(lifeline, &byte, 1)
                    if got == 0 || (got < 0 && errno != EINTR) { break }
                }
                FileHandle.standardError.write(Data("supervisor gone: stopping\n".utf8))
                kill(getpid(), SIGTERM)
                usleep(500_000)
                _exit(1)
            }
            thread.start()
            return
        }
        guard let text = environment["BATON_SUPERVISOR_PID"], let supervisor = Int32(text) else { return }
        _ = baton_set_parent_death_signal(SIGTERM)
        // The supervisor may have died before the call above took effect.
        if getppid() != supervisor { exit(1) }
    }
}
