// swift-tools-version:6.1
import PackageDescription

// One target per layer: core (no I/O), wire formats (no I/O) and C modules → safe wrappers → queue
// machinery / domain → roles → executable. `ls Sources` is the architecture diagram.
//
// Every module a target imports is in its `dependencies`, and nothing else is: `.ci/import-check`
// fails CI otherwise (SwiftPM lets a target import whatever its dependencies bring along).

// The one list of compiler settings, for every Swift target.
let defaultSwiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6)
]

let package = Package(
    name: "leasehold",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "leasehold", targets: ["leasehold"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        // NIOHTTPTypes: the HTTP parts ingress's connection handler sees (already in the graph through Hummingbird).
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        // HMAC-SHA256 for comparing webhook secrets and bearer tokens (already in the graph through
        // async-http-client's swift-certificates; 3.x and 4.x have the same API for this).
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        // Tests only: reads Compose/compose.yaml (anchors, merge keys) in LeaseholdDeploymentTests.
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        // The ops console's server-rendered pages (leasehold console).
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
    ],
    targets: [
        // MARK: C modules (Debian: libpq-dev, libhiredis-dev)
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        // No `pkgConfig:` here on purpose: Debian's hiredis.pc adds `-D_FILE_OFFSET_BITS=64`,
        // which SwiftPM prohibits (a warning on every build). The header lives in the default
        // include path as <hiredis/hiredis.h>, so the shim includes it from there.
        .systemLibrary(
            name: "CHiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),

        // MARK: Core
        // What every layer shares and no I/O: Duration in milliseconds and friends, the retry policy
        // and its decision, the seeded random generator, the deferred-metadata log handler.
        .target(
            name: "LeaseholdCore", dependencies: [.product(name: "Logging", package: "swift-log")],
            swiftSettings: defaultSwiftSettings),

        // MARK: Wire formats
        // What crosses the wire, with no I/O and no C library: the stream payloads (BookingRequest,
        // BookingOutcome), the webhook bodies (TelegramUpdate, YooKassaNotification), the strict JSON
        // check, the one forward JSON reader and writer, and the ingress body rules (decoding,
        // validation, BodyRejection) that ingress and its fuzz target share.
        .target(name: "LeaseholdWire", swiftSettings: defaultSwiftSettings),

        // MARK: Safe wrappers
        // NIOConcurrencyHelpers for its pthread-based lock: ThreadSanitizer understands it, while it
        // reports false "Swift access races" inside the stdlib's futex-based Synchronization.Mutex.
        .target(
            name: "LeaseholdPostgres",
            dependencies: [
                // LeaseholdReactor: PostgresConnection drives non-blocking libpq from a Reactor.
                "CLibPQ", "LeaseholdReactor",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                // ServiceLifecycle: a PostgresClient is a Service, closed by its command's group.
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: defaultSwiftSettings
        ),
        .target(
            name: "LeaseholdRedis",
            dependencies: [
                // LeaseholdReactor: RedisConnection drives non-blocking hiredis from a Reactor.
                "CHiredis", "LeaseholdCore", "LeaseholdReactor",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                // ServiceLifecycle: a RedisClient is a Service, closed by its command's group.
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: defaultSwiftSettings
        ),

        // Linux calls Swift's Glibc module leaves out (epoll, eventfd, posix_spawn's closefrom).
        .systemLibrary(name: "CLinux"),
        // An epoll loop that is also a Swift task executor: non-blocking C clients and the tasks
        // awaiting them on one thread (see Reactor.swift for why).
        .target(
            name: "LeaseholdReactor",
            dependencies: [
                "CLinux", "LeaseholdCore", .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                // ServiceLifecycle: a Reactor is a Service, shut down last in its command's group.
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: defaultSwiftSettings
        ),

        // MARK: Queue machinery and domain
        // Streams, leases, completion, the retry schedule, dead letters, and their inspection
        // (QueueStatus, the throughput samples) for `leasehold status` and the console.
        .target(
            name: "LeaseholdQueue",
            dependencies: ["LeaseholdCore", "LeaseholdRedis", "LeaseholdPostgres"],
            swiftSettings: defaultSwiftSettings
        ),
        // The booking and payment rules and their transactions.
        .target(
            name: "LeaseholdDomain", dependencies: ["LeaseholdPostgres", "LeaseholdWire"],
            swiftSettings: defaultSwiftSettings),

        // MARK: Roles
        .target(
            name: "LeaseholdIngress",
            dependencies: [
                "LeaseholdCore", "LeaseholdQueue", "LeaseholdWire", "LeaseholdReactor", "LeaseholdRedis",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                // ReadinessCheck is a Service of the ingress application.
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: defaultSwiftSettings
        ),
        .target(
            name: "LeaseholdWorker",
            dependencies: [
                "LeaseholdCore", "LeaseholdQueue", "LeaseholdDomain", "LeaseholdWire", "LeaseholdPostgres",
                "LeaseholdReactor", "LeaseholdRedis",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: defaultSwiftSettings
        ),
        .target(
            name: "LeaseholdSupervisor",
            dependencies: [
                "LeaseholdCore", "LeaseholdQueue", "LeaseholdPostgres", "LeaseholdRedis",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: defaultSwiftSettings
        ),
        .target(
            name: "LeaseholdNotifier",
            dependencies: [
                "LeaseholdCore", "LeaseholdPostgres",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: defaultSwiftSettings
        ),
        // What every role's process runs besides its role: migrations, the /metrics endpoint, the
        // process gauges, the log output.
        .target(
            name: "LeaseholdRuntime",
            dependencies: [
                "LeaseholdCore", "LeaseholdPostgres",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                // Metrics: LogOutput counts the log lines it drops.
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: defaultSwiftSettings
        ),
        // The local-stack harness: throwaway PostgreSQL and Redis (and a Redis Cluster) on loopback,
        // the fake Telegram Bot API, child processes. The embedded default, the demo and the tests
        // run on it; a deployed role never does.
        .target(
            name: "LeaseholdLocalStack",
            dependencies: [
                // CLinux: posix_spawn's closefrom action for ChildProcess.
                "CLinux", "LeaseholdPostgres", "LeaseholdRedis", "LeaseholdRuntime",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: defaultSwiftSettings
        ),

        // MARK: Ops console (leasehold console)
        .target(
            name: "LeaseholdConsole",
            dependencies: [
                // LeaseholdWire: PayloadRedactor, what the pages show of payloads.
                "LeaseholdQueue", "LeaseholdDomain", "LeaseholdPostgres", "LeaseholdRedis", "LeaseholdWire",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: defaultSwiftSettings
        ),

        .target(
            name: "LeaseholdLoadTest",
            dependencies: [
                // LeaseholdReactor: the sending clients' HTTP connections run on one (LoadHTTPConnection).
                "LeaseholdCore", "LeaseholdLocalStack", "LeaseholdRuntime", "LeaseholdDomain", "LeaseholdPostgres",
                "LeaseholdQueue",
                "LeaseholdReactor", "LeaseholdRedis",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: defaultSwiftSettings
        ),

        // MARK: Executable
        .executableTarget(
            name: "leasehold",
            dependencies: [
                "LeaseholdLocalStack", "LeaseholdRuntime", "LeaseholdIngress", "LeaseholdWorker", "LeaseholdSupervisor",
                "LeaseholdNotifier",
                "LeaseholdLoadTest", "LeaseholdConsole", "LeaseholdCore", "LeaseholdQueue", "LeaseholdDomain",
                "LeaseholdWire", "LeaseholdPostgres",
                "LeaseholdReactor", "LeaseholdRedis",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                // The ingress command runs the Hummingbird application LeaseholdIngress builds.
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: defaultSwiftSettings
        ),

        // libFuzzer target for the ingress body decoders; see .ci/fuzz. Without the fuzz flags it is
        // a replayer: `IngressFuzz FILE…` runs files (a crash reproducer, the corpus) through them.
        // It links LeaseholdWire alone: no libpq, no hiredis, no reactor.
        .executableTarget(name: "IngressFuzz", dependencies: ["LeaseholdWire"], swiftSettings: defaultSwiftSettings),

        // MARK: Test support, shipped as a library like HummingbirdTesting
        .target(
            name: "LeaseholdTesting",
            dependencies: [
                "LeaseholdLocalStack", "LeaseholdRuntime", "LeaseholdPostgres", "LeaseholdQueue", "LeaseholdRedis",
                "LeaseholdReactor",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: defaultSwiftSettings
        ),

        // MARK: Tests
        .testTarget(
            name: "LeaseholdCoreTests",
            dependencies: ["LeaseholdCore", .product(name: "Logging", package: "swift-log")],
            swiftSettings: defaultSwiftSettings
        ),
        .testTarget(
            name: "LeaseholdReactorTests",
            dependencies: [
                "LeaseholdReactor", "LeaseholdTesting", "CLibPQ",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: defaultSwiftSettings
        ),
        .testTarget(
            name: "LeaseholdPostgresTests",
            dependencies: ["LeaseholdPostgres", "LeaseholdReactor", "LeaseholdTesting"],
            swiftSettings: defaultSwiftSettings
        ),
        .testTarget(
            name: "LeaseholdRedisTests",
            dependencies: ["LeaseholdRedis", "LeaseholdReactor", "LeaseholdTesting", "LeaseholdLocalStack"],
            swiftSettings: defaultSwiftSettings
        ),
        .testTarget(
            name: "LeaseholdLoadTestTests", dependencies: ["LeaseholdLoadTest"], swiftSettings: defaultSwiftSettings),
        .testTarget(
            name: "LeaseholdRuntimeTests",
            dependencies: [
                "LeaseholdRuntime", "LeaseholdPostgres", "LeaseholdTesting",
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: defaultSwiftSettings
        ),
        .testTarget(
            name: "LeaseholdLocalStackTests",
            dependencies: ["LeaseholdLocalStack", "LeaseholdPostgres", "LeaseholdRedis", "LeaseholdTesting"],
            swiftSettings: defaultSwiftSettings
        ),
        .testTarget(
            name: "LeaseholdQueueTests",
            dependencies: [
                "LeaseholdQueue", "LeaseholdCore", "LeaseholdPostgres", "LeaseholdRedis", "LeaseholdReactor",
                "LeaseholdTesting",
                "LeaseholdLocalStack",
                // ThroughputSamplerTests migrates a temporary database.
                "LeaseholdRuntime",
            ],
            swiftSettings: defaultSwiftSettings
        ),
        .testTarget(
            name: "LeaseholdWorkerTests",
            dependencies: [
                "LeaseholdWorker", "LeaseholdQueue", "LeaseholdWire", "LeaseholdPostgres", "LeaseholdRedis",
                "LeaseholdTesting",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: defaultSwiftSettings
        ),
        .testTarget(
            name: "LeaseholdSupervisorTests",
            dependencies: [
                "LeaseholdSupervisor", "LeaseholdCore", "LeaseholdQueue", "LeaseholdPostgres", "LeaseholdRedis",
                "LeaseholdTesting", "LeaseholdLocalStack", "LeaseholdRuntime",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: defaultSwiftSettings
        ),
        .testTarget(
            name: "LeaseholdWireTests",
            dependencies: [
                // BodyDamage damages bodies with the seeded generator.
                "LeaseholdWire", "LeaseholdCore",
            ],
            swiftSettings: defaultSwiftSettings
        ),
        .testTarget(
            name: "LeaseholdDomainTests",
            dependencies: [
                "LeaseholdDomain", "LeaseholdWire", "LeaseholdPostgres", "LeaseholdRuntime", "LeaseholdTesting",
            ],
            swiftSettings: defaultSwiftSettings
        ),
        .testTarget(
            name: "LeaseholdIngressTests",
            dependencies: [
                "LeaseholdIngress", "LeaseholdCore", "LeaseholdQueue", "LeaseholdReactor", "LeaseholdRedis",
                "LeaseholdTesting",
                "LeaseholdLocalStack",
                // AnswerOutcomeTests checks how the load test reads ingress's answers.
                "LeaseholdLoadTest",
                // IngressEnqueueTests runs the application in the test process, in a ServiceGroup.
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                // SecretMatcherCodeTests compares the matcher's codes with HMAC<SHA256>.
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: defaultSwiftSettings
        ),
        .testTarget(
            name: "LeaseholdNotifierTests",
            dependencies: [
                "LeaseholdNotifier", "LeaseholdCore", "LeaseholdTesting", "LeaseholdPostgres", "LeaseholdLocalStack",
                "LeaseholdRuntime",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: defaultSwiftSettings
        ),
        .testTarget(
            name: "LeaseholdSystemTests",
            dependencies: [
                "LeaseholdTesting", "LeaseholdCore", "LeaseholdQueue", "LeaseholdWire", "LeaseholdPostgres",
                "LeaseholdRedis", "LeaseholdLocalStack", "LeaseholdRuntime",
            ],
            swiftSettings: defaultSwiftSettings
        ),
        .testTarget(
            name: "LeaseholdConsoleTests",
            dependencies: [
                "LeaseholdConsole", "LeaseholdTesting", "LeaseholdLocalStack", "LeaseholdRuntime", "LeaseholdQueue",
                "LeaseholdPostgres",
                "LeaseholdRedis", "LeaseholdDomain",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: defaultSwiftSettings
        ),
        // The executable's own code (its settings and their --help), through `@testable import leasehold`.
        .testTarget(
            name: "LeaseholdCommandTests",
            dependencies: [
                "leasehold", "LeaseholdWorker", "LeaseholdIngress", "LeaseholdSupervisor", "LeaseholdNotifier",
                "LeaseholdConsole", "LeaseholdWire",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: defaultSwiftSettings
        ),
        .testTarget(
            name: "LeaseholdDeploymentTests",
            dependencies: [
                "LeaseholdTesting", "LeaseholdLocalStack", "LeaseholdIngress", "LeaseholdPostgres", "LeaseholdRedis",
                .product(name: "Yams", package: "Yams"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: defaultSwiftSettings
        ),
    ]
)
