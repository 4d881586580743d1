import ArgumentParser
import Foundation
import Glibc
import Messaging
import Config
import ServiceKit
import UnixSignals
import ZMQ

extension Baton {
    /// `baton watch`: follow the status bus.
    struct Watch: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print status events from the bus as they come (connects to endpoints.status_out).",
            discussion: """
                On a terminal, the last line holds a progress bar per run in flight and one per stage of each run \
                whose pipeline is in flight (parts done/total).

                Every service heartbeats (log.heartbeat): when no event arrives for two heartbeat intervals plus a \
                second, it says it cannot reach the logger, and says so again when events are back (on standard \
                error with --json).

                \(ServiceOptions.configurationHelp)
                """
        )

        @OptionGroup var options: ServiceOptions

        @Flag(help: "Print each event as one line of JSON, as published.")
        var json = false

        @Option(
            name: .customLong("type"),
            help: ArgumentHelp("Only events whose type starts with this (repeatable), e.g. run. or log.error.", valueName: "prefix")
        )
        var types: [String] = []

        @Option(help: ArgumentHelp("Only events of this job.", valueName: "name"))
        var job: String?

        @Flag(help: "Also print heartbeats and debug-level log events.")
        var verbose = false

        func run() async throws {
            let configuration = try options.loadConfiguration(command: "watch")
            let context = try options.clientContext(configuration, command: "watch")
            let formatter = EventFormatter()
            // On a terminal, progress is a live line of bars at the bottom; piped, every event is a plain line.
            let live = !json && isatty(STDOUT_FILENO) == 1
            let endpoint = configuration.endpoints.statusOut
            let silence = configuration.log.heartbeat * 2 + .seconds(1)
            let liveness = SharedBusLiveness(BusLiveness(silence: silence, now: .now))
            let say: @Sendable (BusLiveness.Change) -> Void = { change in
                let text =
                    switch change {
                    case .unreachable:
                        "baton watch: cannot reach the logger at \(endpoint): no status events for \(DurationText.format(silence)) "
                            + "(is baton-logger running?); waiting for it"
                    case .back: "baton watch: the logger at \(endpoint) is back; events are flowing again"
                    }
                if json {
                    Console.error(text)
                } else if live {
                    Console.write("\r\u{1B}[K" + text + "\n")
                } else {
                    Console.line(text)
                }
            }
            // Stop cleanly on Ctrl-C or SIGTERM.
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    while true {
                        try await Task.sleep(for: .milliseconds(250))
                        if let change = liveness.check() { say(change) }
                    }
                }
                group.addTask {
                    try await EventStream.with(context: context, endpoint: endpoint, prefixes: types) { stream in
                        var board = ProgressBoard()
                        while true {
                            let event = try await stream.next()
                            if let change = liveness.heard() { say(change) }
                            // Heartbeats arrive whatever the --type filter (they tell a quiet bus from a dead one).
                            if !types.isEmpty, !types.contains(where: { event.type.hasPrefix($0) }) { continue }
                            if let job, event.job != job { continue }
                            if json {
                                Console.line(String(decoding: event.jsonLine, as: UTF8.self))
                                continue
                            }
                            if live {
                                let changed = board.apply(event)
                                if event.type == EventType.runProgress && !verbose {
                                    if changed { Console.write("\r\u{1B}[K" + board.line) }
                                    continue
                                }
                                if verbose || Up.isInteresting(event) {
                                    Console.write("\r\u{1B}[K" + formatter.line(event) + "\n" + board.line)
                                } else if changed {
                                    Console.write("\r\u{1B}[K" + board.line)
                                }
                            } else if verbose || Up.isInteresting(event) {
                                Console.line(formatter.line(event))
                            }
                        }
                    }
                }
                group.addTask {
                    for await _ in await UnixSignalsSequence(trapping: .sigint, .sigterm) { return }
                }
                _ = try await group.next()
                group.cancelAll()
            }
            if live { Console.write("\n") }
        }
    }
}
