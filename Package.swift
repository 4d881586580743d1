// swift-tools-version:6.2
import PackageDescription

/// One set of compiler settings for every target.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let argumentParser = Target.Dependency.product(name: "ArgumentParser", package: "swift-argument-parser")
let logging = Target.Dependency.product(name: "Logging", package: "swift-log")
let lifecycle = Target.Dependency.product(name: "ServiceLifecycle", package: "swift-service-lifecycle")
let signals = Target.Dependency.product(name: "UnixSignals", package: "swift-service-lifecycle")
let grdb = Target.Dependency.product(name: "GRDB", package: "GRDB.swift")
let grdbSQLite = Target.Dependency.product(name: "GRDBSQLite", package: "GRDB.swift")
let subprocess = Target.Dependency.product(name: "Subprocess", package: "swift-subprocess")
let deque = Target.Dependency.product(name: "DequeModule", package: "swift-collections")
let system = Target.Dependency.product(name: "SystemPackage", package: "swift-system")
let yams = Target.Dependency.product(name: "Yams", package: "Yams")
let metrics = Target.Dependency.product(name: "Metrics", package: "swift-metrics")
let prometheus = Target.Dependency.product(name: "Prometheus", package: "swift-prometheus")
let hummingbirdCore = Target.Dependency.product(name: "HummingbirdCore", package: "hummingbird")
let nio: [Target.Dependency] = [
    .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
    .product(name: "NIOHTTP1", package: "swift-nio"), .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
    .product(name: "HTTPTypes", package: "swift-http-types"),
]

/// How release executables are linked: with lld and packed relative relocations (DT_RELR). A static build holds
/// about 100,000 relative relocations, 2.4 MB as RELA entries that the loader reads, whole, at every start and
/// that then stay resident; packed, they are a few KB (docs/PERFORMANCE.md, "Idle"). glibc 2.36 reads them.
let executableLinking: [LinkerSetting] = [
    .unsafeFlags(
        ["-use-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs"],
        .when(platforms: [.linux], configuration: .release)
    )
]

/// A service: a library target holding the logic, and a thin executable over it.
func service(_ name: String, folder: String, dependencies: [Target.Dependency], main: [Target.Dependency] = []) -> [Target] {
    [
        .target(
            name: name,
            dependencies: dependencies,
            path: "Services/\(folder)/Sources",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "\(name)Main",
            dependencies: [.target(name: name), argumentParser, "ServiceKit", "Config"] + main,
            path: "Services/\(folder)/Main",
            swiftSettings: swiftSettings,
            linkerSettings: executableLinking
        ),
    ]
}

let serviceBase: [Target.Dependency] = [
    "ZMQ", "Messaging", "Scheduling", "Config", "ServiceKit", "MetricsHTTP", logging, lifecycle, argumentParser, metrics,
]

let package = Package(
    name: "Baton",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "baton", targets: ["CLIMain"]),
        .executable(name: "baton-scheduler", targets: ["SchedulerServiceMain"]),
        .executable(name: "baton-algorithm", targets: ["AlgorithmServiceMain"]),
        .executable(name: "baton-processor", targets: ["ProcessorServiceMain"]),
        .executable(name: "baton-logger", targets: ["LoggerServiceMain"]),
        .executable(name: "baton-bench", targets: ["BatonBench"]),
        // The guard in front of every user command (Shared/Exec/baton-exec.c): plain C, no dependencies.
        .executable(name: "baton-exec", targets: ["BatonExec"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // Without its default trait ConfigurationSupport: swift-configuration is not built.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: ["FullFoundation"]),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CZMQ",
            path: "Shared/CZMQ",
            pkgConfig: "libzmq",
            providers: [.apt(["libzmq3-dev"])]
        ),
        .systemLibrary(
            name: "CPlatform",
            path: "Shared/CPlatform",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        // The PostgreSQL client library, for the result store's PostgreSQL backend (store.url). libpq rather
        // than postgres-nio: no swift-crypto or nio-ssl to build (minutes of every clean build), and the store's
        // work is already synchronous, one transaction per task, on a thread of its own.
        .systemLibrary(
            name: "CLibPQ",
            path: "Shared/CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        .executableTarget(name: "BatonExec", path: "Shared/Exec"),
        // The "race tasks, take the first result" helper: below ZMQ, which needs it for a receive with a timeout.
        .target(name: "Racing", path: "Shared/Racing", swiftSettings: swiftSettings),
        .target(name: "ZMQ", dependencies: ["CZMQ", deque, "Racing"], path: "Shared/ZMQ", swiftSettings: swiftSettings),
        .target(name: "Messaging", dependencies: ["CPlatform", "Scheduling"], path: "Shared/Messaging", swiftSettings: swiftSettings),
        .target(name: "Scheduling", path: "Shared/Scheduling", swiftSettings: swiftSettings),
        // The configuration file: sections, keys, environment overrides, validation (Yams).
        .target(name: "Config", dependencies: ["Messaging", "Scheduling", yams], path: "Shared/Config", swiftSettings: swiftSettings),
        // What every service process is made of: runner, service description, status publisher, log handlers,
        // message rejector, doorbell, pid file.
        .target(
            name: "ServiceKit",
            dependencies: [
                "ZMQ", "Messaging", "Config", "MetricsHTTP", "CPlatform", logging, lifecycle, signals, argumentParser, deque, metrics,
            ],
            path: "Shared/ServiceKit",
            swiftSettings: swiftSettings
        ),
        // Each service's HTTP endpoint: /metrics (Prometheus) and /healthz.
        .target(
            name: "MetricsHTTP",
            dependencies: ["Messaging", logging, lifecycle, metrics, prometheus, hummingbirdCore] + nio,
            path: "Shared/MetricsHTTP",
            swiftSettings: swiftSettings
        ),
        // User commands: the runner (through baton-exec), owner markers, output tails, PATH lookup.
        .target(
            name: "Commands",
            dependencies: ["Config", "CPlatform", subprocess, system],
            path: "Shared/Commands",
            swiftSettings: swiftSettings
        ),
        // The one SQLite opening every store uses, and the PostgreSQL connection (libpq on a thread of its own);
        // each store lives in the module of the service that owns it.
        .target(
            name: "Persistence",
            dependencies: ["Messaging", "CLibPQ", grdb],
            path: "Shared/Persistence",
            swiftSettings: swiftSettings
        ),
    ]
        + service("SchedulerService", folder: "Scheduler", dependencies: serviceBase + ["Persistence", grdb])
        + service(
            "AlgorithmService",
            folder: "Algorithm",
            // NIOPosix for its blocking pool (BlockingWork): hashing, fsync and reads of results off the cooperative pool.
            dependencies: serviceBase + [
                "Persistence", "Commands", grdb, subprocess, signals, .product(name: "NIOPosix", package: "swift-nio"),
            ],
            main: ["Commands"]
        )
        + service(
            "ProcessorService",
            folder: "Processor",
            // NIOPosix for its blocking pool: checking and writing results off the cooperative pool.
            // GRDBSQLite: the store binds each JSON line straight from the payload's buffer (SQLite's C API).
            dependencies: serviceBase + [
                "Persistence", "Commands", grdb, grdbSQLite, subprocess, .product(name: "NIOPosix", package: "swift-nio"),
            ],
            main: ["Commands"]
        )
        // AsyncHTTPClient: alerts' webhooks, over HTTPS too (it brings swift-nio-ssl: BoringSSL, built once per clean build).
        + service(
            "LoggerService",
            folder: "Logger",
            dependencies: serviceBase + [
                "Persistence", "Commands", grdb, .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        )
        + service(
            "CLI",
            folder: "CLI",
            dependencies: serviceBase + [
                "Persistence", "Commands", "ProcessorService", "AlgorithmService", "LoggerService", "SchedulerService", subprocess,
                system, signals,
            ]
        )
        + [
            .executableTarget(
                name: "BatonBench",
                dependencies: [
                    "ZMQ", "Messaging", "Config", "ServiceKit", "MetricsHTTP", "Commands", "Persistence", "ProcessorService",
                    "AlgorithmService", "SchedulerService", "LoggerService", "TestSupport", grdb, grdbSQLite, logging, lifecycle,
                    argumentParser,
                ],
                path: "Benchmarks/BatonBench",
                swiftSettings: swiftSettings,
                linkerSettings: executableLinking
            ),
            // Fixtures and scratch directories for the unit tests of the modules that keep stores.
            .target(
                name: "TestSupport",
                dependencies: ["Messaging", "ZMQ", subprocess, system],
                path: "Tests/TestSupport",
                swiftSettings: swiftSettings
            ),
            .testTarget(name: "ZMQTests", dependencies: ["ZMQ", "TestSupport"], swiftSettings: swiftSettings),
            .testTarget(name: "RacingTests", dependencies: ["Racing"], swiftSettings: swiftSettings),
            .testTarget(name: "SchedulingTests", dependencies: ["Scheduling"], swiftSettings: swiftSettings),
            .testTarget(
                name: "ProcessorServiceTests",
                dependencies: [
                    "TestSupport", "ProcessorService", "Persistence", "Messaging", "Config", "ServiceKit", "ZMQ", grdb, logging,
                    .product(name: "PropertyBased", package: "swift-property-based"),
                ],
                swiftSettings: swiftSettings
            ),
            .testTarget(
                name: "MessagingTests",
                dependencies: ["Messaging", .product(name: "PropertyBased", package: "swift-property-based")],
                swiftSettings: swiftSettings
            ),
            .testTarget(name: "ConfigTests", dependencies: ["Config", "Messaging"], swiftSettings: swiftSettings),
            // The services' descriptions are checked here against the configuration, so it sees the services.
            .testTarget(
                name: "ServiceKitTests",
                dependencies: [
                    "ServiceKit", "Config", "MetricsHTTP", "Messaging", "ZMQ", "SchedulerService", "AlgorithmService", "ProcessorService",
                    "LoggerService", logging, lifecycle, .product(name: "PropertyBased", package: "swift-property-based"),
                ],
                swiftSettings: swiftSettings
            ),
            .testTarget(
                name: "MetricsHTTPTests",
                dependencies: ["MetricsHTTP", "TestSupport", logging, lifecycle] + nio,
                swiftSettings: swiftSettings
            ),
            .testTarget(name: "CommandsTests", dependencies: ["Commands", "Config"], swiftSettings: swiftSettings),
            .testTarget(
                name: "AlgorithmServiceTests",
                dependencies: [
                    "TestSupport",
                    "AlgorithmService", "Persistence", grdb, "Messaging", "Config", "ServiceKit", "MetricsHTTP", "ZMQ", logging,
                    .product(name: "PropertyBased", package: "swift-property-based"),
                    .product(name: "ServiceLifecycleTestKit", package: "swift-service-lifecycle"),
                ],
                swiftSettings: swiftSettings
            ),
            .testTarget(
                name: "LoggerServiceTests",
                dependencies: ["LoggerService", "Messaging", "TestSupport", logging, grdb],
                swiftSettings: swiftSettings
            ),
            .testTarget(name: "CLITests", dependencies: ["CLI", "Messaging", "ZMQ", argumentParser], swiftSettings: swiftSettings),
            .testTarget(
                name: "SchedulerServiceTests",
                dependencies: [
                    "TestSupport",
                    "SchedulerService", "Scheduling", "Messaging", "Config", "ServiceKit", "MetricsHTTP", "Persistence", "ZMQ", logging,
                    .product(name: "ServiceLifecycleTestKit", package: "swift-service-lifecycle"),
                    .product(name: "PropertyBased", package: "swift-property-based"),
                ],
                swiftSettings: swiftSettings
            ),
            .testTarget(
                name: "IntegrationTests",
                dependencies: [
                    "Config", "ServiceKit", "MetricsHTTP", "Commands", "Messaging", "ZMQ", "ProcessorService", "Persistence",
                    "TestSupport", logging, grdb,
                ],
                swiftSettings: swiftSettings
            ),
        ]
)
