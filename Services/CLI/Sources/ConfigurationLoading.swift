import Messaging
import ArgumentParser
import Foundation
import Config
import ServiceKit
import Synchronization
import ZMQ

extension ServiceOptions {
    /// Loads the configuration for a `baton` subcommand, or exits with status 2 and the reason.
    func loadConfiguration(command: String) throws -> Configuration {
        try loadConfiguration(program: "baton \(command)")
    }

    /// The ZeroMQ context a `baton` subcommand talks to the services through: with CURVE on, its `tcp://`
    /// sockets use the configuration's key pair and server keys. A key problem exits with status 2.
    func clientContext(_ configuration: Configuration, command: String) throws -> Context {
        do {
            // A refused handshake would otherwise look like a service that does not answer: say it once.
            let told = Mutex(Set<String>())
            let identity = try CurveIdentity.load(configuration)
            return Context(
                curve: identity?.settings(
                    binds: false,
                    handshakeFailed: { endpoint in
                        guard told.withLock({ $0.insert(endpoint).inserted }) else { return }
                        Console.error(
                            "baton \(command): \(endpoint) turned down this key (\(configuration.curveKeyPath)): is it on that service's curve.allow, "
                                + "and curve.server_key that service's key?"
                        )
                    }
                )
            )
        } catch {
            var error = error
            if error.source.isEmpty { error.source = configPath(environment: ProcessInfo.processInfo.environment) ?? "configuration" }
            Console.error("baton \(command): configuration error: \(error)")
            throw ExitCode(2)
        }
    }
}

/// Parses a time option: ISO 8601, with or without fractional seconds and offset.
struct TimeArgument: ExpressibleByArgument {
    var date: Date

    /// An ISO 8601 time, or a duration before now (`7d`, `6h`).
    init?(argument: String) {
        if let date = Timestamp.parse(argument) {
            self.date = date
        } else if let duration = DurationText.parse(argument) {
            self.date = Date().addingTimeInterval(-(duration / .seconds(1)))
        } else {
            return nil
        }
    }

    static var defaultValueDescription: String { "ISO 8601 time" }
}

/// `--job`, `--from`, `--to`: which results a command works on.
struct ResultSelection: ParsableArguments {
    @Option(help: ArgumentHelp("Only results of this job.", valueName: "name"))
    var job: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("Only results with a logical time at or after this (ISO 8601).", valueName: "time"))
    var from: TimeArgument?

    @Option(
        parsing: .unconditional,
        help: ArgumentHelp("Only results with a logical time at or before this (ISO 8601).", valueName: "time")
    )
    var to: TimeArgument?

    /// True when any of the three was given.
    var isEmpty: Bool { job == nil && from == nil && to == nil }
}
