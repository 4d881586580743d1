/// One key of a configuration section, declared once: its name in the file, how its value is read and of what
/// type, the environment variable that overrides it (if any) and the check of its range. Decoding, environment
/// overrides (and their `--help` table) and validation all come from the same declarations, so a key cannot be
/// added to one of them and forgotten in another.
struct Setting<Section>: Sendable {
    /// The key in the file; `nil` for a setting only the environment gives (the process's own metrics port).
    let key: String?
    /// Reads the key's value, when present, into the section.
    let read: @Sendable (MappingReader, inout Section) throws -> Void
    /// The environment variables that override this setting (or, for a nested section, its settings).
    let overrides: [EnvironmentOverride<Section>]
    /// The first problem with the value, named by its field relative to the section (`count`, `jobs[0].name`).
    let problem: @Sendable (Section) -> (field: String, problem: String)?

    init(
        key: String?,
        read: @escaping @Sendable (MappingReader, inout Section) throws -> Void,
        overrides: [EnvironmentOverride<Section>] = [],
        problem: @escaping @Sendable (Section) -> (field: String, problem: String)? = { _ in nil }
    ) {
        self.key = key
        self.read = read
        self.overrides = overrides
        self.problem = problem
    }

    /// A value read with the file's plain types (text, whole number, list, mapping), overridable from the
    /// environment through `parse`, and checked by `check` (which returns the problem, if any).
    static func value<Value: Decodable & Sendable>(
        _ key: String,
        _ path: any WritableKeyPath<Section, Value> & Sendable,
        env variable: String? = nil,
        parse: @escaping @Sendable (String) -> Value? = { _ in nil },
        check: @escaping @Sendable (Value) -> String? = { _ in nil }
    ) -> Setting {
        Setting(
            key: key,
            read: { reader, section in section[keyPath: path] = try reader.value(key, section[keyPath: path]) },
            overrides: variable.map { variable in
                [
                    EnvironmentOverride(variable: variable, key: key) { section, text in
                        guard let value = parse(text) else { return false }
                        section[keyPath: path] = value
                        return true
                    }
                ]
            } ?? [],
            problem: { section in check(section[keyPath: path]).map { (key, $0) } }
        )
    }

    /// Text, overridable by the variable as is.
    static func text(
        _ key: String,
        _ path: any WritableKeyPath<Section, String> & Sendable,
        env variable: String? = nil,
        check: @escaping @Sendable (String) -> String? = { _ in nil }
    ) -> Setting {
        value(key, path, env: variable, parse: { $0 }, check: check)
    }

    /// A whole number within `range` (checked after the environment's overrides, as `must be from A to B`).
    static func count(
        _ key: String,
        _ path: any WritableKeyPath<Section, Int> & Sendable,
        env variable: String? = nil,
        range: ClosedRange<Int>? = nil
    ) -> Setting {
        value(key, path, env: variable, parse: { Int($0) }) { value in
            guard let range, !range.contains(value) else { return nil }
            return "must be from \(range.lowerBound) to \(range.upperBound) (got \(value))"
        }
    }

    /// A duration such as `500ms` or `1h30m`.
    static func duration(
        _ key: String,
        _ path: any WritableKeyPath<Section, Duration> & Sendable,
        check: @escaping @Sendable (Duration) -> String? = { _ in nil }
    ) -> Setting {
        Setting(
            key: key,
            read: { reader, section in section[keyPath: path] = try reader.duration(key, section[keyPath: path]) },
            problem: { section in check(section[keyPath: path]).map { (key, $0) } }
        )
    }

    /// A key read its own way (a choice, a size, a duration or a word).
    static func custom(
        _ key: String,
        read: @escaping @Sendable (MappingReader, inout Section) throws -> Void,
        check: @escaping @Sendable (Section) -> String? = { _ in nil }
    ) -> Setting {
        Setting(key: key, read: read, problem: { section in check(section).map { (key, $0) } })
    }

    /// A nested section: its own keys, overrides and checks, under `key`.
    static func section<Nested: ConfigurationSection & Decodable>(
        _ key: String,
        _ path: any WritableKeyPath<Section, Nested> & Sendable
    ) -> Setting {
        Setting(
            key: key,
            read: { reader, section in section[keyPath: path] = try reader.value(key, section[keyPath: path]) },
            overrides: Nested.settings.flatMap(\.overrides).map { nested in
                EnvironmentOverride(variable: nested.variable, key: "\(key).\(nested.key)") { section, text in
                    nested.apply(&section[keyPath: path], text)
                }
            },
            problem: { section in
                section[keyPath: path].firstProblem().map { ($0.field.isEmpty ? key : "\(key).\($0.field)", $0.problem) }
            }
        )
    }
}

/// An environment variable that overrides one setting.
public struct EnvironmentOverride<Root>: Sendable {
    /// The variable's name.
    public let variable: String
    /// The setting it overrides, as written in the file.
    public let key: String
    /// Sets the value from the variable's text; false when the text is not a value of the setting's type.
    let apply: @Sendable (inout Root, String) -> Bool
}

/// A section of the file (a mapping): every key declared once in ``settings``, in the order they are listed in
/// errors and read.
protocol ConfigurationSection: Sendable {
    /// The section with every default.
    init()
    /// Every key of the section.
    static var settings: [Setting<Self>] { get }
    /// Problems that involve several keys, checked after each key's own.
    static var crossChecks: [@Sendable (Self) -> (field: String, problem: String)?] { get }
}

extension ConfigurationSection {
    static var crossChecks: [@Sendable (Self) -> (field: String, problem: String)?] { [] }

    /// Reads the section strictly: known keys only, typed values, defaults for what is absent.
    init(reading decoder: any Decoder) throws {
        let reader = try MappingReader(decoder, allowed: Self.settings.compactMap(\.key))
        self.init()
        for setting in Self.settings { try setting.read(reader, &self) }
    }

    /// The first problem with the section's values, in the order of ``settings``, then the cross-checks.
    func firstProblem() -> (field: String, problem: String)? {
        for setting in Self.settings {
            if let problem = setting.problem(self) { return problem }
        }
        for check in Self.crossChecks {
            if let problem = check(self) { return problem }
        }
        return nil
    }
}
