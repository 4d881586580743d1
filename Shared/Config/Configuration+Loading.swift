public import Foundation
import Messaging
import Yams

extension Configuration {
    /// Loads a configuration file, applies environment overrides, and validates the result.
    /// - Parameters:
    ///   - path: The YAML file; `nil` starts from the defaults.
    ///   - environment: Variables that override the file (normally the process environment).
    /// - Throws: ``ConfigurationError`` naming the field and the problem.
    public static func load(
        path: String?,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(ConfigurationError) -> Configuration {
        var configuration = Configuration()
        if let path {
            let text: String
            do {
                text = try String(contentsOfFile: path, encoding: .utf8)
            } catch {
                throw ConfigurationError(source: path, field: "", problem: "cannot read the file (\(error.localizedDescription))")
            }
            configuration = try parse(yaml: text, source: path)
        }
        try configuration.applyOverrides(from: environment)
        try configuration.validate(source: path ?? "configuration")
        return configuration
    }

    /// Parses YAML text (without environment overrides or validation).
    public static func parse(yaml: String, source: String) throws(ConfigurationError) -> Configuration {
        if yaml.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { return Configuration() }
        do {
            return try YAMLDecoder().decode(Configuration.self, from: yaml)
        } catch {
            if let inner = ConfigurationError.wrapped(in: error) {
                throw ConfigurationError(source: source, field: inner.field, problem: inner.problem)
            }
            if let yaml = Self.yamlError(in: error) {
                throw ConfigurationError(source: source, field: "", problem: "not valid YAML: \(yaml)")
            }
            if let decoding = error as? DecodingError {
                throw ConfigurationError(source: source, field: "", problem: Wire.describe(decoding))
            }
            throw ConfigurationError(source: source, field: "", problem: "\(error)")
        }
    }

    private static func yamlError(in error: any Error) -> YamlError? {
        if let yaml = error as? YamlError { return yaml }
        if case .dataCorrupted(let context) = error as? DecodingError, let inner = context.underlyingError {
            return yamlError(in: inner)
        }
        return nil
    }

    /// An environment variable that overrides one setting.
    public typealias Override = EnvironmentOverride<Configuration>

    /// Every environment variable Baton reads, in the order they are documented: taken from the sections' keys.
    public static let overrides: [Override] = settings.flatMap(\.overrides)

    /// Applies the environment variables in ``overrides`` that are set.
    public mutating func applyOverrides(from environment: [String: String]) throws(ConfigurationError) {
        for override in Self.overrides {
            guard let value = environment[override.variable] else { continue }
            guard override.apply(&self, value) else {
                throw ConfigurationError(source: "environment", field: override.variable, problem: "invalid value \"\(value)\"")
            }
        }
    }

    /// Text the operating system cannot take: a NUL in a path, an argument or an environment variable (C
    /// strings end there), or an environment variable's name that is empty or holds `=`.
    static func textProblems(_ configuration: Configuration) -> [(field: String, problem: String)] {
        var problems: [(field: String, problem: String)] = []
        let nul = "must not contain a NUL character"
        func command(_ field: String, argv: [String], workdir: String, env: [String: String]) {
            if argv.contains(where: { $0.contains("\0") }) { problems.append(("\(field).command", nul)) }
            if workdir.contains("\0") { problems.append(("\(field).workdir", nul)) }
            for (name, value) in env.sorted(by: { $0.key < $1.key }) {
                if name.isEmpty || name.contains("=") || name.contains("\0") {
                    problems.append(("\(field).env", "\"\(name)\" is not a variable name (not empty, no = or NUL)"))
                } else if value.contains("\0") {
                    problems.append(("\(field).env.\(name)", nul))
                }
            }
        }
        if configuration.dataDirectory.contains("\0") { problems.append(("data_dir", nul)) }
        if configuration.store.path.contains("\0") { problems.append(("store.path", nul)) }
        let processor = configuration.processor
        command("processor", argv: processor.command, workdir: processor.workingDirectory, env: processor.environment)
        for (index, job) in configuration.jobs.enumerated() {
            if case .command(let spec) = job.algorithm {
                command("jobs[\(index)]", argv: spec.argv, workdir: spec.workingDirectory, env: spec.environment)
            }
            for (number, stage) in job.stages.enumerated() where stage.builtin == nil {
                let spec = stage.command
                command("jobs[\(index)].stages[\(number)]", argv: spec.argv, workdir: spec.workingDirectory, env: spec.environment)
            }
        }
        return problems
    }

    /// Checks values that parsing alone cannot.
    public func validate(source: String) throws(ConfigurationError) {
        func fail(_ field: String, _ problem: String) -> ConfigurationError {
            ConfigurationError(source: source, field: field, problem: problem)
        }
        guard !dataDirectory.isEmpty else { throw fail("data_dir", "must not be empty") }
        if let problem = Self.textProblems(self).first { throw fail(problem.field, problem.problem) }
        if let problem = firstProblem() { throw fail(problem.field, problem.problem) }
        if web.enabled && curve.enabled && web.token.isEmpty {
            throw fail(
                "web.token",
                "required when the web view is on and CURVE is (curve.enabled): the view is then for authenticated users only"
            )
        }
    }
}
