import Config
public import ServiceKit

extension ServiceDescription {
    /// `baton-scheduler`: binds the `runs`, `control` and `reports` sockets and keeps its state under
    /// `<data_dir>/scheduler`.
    public static let scheduler = ServiceDescription(
        name: "scheduler",
        metricsPort: { $0.port(\.scheduler) },
        dataFolders: ["scheduler"],
        boundEndpoints: { [("endpoints.runs", $0.runs), ("endpoints.control", $0.control), ("endpoints.reports", $0.reports)] }
    )
}
