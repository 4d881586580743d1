import ArgumentParser
import Foundation
import Glibc
import LoggerService
import ProcessorService
import SchedulerService
import AlgorithmService
import Messaging
import Config
import ServiceKit
import Commands
import UnixSignals
import ZMQ

extension Baton {
    /// `baton up`: the whole stack on this machine.
    struct Up: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the whole stack here: logger, scheduler, algorithm and processors, restarted if they die.",
            discussion: """
                Without --config (or $BATON_CONFIG), runs the built-in demo: the demo algorithm every 10 s, two \
                processors, SQLite under ./data. The logger starts first, the others once it answers on its query \
                endpoint (its bus is up), or after 10 s without an answer, which is printed. Prints one line per status \
                event. Ctrl-C or SIGTERM stops every \
                service (SIGTERM, then SIGKILL after 10 s) and waits for them; if baton up itself is killed, the \
                services stop too. Each service's standard error goes to <data_dir>/logs/<service>.stderr.log (restarts \
                append to it); the previous baton up's file is kept as <service>.stderr.log.1, and the two before as .2 \
                and .3.

                \(ServiceOptions.configurationHelp)
                """
        )

        @OptionGroup var options: ServiceOptions

        @Option(help: ArgumentHelp("How many processors to start (overrides processor.count).", valueName: "n"))
        var processors: Int?

        @Flag(help: "Print each event as one line of JSON.")
        var json = false

        @Flag(help: "Also print heartbeats and debug-level log events.")
        var verbose = false

        func run() async throws {
            let environment = ProcessInfo.processInfo.environment
            let (configuration, configPath) = try loadConfiguration(environment: environment)
            // Every service checks its folders and commands when it starts; checked here first, a problem is one
            // clear error (status 2) instead of a child exiting and being restarted over and over.
            let services: [ServiceDescription] = [.logger, .scheduler, .algorithm, .processor]
            for service in services where service.name != "processor" || (processors ?? configuration.processor.count) > 0 {
                do {
                    try service.checkStartup(configuration, environment: environment, source: configPath)
                } catch {
                    Console.error("baton up: configuration error: \(error)")
                    throw ExitCode(2)
                }
            }
            let binaries = try Self.binaryDirectory()
            let logDirectory = (configuration.dataDirectory as NSString).appendingPathComponent("logs")
            try FileManager.default.createDirectory(atPath: logDirectory, withIntermediateDirectories: true)
            let upLock = try await Self.claim(dataDirectory: configuration.dataDirectory)
            defer { close(upLock) }
            // The lifeline: every child reads its read end; only this process holds the write end.
            let lifeline = try LifelinePipe.make()
            defer {
                close(lifeline.write)
                close(lifeline.read)
            }

            var childEnvironment = ["BATON_CONFIG": configPath]
            if let level = options.logLevel { childEnvironment["BATON_LOG_LEVEL"] = level }
            let context = try options.clientContext(configuration, command: "up")
            // The supervisor is on the bus too: it announces each child's death at once, so `baton status`
            // shows the service down before its heartbeats would have.
            let publisher = try await StatusPublisher(
                context: context,
                endpoint: configuration.endpoints.statusIn,
                source: "supervisor",
                instance: "\(ProcessInfo.processInfo.hostName):\(getpid())",
                heartbeatInterval: configuration.log.heartbeat
            )
            let supervisor = Supervisor(lifeline: lifeline.read, logDirectory: logDirectory, environment: childEnvironment) { report in
                Self.say(report)
                if case .exited(let child, let status, let delay, let lastError) = report {
                    publisher.publish(
                        EventType.supervisorExited,
                        level: "error",
                        message: "\(child.name) \(status); restarting in \(DurationText.format(delay))",
                        attributes: ["service": child.service, "instance": child.name, "status": status].merging(
                            lastError.map { ["last_error": $0] } ?? [:]
                        ) { $1 }
                    )
                }
            }
            func child(_ name: String, _ executable: String, _ arguments: [String] = []) -> Supervisor.Child {
                Supervisor.Child(
                    name: name,
                    service: String(executable.dropFirst("baton-".count)),
                    path: (binaries as NSString).appendingPathComponent(executable),
                    arguments: arguments
                )
            }
            let count = processors ?? configuration.processor.count
            // The algorithm drains its running runs for `algorithm.drain` before it stops: give it that and more.
            var algorithm = child("algorithm", "baton-algorithm")
            algorithm.gracePeriod = configuration.algorithm.drain + .seconds(10)
            let workers =
                [child("scheduler", "baton-scheduler"), algorithm]
                + (0..<count).map { index in
                    // Processors on one host need a metrics port each: processor N gets `metrics.processor + N - 1`.
                    let base = configuration.metrics.processor
                    let port = base > 0 ? ["--metrics-port", "\(min(base + index, 65535))"] : []
                    return child("processor-\(index + 1)", "baton-processor", ["--name", "processor-\(index + 1)"] + port)
                }
            for path in ([child("logger", "baton-logger")] + workers).map(\.path) where !FileManager.default.isExecutableFile(atPath: path)
            {
                Console.error("baton up: \(path) is missing; build with `swift build` first")
                throw ExitCode(1)
            }

            let signals = await UnixSignalsSequence(trapping: .sigint, .sigterm)
            Console.line("baton up: config \(configPath), data in \(configuration.dataDirectory), \(count) processor(s); Ctrl-C stops")
            await withDiscardingTaskGroup { outer in
                outer.addTask { await printEvents(context: context, endpoint: configuration.endpoints.statusOut) }
                outer.addTask { try? await publisher.run() }
                outer.addTask { await supervisor.supervise(child("logger", "baton-logger")) }
                // The logger binds the bus first, so the other services' first events have somewhere to go. It binds
                // `status_in` and `status_out` before `query`, so its answer there says the bus is up. If it does not
                // answer in time (it cannot bind, or keeps dying and is restarted), the others start anyway: they
                // reconnect to the bus on their own once it is up, and what they publish before that is lost.
                let query = configuration.endpoints.query
                let busUp = await Supervisor.waitUntilReady(within: Self.busTimeout) {
                    await Self.loggerAnswers(context: context, on: query)
                }
                if !busUp {
                    Console.line(
                        "baton up: the logger did not answer on \(query) within \(DurationText.format(Self.busTimeout)) (see \(logDirectory)/logger.stderr.log); starting the other services anyway"
                    )
                }
                await withDiscardingTaskGroup { inner in
                    for worker in workers {
                        inner.addTask { await supervisor.supervise(worker) }
                    }
                    for await signal in signals {
                        Console.line("baton up: \(signal), stopping the services")
                        break
                    }
                    inner.cancelAll()
                }
                // Workers are stopped; give the logger a moment to write their last events, then stop it.
                try? await Task.sleep(for: .milliseconds(300))
                outer.cancelAll()
            }
            Console.line("baton up: stopped")
        }

        /// How long `baton up` waits for the logger's bus before it starts the other services anyway.
        static let busTimeout = Duration.seconds(10)

        /// Whether the logger answers a status query on `endpoint` within a second.
        static func loggerAnswers(context: Context, on endpoint: String) async -> Bool {
            let reply = try? await RequestClient(context: context, endpoint: endpoint, timeout: .seconds(1)).ask(
                StatusQuery(),
                expecting: StatusReport.self
            )
            return reply != nil
        }

        private func loadConfiguration(environment: [String: String]) throws -> (Configuration, String) {
            do {
                if let path = options.configPath(environment: environment) {
                    let configuration = try Configuration.load(path: path, environment: environment)
                    return (configuration, URL(fileURLWithPath: path).standardizedFileURL.path)
                }
                var demo = try Configuration.parse(yaml: DemoConfiguration.yaml, source: "built-in demo")
                try demo.applyOverrides(from: environment)
                let directory = URL(fileURLWithPath: demo.dataDirectory).standardizedFileURL.path
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                let path = (directory as NSString).appendingPathComponent("demo.yaml")
                try DemoConfiguration.yaml.write(toFile: path, atomically: true, encoding: .utf8)
                let configuration = try Configuration.load(path: path, environment: environment)
                return (configuration, path)
            } catch let error as ConfigurationError {
                Console.error("baton up: configuration error: \(error)")
                throw ExitCode(2)
            }
        }

        /// Prints the bus's events until cancelled (its subscription is closed then).
        private func printEvents(context: Context, endpoint: String) async {
            let formatter = EventFormatter()
            _ = try? await EventStream.with(context: context, endpoint: endpoint, prefixes: []) { events in
                while let event = try? await events.next() {
                    if json {
                        Console.line(String(decoding: event.jsonLine, as: UTF8.self))
                    } else if verbose || Self.isInteresting(event) {
                        Console.line(formatter.line(event))
                    }
                }
            }
        }

        /// Events shown by default: everything but heartbeats and debug/trace logs.
        static func isInteresting(_ event: StatusEvent) -> Bool {
            event.type != EventType.serviceHeartbeat && event.type != "log.debug" && event.type != "log.trace"
        }

        private static func say(_ report: Supervisor.Report) {
            switch report {
            case .started(let name):
                Console.line("baton up: starting \(name)")
            case .exited(let child, let status, let delay, let lastError):
                var line = "baton up: \(child.name) \(status); restarting in \(DurationText.format(delay))"
                if let lastError { line += "\n    last error: \(lastError)" }
                Console.line(line)
            case .failedToStart(let name, let error, let delay):
                Console.line("baton up: cannot start \(name): \(error); retrying in \(DurationText.format(delay))")
            }
        }

        /// Makes sure this is the only `baton up` for the data directory and no service of an earlier one runs.
        ///
        /// Holds `<data_dir>/run/up.pid` (returned: keep it open). Another live `baton up` holding it → refuse.
        /// Services still holding their pid files: left by a dead `baton up` (their supervisor is gone) → stopped
        /// (SIGTERM, SIGKILL after 5 s); started by hand or by another live process → refuse, naming them.
        static func claim(dataDirectory: String) async throws -> Int32 {
            let path = PidFile.path(dataDirectory: dataDirectory, name: "up")
            let lock: Int32
            do {
                lock = try PidFile.acquire(path: path, program: "baton up", supervisor: nil)
            } catch let held as PidFile.Held {
                let pid = held.info.map { "pid \($0.pid)" } ?? "unknown pid"
                Console.error("baton up: another baton up (\(pid)) is running with data dir \(dataDirectory); stop it first")
                throw ExitCode(1)
            }
            let directory = PidFile.directory(dataDirectory: dataDirectory)
            var strays: [(path: String, info: PidFile.Info)] = []
            var foreign: [PidFile.Info] = []
            for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
            where name.hasSuffix(".pid") && name != "up.pid" {
                let file = (directory as NSString).appendingPathComponent(name)
                guard PidFile.isHeld(path: file), let info = PidFile.read(path: file) else {
                    try? FileManager.default.removeItem(atPath: file)  // its process is gone
                    continue
                }
                if let supervisor = info.supervisor, kill(supervisor, 0) != 0, errno == ESRCH {
                    strays.append((file, info))
                } else {
                    foreign.append(info)
                }
            }
            if !foreign.isEmpty {
                let names = foreign.map { info in
                    "\(info.program) (pid \(info.pid)\(info.supervisor.map { ", started by pid \($0)" } ?? ", started by hand"))"
                }
                Console.error("baton up: already running with data dir \(dataDirectory): \(names.joined(separator: ", ")); stop them first")
                close(lock)
                throw ExitCode(1)
            }
            for stray in strays {
                Console.line(
                    "baton up: stopping \(stray.info.program) (pid \(stray.info.pid)), left running by an earlier baton up (pid \(stray.info.supervisor ?? 0))"
                )
                kill(stray.info.pid, SIGTERM)
            }
            let deadline = ContinuousClock.now + .seconds(5)
            while strays.contains(where: { PidFile.isHeld(path: $0.path) }), ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(50))
            }
            for stray in strays where PidFile.isHeld(path: stray.path) {
                kill(stray.info.pid, SIGKILL)
            }
            let killDeadline = ContinuousClock.now + .seconds(2)
            while strays.contains(where: { PidFile.isHeld(path: $0.path) }), ContinuousClock.now < killDeadline {
                try? await Task.sleep(for: .milliseconds(50))
            }
            return lock
        }

        /// The directory holding this `baton` binary and the service binaries built beside it.
        static func binaryDirectory() throws -> String {
            let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
            return (URL(fileURLWithPath: executable).standardizedFileURL.path as NSString).deletingLastPathComponent
        }
    }
}
