import AlgorithmService
import Config
import LoggerService
import ProcessorService
import SchedulerService
import ServiceKit
import Testing

/// What each service tells the shared runner about itself.
struct ServiceDescriptionTests {
    @Test func eachServiceListensOnItsOwnMetricsPort() {
        var metrics = Configuration.Metrics()
        (metrics.logger, metrics.scheduler, metrics.algorithm, metrics.processor) = (9001, 9002, 9003, 9004)
        let ports = [ServiceDescription.logger, .scheduler, .algorithm, .processor].map { $0.metricsPort(metrics) }
        #expect(ports == [9001, 9002, 9003, 9004])
        // A port given to the process (--metrics-port, BATON_METRICS_PORT) is every service's.
        metrics.ownPort = 9100
        #expect(
            [ServiceDescription.logger, .scheduler, .algorithm, .processor].map { $0.metricsPort(metrics) } == [9100, 9100, 9100, 9100]
        )
    }

    @Test func onlyProcessorsSearchForAFreePortAndHaveAPidFilePerInstance() {
        #expect(ServiceDescription.processor.metricsPortSearch == 64)
        #expect([ServiceDescription.logger, .scheduler, .algorithm].map(\.metricsPortSearch) == [0, 0, 0])
        #expect(ServiceDescription.processor.pidName("host:42") == "processor-host:42")
        #expect(ServiceDescription.processor.pidName("processor-2") == "processor-2")
        #expect(ServiceDescription.scheduler.pidName("host:42") == "scheduler")
    }

    /// A container's main process is pid 1 in every replica: its host name (the container's) names it alone.
    @Test func aContainersMainProcessIsNamedByItsHostName() {
        #expect(ServiceRunner.defaultInstance(host: "h1", pid: 4242) == "h1:4242")
        #expect(ServiceRunner.defaultInstance(host: "3f2a9c1b7d4e", pid: 1) == "3f2a9c1b7d4e")
        #expect(
            ServiceDescription.processor.pidName(ServiceRunner.defaultInstance(host: "3f2a9c1b7d4e", pid: 1)) == "processor-3f2a9c1b7d4e"
        )
    }

    /// The binding side of the socket table in docs/ARCHITECTURE.md.
    @Test func servicesBindTheirSockets() {
        let endpoints = Configuration.Endpoints()
        #expect(
            ServiceDescription.scheduler.boundEndpoints(endpoints).map(\.key) == [
                "endpoints.runs", "endpoints.control", "endpoints.reports",
            ]
        )
        #expect(
            ServiceDescription.algorithm.boundEndpoints(endpoints).map(\.key) == [
                "endpoints.results", "endpoints.acks", "endpoints.algorithm_control",
            ]
        )
        #expect(
            ServiceDescription.logger.boundEndpoints(endpoints).map(\.key) == [
                "endpoints.status_in", "endpoints.status_out", "endpoints.query",
            ]
        )
        #expect(ServiceDescription.processor.boundEndpoints(endpoints).isEmpty)
        #expect(
            ServiceDescription.scheduler.boundEndpoints(endpoints).map(\.endpoint) == [
                endpoints.runs, endpoints.control, endpoints.reports,
            ]
        )
    }

    @Test func namesAreTheProgramsNames() {
        #expect(
            [ServiceDescription.logger, .scheduler, .algorithm, .processor].map(\.program) == [
                "baton-logger", "baton-scheduler", "baton-algorithm", "baton-processor",
            ]
        )
    }
}
