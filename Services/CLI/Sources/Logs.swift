import ArgumentParser
import Foundation
import LoggerService
import Messaging
import Config
import ServiceKit

extension Baton {
    /// `baton logs`: read the services' logs that the logger collected.
    struct Logs: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the services' log records from <data_dir>/logs/events.jsonl (and its rotated files), oldest first.",
            discussion: """
                Run it where baton-logger runs. --follow starts with the last records, like tail -f (-n, default 10; \
                -n 0 prints only new ones), then keeps printing new records as they are written. Without --follow, \
                the whole history, or its last -n records.
                """
        )

        static let levels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]

        @OptionGroup var options: ServiceOptions

        @Flag(help: "Keep printing new records as they arrive (after the last -n ones).")
        var follow = false

        @Option(
            name: [.customShort("n"), .customLong("lines")],
            help: ArgumentHelp("Print only the last N records first (with --follow: 10 unless given; 0: only new ones).", valueName: "N")
        )
        var lines: Int?

        @Option(help: ArgumentHelp("Only records from this service: scheduler, algorithm, processor, logger.", valueName: "name"))
        var service: String?

        @Option(
            help: ArgumentHelp(
                "Only records at this level or above: trace, debug, info, notice, warning, error, critical.",
                valueName: "level"
            )
        )
        var level: String?

        @Option(help: ArgumentHelp("Only records about this run.", valueName: "run-id"))
        var run: String?

        @Flag(help: "Print each record as its JSON line.")
        var json = false

        func validate() throws {
            if let lines, lines < 0 { throw ValidationError("-n must be 0 or more (got \(lines))") }
            if let level, !Self.levels.contains(level) {
                throw ValidationError("--level must be one of \(Self.levels.joined(separator: ", ")) (got \"\(level)\")")
            }
        }

        func run() async throws {
            let configuration = try options.loadConfiguration(command: "logs")
            let path = LoggerService.logPath(configuration)
            let minimum = level.flatMap { Self.levels.firstIndex(of: $0) } ?? 0
            let formatter = EventFormatter()
            let render: (Data) -> String? = { line in
                guard let event = try? Timestamp.decoder().decode(StatusEvent.self, from: line), event.type.hasPrefix("log.") else {
                    return nil
                }
                if let service, event.source != service { return nil }
                if let run, event.run != run { return nil }
                if (Self.levels.firstIndex(of: event.level ?? "info") ?? 0) < minimum { return nil }
                return json ? String(decoding: line, as: UTF8.self) : formatter.line(event)
            }
            let show: (Data) -> Void = { line in render(line).map(Console.line) }
            var files = EventLogWriter.files(path, keep: configuration.log.keep)
            if files.isEmpty && !follow {
                Console.error("baton logs: no log at \(path) (is baton-logger running with this configuration?)")
                throw ExitCode(1)
            }
            let current = files.popLast()
            var offset: UInt64 = 0
            if let last = lines ?? (follow ? 10 : nil) {
                // Like tail: the last records that pass the filters, from the rotated files on if need be.
                var tail = Tail(limit: last)
                if last > 0 { for file in files { Self.lines(of: file, from: 0).lines.forEach { render($0).map { tail.append($0) } } } }
                if let current {
                    offset = Self.lines(of: current, from: 0) { line in if last > 0 { render(line).map { tail.append($0) } } }
                }
                tail.lines.forEach(Console.line)
            } else {
                for file in files { Self.lines(of: file, from: 0).lines.forEach(show) }
                if let current { offset = Self.lines(of: current, from: 0, each: show) }
            }
            guard follow else { return }
            while !Task.isCancelled {
                try await Task.sleep(for: .milliseconds(250))
                let size = ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? UInt64) ?? 0
                if size < offset { offset = 0 }  // rotated: start the new file from its beginning
                if size > offset { offset = Self.lines(of: path, from: offset, each: show) }
            }
        }

        /// The last `limit` lines given to it, in order.
        struct Tail {
            let limit: Int
            private var ring: [String] = []
            private var next = 0

            init(limit: Int) { self.limit = limit }

            mutating func append(_ line: String) {
                guard limit > 0 else { return }
                if ring.count < limit {
                    ring.append(line)
                } else {
                    ring[next] = line
                }
                next = (next + 1) % limit
            }

            var lines: [String] { ring.count < limit ? ring : Array(ring[next...] + ring[..<next]) }
        }

        /// Reads complete lines of a file from a byte offset; returns them and the offset after the last one.
        static func lines(of path: String, from offset: UInt64) -> (lines: [Data], end: UInt64) {
            guard let handle = FileHandle(forReadingAtPath: path) else { return ([], offset) }
            defer { try? handle.close() }
            try? handle.seek(toOffset: offset)
            let data = (try? handle.readToEnd()) ?? Data()
            guard let last = data.lastIndex(of: 0x0A) else { return ([], offset) }
            let complete = data[data.startIndex...last]
            let lines = complete.split(separator: 0x0A).map { Data($0) }
            return (lines, offset + UInt64(complete.count))
        }

        static func lines(of path: String, from offset: UInt64, each: (Data) -> Void) -> UInt64 {
            let (lines, end) = lines(of: path, from: offset)
            lines.forEach(each)
            return end
        }
    }
}
