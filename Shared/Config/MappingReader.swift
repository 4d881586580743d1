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
