import Foundation

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
