import ArgumentParser
import Foundation
import LoggerService
import Messaging
import Runtime

extension Baton {
    /// `baton logs`: read the services' logs that the logger collected.
    struct Logs: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the services' log records from <data_dir>/logs/events.jsonl (and its rotated files), oldest first.",
            discussion: "Run it where baton-logger runs. --follow keeps printing new records as they are written."
        )

        static let levels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]

        @OptionGroup var options: ServiceOptions

        @Flag(help: "Keep printing new records as they arrive.")
        var follow = false

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
            if let level, !Self.levels.contains(level) {
                throw ValidationError("--level must be one of \(Self.levels.joined(separator: ", ")) (got \"\(level)\")")
            }
        }

        func run() async throws {
            let configuration = try options.loadConfiguration(command: "logs")
            let path = LoggerService.logPath(configuration)
            let minimum = level.flatMap { Self.levels.firstIndex(of: $0) } ?? 0
            let formatter = EventFormatter()
            let show: (Data) -> Void = { line in
                guard let event = try? Timestamp.decoder().decode(StatusEvent.self, from: line), event.type.hasPrefix("log.") else {
                    return
                }
                if let service, event.source != service { return }
                if let run, event.run != run { return }
                if (Self.levels.firstIndex(of: event.level ?? "info") ?? 0) < minimum { return }
                Console.line(json ? String(decoding: line, as: UTF8.self) : formatter.line(event))
            }
            var files = EventLogWriter.files(path, keep: configuration.log.keep)
            if files.isEmpty && !follow {
                Console.error("baton logs: no log at \(path) (is baton-logger running with this configuration?)")
                throw ExitCode(1)
            }
            let current = files.popLast()
            for file in files { Self.lines(of: file, from: 0).lines.forEach(show) }
            var offset: UInt64 = 0
            if let current { offset = Self.lines(of: current, from: 0, each: show) }
            guard follow else { return }
            while !Task.isCancelled {
                try await Task.sleep(for: .milliseconds(250))
                let size = ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? UInt64) ?? 0
                if size < offset { offset = 0 }  // rotated: start the new file from its beginning
                if size > offset { offset = Self.lines(of: path, from: offset, each: show) }
            }
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
