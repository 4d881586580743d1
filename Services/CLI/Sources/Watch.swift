import ArgumentParser
import Foundation
import Glibc
import Messaging
import Runtime
import UnixSignals
import ZMQ

extension Baton {
    /// `baton watch`: follow the status bus.
    struct Watch: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print status events from the bus as they come (connects to endpoints.status_out).",
            discussion: ServiceOptions.configurationHelp
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
            let context = Context()
            let stream = try await EventStream(context: context, endpoint: configuration.endpoints.statusOut, prefixes: types)
            let formatter = EventFormatter()
            // On a terminal, progress is a live line of bars at the bottom; piped, every event is a plain line.
            let live = !json && isatty(STDOUT_FILENO) == 1
            // Stop cleanly on Ctrl-C or SIGTERM.
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    var board = ProgressBoard()
                    while true {
                        let event = try await stream.next()
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
                group.addTask {
                    for await _ in await UnixSignalsSequence(trapping: .sigint, .sigterm) { return }
                }
                _ = try await group.next()
                group.cancelAll()
            }
            if live { Console.write("\n") }
            await stream.close()
        }
    }
}
