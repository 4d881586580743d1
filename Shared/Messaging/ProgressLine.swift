/// The line an external algorithm prints on its standard output to report progress:
/// `baton:progress <percent>[%] [message]`, e.g. `baton:progress 42.5% fitting the model`.
public struct ProgressLine: Sendable, Equatable {
    /// The prefix that marks a progress line.
    public static let prefix = "baton:progress "

    /// From 0 to 100.
    public var percent: Double
    /// What the algorithm is doing, if it said.
    public var message: String?

    /// Parses a line; `nil` if it is not a progress line (or its percentage is not a number from 0 to 100).
    public init?(_ line: String) {
        guard line.hasPrefix(Self.prefix) else { return nil }
        let rest = line.dropFirst(Self.prefix.count).drop { $0 == " " }
        let number = rest.prefix { $0 != " " }
        let text = number.hasSuffix("%") ? number.dropLast() : number
        guard let percent = Double(text), (0...100).contains(percent) else { return nil }
        self.percent = percent
        let message = rest.dropFirst(number.count).drop { $0 == " " }
        self.message = message.isEmpty ? nil : String(message)
    }
}
