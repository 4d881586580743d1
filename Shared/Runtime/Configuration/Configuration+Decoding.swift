import Foundation
import Messaging
import Scheduling

/// A coding key for any string, so that unknown keys can be found and reported.
struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ string: String) { stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// Reads one YAML mapping strictly: known keys only, typed values, defaults for what is absent.
struct MappingReader {
    let container: KeyedDecodingContainer<AnyKey>

    init(_ decoder: any Decoder, allowed: [String]) throws {
        container = try decoder.container(keyedBy: AnyKey.self)
        for key in container.allKeys where !allowed.contains(key.stringValue) {
            throw ConfigurationError(
                source: "",
                field: Self.path(container.codingPath + [key]),
                problem: "unknown option (known options here: \(allowed.joined(separator: ", ")))"
            )
        }
    }

    /// A field's name, e.g. `jobs[0].every`; an empty key shows as `""`, so that every field has a name.
    static func path(_ keys: [any CodingKey]) -> String {
        keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue.isEmpty ? "\"\"" : $0.stringValue)" }.joined().drop { $0 == "." }
            .description
    }

    func field(_ key: String) -> String { Self.path(container.codingPath + [AnyKey(key)]) }

    func has(_ key: String) -> Bool { container.contains(AnyKey(key)) }

    func value<T: Decodable>(_ key: String, _ fallback: T) throws -> T {
        guard has(key) else { return fallback }
        do {
            // Whole numbers are parsed here, not by Yams: its sexagesimal form (`1:0:0:0:0:0:0:0:0:0:0:0`) and
            // large digits overflow and trap. Only plain decimal numbers, optionally signed, are accepted.
            if T.self == Int.self {
                let text = try container.decode(String.self, forKey: AnyKey(key))
                if let number = Self.integer(text) as? T { return number }
                throw ConfigurationError(source: "", field: field(key), problem: "expected a whole number (got \"\(Self.shown(text))\")")
            }
            if T.self == [String: String].self, let map = try stringMap(key) as? T { return map }
            return try container.decode(T.self, forKey: AnyKey(key))
        } catch {
            if let inner = ConfigurationError.wrapped(in: error) { throw inner }
            throw ConfigurationError(source: "", field: field(key), problem: "expected \(Self.describe(T.self))")
        }
    }

    /// A plain decimal whole number (`42`, `-1`, `+7`, `1_000`); `nil` for anything else or out of range.
    static func integer(_ text: String) -> Int? {
        let digits = text.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "_", with: "")
        return Int(digits, radix: 10)
    }

    /// A value as shown in a message: at most 60 characters.
    static func shown(_ text: String) -> String {
        text.count <= 60 ? text : String(text.prefix(57)) + "..."
    }

    /// A mapping of names to strings (`env`): each value a scalar (a number or true/false is taken as its
    /// text); a list, a mapping or null is an error naming the entry, e.g. `jobs[0].env.MODE`.
    func stringMap(_ key: String) throws -> [String: String] {
        let nested: KeyedDecodingContainer<AnyKey>
        do {
            nested = try container.nestedContainer(keyedBy: AnyKey.self, forKey: AnyKey(key))
        } catch {
            throw ConfigurationError(source: "", field: field(key), problem: "expected a mapping of names to strings, e.g. {MODE: prod}")
        }
        var map: [String: String] = [:]
        for name in nested.allKeys {
            let entry = Self.path(nested.codingPath + [name])
            if (try? nested.decodeNil(forKey: name)) == true {
                throw ConfigurationError(source: "", field: entry, problem: "expected a string, not null (write \"\" for an empty value)")
            }
            guard let text = try? nested.decode(String.self, forKey: name) else {
                throw ConfigurationError(source: "", field: entry, problem: "expected a string (or a number), not a list or a mapping")
            }
            map[name.stringValue] = text
        }
        return map
    }

    func duration(_ key: String, _ fallback: Duration) throws -> Duration {
        guard has(key) else { return fallback }
        let text = try value(key, "")
        guard let duration = DurationText.parse(text) else {
            throw ConfigurationError(
                source: "",
                field: field(key),
                problem: "expected a duration such as 500ms, 10s, 5m or 1h30m, at most about 100 years (got \"\(text)\")"
            )
        }
        return duration
    }

    func date(_ key: String, _ fallback: Date) throws -> Date {
        guard has(key) else { return fallback }
        let text = try value(key, "")
        guard let date = Timestamp.parse(text) else {
            throw ConfigurationError(
                source: "",
                field: field(key),
                problem: "expected an ISO 8601 time such as 2026-01-01T00:00:00Z (got \"\(text)\")"
            )
        }
        return date
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Int.Type: "a whole number"
        case is [String].Type: "a list of strings, e.g. [python3, script.py]"
        case is [String: String].Type: "a mapping of names to strings"
        default: "a value of type \(type)"
        }
    }
}

extension Configuration: Decodable {
    public init(from decoder: any Decoder) throws {
        let reader = try MappingReader(
            decoder,
            allowed: ["data_dir", "endpoints", "store", "processor", "algorithm", "log", "retention", "metrics", "jobs", "limits"]
        )
        self.init()
        dataDirectory = try reader.value("data_dir", dataDirectory)
        endpoints = try reader.value("endpoints", endpoints)
        store = try reader.value("store", store)
        processor = try reader.value("processor", processor)
        algorithm = try reader.value("algorithm", algorithm)
        log = try reader.value("log", log)
        retention = try reader.value("retention", retention)
        metrics = try reader.value("metrics", metrics)
        limits = try reader.value("limits", limits)
        jobs = try reader.value("jobs", jobs)
    }
}

extension Configuration.Endpoints: Decodable {
    public init(from decoder: any Decoder) throws {
        let reader = try MappingReader(
            decoder,
            allowed: ["runs", "control", "results", "acks", "status_in", "status_out", "query", "reports", "algorithm_control"]
        )
        self.init()
        runs = try reader.value("runs", runs)
        control = try reader.value("control", control)
        results = try reader.value("results", results)
        acks = try reader.value("acks", acks)
        statusIn = try reader.value("status_in", statusIn)
        statusOut = try reader.value("status_out", statusOut)
        query = try reader.value("query", query)
        reports = try reader.value("reports", reports)
        algorithmControl = try reader.value("algorithm_control", algorithmControl)
    }
}

extension Configuration.Store: Decodable {
    public init(from decoder: any Decoder) throws {
        let reader = try MappingReader(decoder, allowed: ["path"])
        self.init()
        path = try reader.value("path", path)
    }
}

extension Configuration.Processor: Decodable {
    public init(from decoder: any Decoder) throws {
        let reader = try MappingReader(
            decoder,
            allowed: [
                "count", "command", "input", "workdir", "env", "timeout", "lease", "retries", "backoff", "backoff_max",
            ]
        )
        self.init()
        count = try reader.value("count", count)
        command = try reader.value("command", command)
        let inputText = try reader.value("input", input.rawValue)
        guard let input = Configuration.CommandInput(rawValue: inputText) else {
            throw ConfigurationError(source: "", field: reader.field("input"), problem: "must be stdin or file (got \"\(inputText)\")")
        }
        self.input = input
        workingDirectory = try reader.value("workdir", workingDirectory)
        environment = try reader.value("env", environment)
        timeout = try reader.duration("timeout", timeout)
        lease = try reader.duration("lease", lease)
        retries = try reader.value("retries", retries)
        backoff = try reader.duration("backoff", backoff)
        backoffMax = try reader.duration("backoff_max", backoffMax)
    }
}

extension Configuration.Retention: Decodable {
    public init(from decoder: any Decoder) throws {
        let reader = try MappingReader(decoder, allowed: ["max_age", "max_size"])
        self.init()
        if reader.has("max_age") {
            let text = try reader.value("max_age", "")
            maxAge = text == "forever" ? nil : try reader.duration("max_age", .zero)
        }
        if reader.has("max_size") {
            let text = try reader.value("max_size", "")
            guard let bytes = ByteCount.parse(text) else {
                throw ConfigurationError(
                    source: "",
                    field: reader.field("max_size"),
                    problem: "expected a size such as 500MiB, 10GiB or a number of bytes (got \"\(text)\")"
                )
            }
            maxBytes = bytes
        }
    }
}

/// Sizes as people write them: `1048576`, `512KiB`, `500MiB`, `10GiB`, `1TiB` (also KB, MB, GB as powers of 1000).
public enum ByteCount {
    /// Parses a size in bytes.
    public static func parse(_ text: String) -> Int64? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let digits = trimmed.prefix { $0.isNumber || $0 == "." }
        let unit = trimmed.dropFirst(digits.count).trimmingCharacters(in: .whitespaces)
        guard let value = Double(digits), value >= 0 else { return nil }
        let multipliers: [String: Double] = [
            "": 1, "B": 1, "KiB": 1024, "MiB": 1_048_576, "GiB": 1_073_741_824, "TiB": 1_099_511_627_776,
            "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
        ]
        guard let multiplier = multipliers[unit] else { return nil }
        // Checked before converting: a huge size (`99999999999999999999TiB`) would trap in Int64(_:).
        let bytes = value * multiplier
        guard bytes.isFinite, bytes < 9.2e18 else { return nil }
        return Int64(bytes)
    }
}

extension Configuration.Algorithm: Decodable {
    public init(from decoder: any Decoder) throws {
        let reader = try MappingReader(decoder, allowed: ["concurrency", "backfill_concurrency", "drain"])
        self.init()
        concurrency = try reader.value("concurrency", concurrency)
        backfillConcurrency = try reader.value("backfill_concurrency", backfillConcurrency)
        drain = try reader.duration("drain", drain)
    }
}

extension Configuration.Log: Decodable {
    public init(from decoder: any Decoder) throws {
        let reader = try MappingReader(decoder, allowed: ["level", "max_size", "keep", "heartbeat"])
        self.init()
        level = try reader.value("level", level)
        if reader.has("max_size") {
            let text = try reader.value("max_size", "")
            guard let bytes = ByteCount.parse(text), bytes >= 1024 else {
                throw ConfigurationError(
                    source: "",
                    field: reader.field("max_size"),
                    problem: "expected a size of at least 1KiB, e.g. 64MiB (got \"\(text)\")"
                )
            }
            maxBytes = bytes
        }
        keep = try reader.value("keep", keep)
        heartbeat = try reader.duration("heartbeat", heartbeat)
    }
}

extension Configuration.Metrics: Decodable {
    public init(from decoder: any Decoder) throws {
        let reader = try MappingReader(
            decoder,
            allowed: [
                "host", "logger", "scheduler", "algorithm", "processor", "max_connections", "max_header_bytes", "request_timeout",
            ]
        )
        self.init()
        host = try reader.value("host", host)
        logger = try reader.value("logger", logger)
        scheduler = try reader.value("scheduler", scheduler)
        algorithm = try reader.value("algorithm", algorithm)
        processor = try reader.value("processor", processor)
        maxConnections = try reader.value("max_connections", maxConnections)
        if reader.has("max_header_bytes") {
            let text = try reader.value("max_header_bytes", "")
            guard let bytes = ByteCount.parse(text), bytes <= Int64(Int32.max) else {
                throw ConfigurationError(
                    source: "",
                    field: reader.field("max_header_bytes"),
                    problem: "expected a size such as 16KiB or a number of bytes (got \"\(text)\")"
                )
            }
            maxHeaderBytes = Int(bytes)
        }
        requestTimeout = try reader.duration("request_timeout", requestTimeout)
    }
}

extension Configuration.Job: Decodable {
    public init(from decoder: any Decoder) throws {
        let reader = try MappingReader(
            decoder,
            allowed: [
                "name", "every", "anchor", "cron", "at", "timezone", "jitter", "misfire", "grace", "overlap", "command", "workdir",
                "env", "builtin", "duration", "result_size", "timeout", "retries",
            ]
        )
        guard reader.has("name") else {
            throw ConfigurationError(source: "", field: reader.field("name"), problem: "every job needs a name")
        }
        let name = try reader.value("name", "")
        let triggers = ["every", "cron", "at"].filter(reader.has)
        guard triggers.count == 1 else {
            throw ConfigurationError(
                source: "",
                field: reader.field(triggers.last ?? "every"),
                problem: triggers.isEmpty
                    ? "every job needs a schedule: every: 1h, cron: \"0 * * * *\", or at: 2026-01-01T00:00:00Z"
                    : "a job has one schedule: every, cron or at, not \(triggers.joined(separator: " and "))"
            )
        }
        let trigger: Configuration.Trigger
        switch triggers[0] {
        case "every":
            trigger = .interval(
                every: try reader.duration("every", .zero),
                anchor: try reader.date("anchor", Date(timeIntervalSince1970: 0))
            )
        case "cron":
            let text = try reader.value("cron", "")
            do {
                trigger = .cron(try CronExpression(text))
            } catch {
                throw ConfigurationError(source: "", field: reader.field("cron"), problem: "\(error)")
            }
        default:
            trigger = .once(try reader.date("at", Date()))
        }
        if reader.has("anchor"), triggers[0] != "every" {
            throw ConfigurationError(source: "", field: reader.field("anchor"), problem: "anchor goes with every")
        }
        let algorithm: Configuration.AlgorithmSpec
        switch (reader.has("command"), reader.has("builtin")) {
        case (true, true):
            throw ConfigurationError(source: "", field: reader.field("builtin"), problem: "a job has either command or builtin, not both")
        case (true, false):
            let argv = try reader.value("command", [String]())
            guard !argv.isEmpty, !argv[0].isEmpty else {
                throw ConfigurationError(
                    source: "",
                    field: reader.field("command"),
                    problem: "must name a program, e.g. [python3, algo.py]"
                )
            }
            algorithm = .command(
                Configuration.Command(
                    argv: argv,
                    workingDirectory: try reader.value("workdir", ""),
                    environment: try reader.value("env", [:])
                )
            )
        case (false, true):
            let builtin = try reader.value("builtin", "")
            guard builtin == "demo" else {
                throw ConfigurationError(
                    source: "",
                    field: reader.field("builtin"),
                    problem: "the only built-in algorithm is demo (got \"\(builtin)\")"
                )
            }
            algorithm = .demo(duration: try reader.duration("duration", .seconds(2)), resultSize: try reader.value("result_size", 4096))
        case (false, false):
            throw ConfigurationError(
                source: "",
                field: reader.field("command"),
                problem: "every job needs an algorithm: command: [program, args...] or builtin: demo"
            )
        }
        self.init(name: name, trigger: trigger, algorithm: algorithm)
        if reader.has("timezone") {
            let zone = try reader.value("timezone", "")
            guard let timeZone = TimeZone(identifier: zone) else {
                throw ConfigurationError(
                    source: "",
                    field: reader.field("timezone"),
                    problem: "unknown IANA time zone \"\(zone)\", e.g. Europe/Berlin"
                )
            }
            self.timeZone = timeZone
        }
        jitter = try reader.duration("jitter", jitter)
        misfire = try reader.choice("misfire", misfire)
        if reader.has("grace") { grace = try reader.duration("grace", .zero) }
        overlap = try reader.choice("overlap", overlap)
        timeout = try reader.duration("timeout", timeout)
        retries = try reader.value("retries", retries)
    }
}

extension MappingReader {
    /// A value from a closed set of words.
    func choice<T: RawRepresentable & CaseIterable>(_ key: String, _ fallback: T) throws -> T where T.RawValue == String {
        guard has(key) else { return fallback }
        let text = try value(key, "")
        guard let choice = T(rawValue: text) else {
            throw ConfigurationError(
                source: "",
                field: field(key),
                problem: "must be one of \(T.allCases.map(\.rawValue).joined(separator: ", ")) (got \"\(text)\")"
            )
        }
        return choice
    }
}
