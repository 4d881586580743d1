public import CoreMetrics
import Prometheus

/// A service's metrics: swift-metrics handles made by one injected factory, and (when exporting) the
/// Prometheus registry they fill, rendered by ``MetricsServer`` on `/metrics`.
///
/// Components take a `ServiceMetrics` and make their metrics from it, rather than from the global
/// `MetricsSystem`, so tests can give each component its own registry. Metric names are listed in
/// `docs/CONFIGURATION.md` (section `metrics`).
///
/// ```swift
/// let metrics = ServiceMetrics.prometheus()
/// metrics.counter("baton_runs_started_total", job: "hourly").increment()
/// print(metrics.exposition())
/// ```
public struct ServiceMetrics: Sendable {
    /// The factory every metric is made with.
    public let factory: any MetricsFactory
    private let registry: PrometheusCollectorRegistry?

    private init(factory: any MetricsFactory, registry: PrometheusCollectorRegistry?) {
        self.factory = factory
        self.registry = registry
    }

    /// Metrics that go nowhere (tests, and services with no metrics port).
    public static let disabled = ServiceMetrics(factory: NOOPMetricsHandler.instance, registry: nil)

    /// Metrics collected in a new Prometheus registry. Durations are histograms in seconds, with buckets from
    /// 100 µs (timer lateness, hand-off latency) to an hour (runs and processing).
    public static func prometheus() -> ServiceMetrics {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .microseconds(2500),
            .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
            .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10),
            .seconds(30), .seconds(60), .seconds(300), .seconds(900), .seconds(1800), .seconds(3600),
        ]
        return ServiceMetrics(factory: factory, registry: registry)
    }

    /// The Prometheus text exposition of every metric (empty when disabled).
    public func exposition() -> String {
        registry?.emitToString() ?? ""
    }

    /// A counter, labelled by job when one is given.
    public func counter(_ name: String, job: String? = nil, _ labels: [(String, String)] = []) -> CoreMetrics.Counter {
        CoreMetrics.Counter(label: name, dimensions: Self.dimensions(job, labels), factory: factory)
    }

    /// A duration histogram (seconds), labelled by job when one is given.
    public func timer(_ name: String, job: String? = nil, _ labels: [(String, String)] = []) -> CoreMetrics.Timer {
        CoreMetrics.Timer(label: name, dimensions: Self.dimensions(job, labels), preferredDisplayUnit: .seconds, factory: factory)
    }

    /// A gauge: the last value set.
    public func gauge(_ name: String, _ labels: [(String, String)] = []) -> CoreMetrics.Gauge {
        CoreMetrics.Gauge(label: name, dimensions: labels, factory: factory)
    }

    private static func dimensions(_ job: String?, _ labels: [(String, String)]) -> [(String, String)] {
        (job.map { [("job", $0)] } ?? []) + labels
    }
}
