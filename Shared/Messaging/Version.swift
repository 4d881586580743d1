/// Baton's release, reported by `--version` and in every service's heartbeat.
public enum BatonVersion {
    /// The version string.
    public static let current = "0.5.0"
}
