// swift-tools-version:6.1
import PackageDescription

/// Layers of PROTOCOL.md, bottom to top. Each library module has one job; the
/// folder names under `Sources/` mirror the spec's sections.
let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "swift-dcgka",
    platforms: [.macOS(.v14), .iOS(.v17)],
    products: [
        .library(name: "DCGKAGroup", targets: ["DCGKAGroup"]),
        .library(name: "Simulator", targets: ["Simulator"]),
        .library(name: "Sync", targets: ["Sync"]),
        .library(name: "Device", targets: ["Device"]),
        .library(name: "DeviceStorage", targets: ["DeviceStorage"]),
        .library(name: "Link", targets: ["Link"]),
        .library(name: "Relay", targets: ["Relay"]),
        .library(name: "RelayStorage", targets: ["RelayStorage"]),
        .library(name: "RelayPostgres", targets: ["RelayPostgres"]),
        .library(name: "RelayServer", targets: ["RelayServer"]),
        .library(name: "LinkIO", targets: ["LinkIO"]),
        .library(name: "WebUI", targets: ["WebUI"]),
        .executable(name: "dcgka", targets: ["dcgka"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto.git", exact: "4.5.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        // The device's durable store (NETWORK.md §10): SQLite through GRDB.
        .package(url: "https://github.com/groue/GRDB.swift.git", exact: "7.10.0"),
        // The relay (NETWORK.md §13): Hummingbird 2 with WebSocket upgrades, graceful shutdown
        // through swift-service-lifecycle, logs and metrics with a Prometheus endpoint.
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", exact: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", exact: "2.8.1"),
        .package(url: "https://github.com/hummingbird-project/swift-websocket.git", exact: "1.6.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", exact: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log.git", exact: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", exact: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", exact: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio.git", exact: "2.101.3"),
        .package(url: "https://github.com/vapor/postgres-nio.git", exact: "1.33.2"),
        // Micro-benchmarks (Benchmarks/DCGKABenchmarks, `swift package benchmark`).
        .package(url: "https://github.com/ordo-one/package-benchmark.git", exact: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        // §8 canonical encoding and the identifiers every layer encodes.
        .target(name: "DCGKAEncoding", swiftSettings: strict),
        // §2 cipher suite, identities, key bundles, injected randomness.
        .target(
            name: "DCGKACrypto",
            dependencies: ["DCGKAEncoding", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict),
        // §3 two-party secure messaging.
        .target(name: "TwoPartyMessaging", dependencies: ["DCGKAEncoding", "DCGKACrypto"], swiftSettings: strict),
        // §4 SR-DGM membership (incremental) and its naive oracle.
        .target(name: "Membership", dependencies: ["DCGKAEncoding"], swiftSettings: strict),
        // §5 DCGKA.
        .target(
            name: "KeyAgreement",
            dependencies: ["DCGKAEncoding", "DCGKACrypto", "TwoPartyMessaging", "Membership"],
            swiftSettings: strict),
        // §6 authenticated causal broadcast.
        .target(name: "CausalBroadcast", dependencies: ["DCGKAEncoding", "DCGKACrypto"], swiftSettings: strict),
        // §7 message ratchets.
        .target(name: "GroupMessaging", dependencies: ["DCGKAEncoding", "DCGKACrypto"], swiftSettings: strict),
        // The application-facing group API tying §5–§7 together.
        .target(
            name: "DCGKAGroup",
            dependencies: ["DCGKAEncoding", "DCGKACrypto", "KeyAgreement", "CausalBroadcast", "GroupMessaging", "Membership"],
            swiftSettings: strict),
        // §9 deterministic network simulator.
        .target(
            name: "Simulator",
            dependencies: [
                "DCGKAGroup", "DCGKACrypto", "DCGKAEncoding", "CausalBroadcast", "GroupMessaging", "KeyAgreement",
                "Membership", "TwoPartyMessaging",
            ],
            swiftSettings: strict),
        // NETWORK.md §11: the sync protocol between any two holders (messages, framing, vectors,
        // what to send), sans-IO.
        .target(
            name: "Sync",
            dependencies: ["DCGKAEncoding", "DCGKACrypto", "CausalBroadcast"],
            path: "Sources/Network/Sync", swiftSettings: strict),
        // NETWORK.md §10: the device engine (identity, prekeys, contacts, groups, envelope log,
        // outbox, history) over a storage protocol; message content; sync files (§14.4); groups
        // carried for their members with the relay's admission rules (§14.3).
        .target(
            name: "Device",
            dependencies: ["DCGKAEncoding", "DCGKACrypto", "CausalBroadcast", "KeyAgreement", "DCGKAGroup", "Sync", "Relay",
                           .product(name: "Crypto", package: "swift-crypto"),
                           .product(name: "_CryptoExtras", package: "swift-crypto")],
            path: "Sources/Network/Device", swiftSettings: strict),
        // NETWORK.md §12: Noise_XX_25519_ChaChaPoly_SHA256 with Ed25519 identities bound to the
        // static keys; sans-IO handshake and transport, the same over TCP and WebSocket.
        .target(
            name: "Link",
            dependencies: ["DCGKAEncoding", "DCGKACrypto", .product(name: "Crypto", package: "swift-crypto")],
            path: "Sources/Network/Link", swiftSettings: strict),
        // NETWORK.md §13: the relay's rules (admission, authorization, limits) and its store
        // protocol; the per-link logic around the §11 session.
        .target(
            name: "Relay",
            dependencies: ["DCGKAEncoding", "DCGKACrypto", "CausalBroadcast", "KeyAgreement", "Sync"],
            path: "Sources/Network/Relay", swiftSettings: strict),
        // The relay's SQLite store (GRDB).
        .target(
            name: "RelayStorage",
            dependencies: ["Relay", "Sync", "DCGKAEncoding", "CausalBroadcast", .product(name: "GRDB", package: "GRDB.swift")],
            path: "Sources/Network/RelayStorage", swiftSettings: strict),
        // The relay's PostgreSQL store (postgres-nio): many relay processes on one database,
        // new envelopes announced by LISTEN/NOTIFY.
        .target(
            name: "RelayPostgres",
            dependencies: ["Relay", "Sync", "DCGKAEncoding", "CausalBroadcast",
                           .product(name: "PostgresNIO", package: "postgres-nio"),
                           .product(name: "NIOCore", package: "swift-nio"),
                           .product(name: "Logging", package: "swift-log")],
            path: "Sources/Network/RelayPostgres", swiftSettings: strict),
        // A secure link (§12) over a WebSocket (the relay and its clients) or over TCP (direct
        // links between devices, §14.2).
        .target(
            name: "LinkIO",
            dependencies: ["Link", "Sync", "DCGKAEncoding", "DCGKACrypto",
                           .product(name: "WSCore", package: "swift-websocket"),
                           .product(name: "NIOCore", package: "swift-nio"),
                           .product(name: "NIOPosix", package: "swift-nio")],
            path: "Sources/Network/LinkIO", swiftSettings: strict),
        // `dcgka relay serve`: Hummingbird, WebSocket, service lifecycle, metrics.
        .target(
            name: "RelayServer",
            dependencies: ["Relay", "RelayStorage", "Link", "LinkIO", "Sync", "DCGKAEncoding", "DCGKACrypto", "CausalBroadcast",
                           .product(name: "Hummingbird", package: "hummingbird"),
                           .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                           .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                           .product(name: "Logging", package: "swift-log"),
                           .product(name: "Metrics", package: "swift-metrics"),
                           .product(name: "Prometheus", package: "swift-prometheus")],
            path: "Sources/Network/RelayServer", swiftSettings: strict),
        // The device's side of relays: one sync pass, or staying connected.
        .target(
            name: "RelayClient",
            dependencies: ["Device", "Link", "LinkIO", "Sync", "DCGKAEncoding", "DCGKACrypto", "CausalBroadcast",
                           .product(name: "WSClient", package: "swift-websocket"),
                           .product(name: "Logging", package: "swift-log"),
                           .product(name: "NIOCore", package: "swift-nio"),
                           .product(name: "NIOPosix", package: "swift-nio")],
            path: "Sources/Network/RelayClient", swiftSettings: strict),
        // NETWORK.md §14–§15: the switching scenario simulated over the real device, sync and
        // relay engines, on memory links with topology changes (`dcgka simulate --topology switching`).
        .target(
            name: "NetworkSimulation",
            dependencies: ["Device", "DeviceStorage", "Sync", "Relay", "RelayStorage", "RelayClient", "LinkIO", "DCGKAEncoding",
                           "DCGKACrypto", "CausalBroadcast", .product(name: "Logging", package: "swift-log")],
            path: "Sources/Network/Simulation", swiftSettings: strict),
        // The device's SQLite store (GRDB, WAL, migrations, secure_delete).
        .target(
            name: "DeviceStorage",
            dependencies: ["Device", "DCGKAEncoding", .product(name: "GRDB", package: "GRDB.swift"),
                           .product(name: "Crypto", package: "swift-crypto"), .product(name: "_CryptoExtras", package: "swift-crypto")],
            path: "Sources/Network/DeviceStorage", swiftSettings: strict),
        // `dcgka ui`: the local web client on loopback (Hummingbird, a JSON WebSocket API), driving
        // the same device engine as the CLI; its page (HTML, CSS, JavaScript modules) ships as a
        // resource.
        .target(
            name: "WebUI",
            dependencies: ["Device", "RelayClient", "Sync", "DCGKAEncoding", "DCGKACrypto",
                           .product(name: "Hummingbird", package: "hummingbird"),
                           .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                           .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                           .product(name: "Logging", package: "swift-log"),
                           .product(name: "NIOCore", package: "swift-nio")],
            path: "Sources/WebUI", resources: [.copy("Resources/site")], swiftSettings: strict),
        // `dcgka bench`: the paper's evaluation method and the crypto floor.
        .target(
            name: "Benchmarking",
            dependencies: ["DCGKAGroup", "DCGKACrypto", "DCGKAEncoding", "CausalBroadcast", "Membership", "Device", "DeviceStorage",
                           "NetworkSimulation", "Sync", "RelayClient", "LinkIO", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        .executableTarget(
            name: "dcgka",
            dependencies: [
                "Simulator", "DCGKAGroup", "DCGKACrypto", "DCGKAEncoding", "Benchmarking", "Device", "DeviceStorage", "Sync",
                "RelayServer", "RelayClient", "Relay", "RelayStorage", "RelayPostgres", "NetworkSimulation", "WebUI",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict),

        // Helpers shared by the test targets (codec checks, hex, decoder fuzzing).
        .target(name: "DCGKATestSupport", dependencies: ["DCGKAEncoding"], path: "Tests/DCGKATestSupport"),
        .testTarget(name: "DCGKAEncodingTests", dependencies: ["DCGKAEncoding", "DCGKATestSupport"]),
        .testTarget(name: "DCGKACryptoTests", dependencies: ["DCGKACrypto", "DCGKAEncoding", "DCGKATestSupport", .product(name: "Crypto", package: "swift-crypto")]),
        .testTarget(name: "TwoPartyMessagingTests", dependencies: ["TwoPartyMessaging", "DCGKACrypto", "DCGKAEncoding", "DCGKATestSupport"]),
        .testTarget(name: "MembershipTests", dependencies: ["Membership", "DCGKAEncoding"]),
        .testTarget(name: "KeyAgreementTests", dependencies: ["KeyAgreement", "DCGKACrypto", "DCGKAEncoding", "Membership", "DCGKATestSupport"]),
        .testTarget(name: "CausalBroadcastTests", dependencies: ["CausalBroadcast", "DCGKACrypto", "DCGKAEncoding"]),
        .testTarget(name: "GroupMessagingTests", dependencies: ["GroupMessaging", "DCGKACrypto", "DCGKAEncoding"]),
        .testTarget(
            name: "DCGKAGroupTests",
            dependencies: ["DCGKAGroup", "DCGKACrypto", "DCGKAEncoding", "Membership", "CausalBroadcast", "KeyAgreement", "GroupMessaging", "TwoPartyMessaging"]),
        .testTarget(name: "SimulatorTests", dependencies: ["Simulator", "DCGKAEncoding"]),
        .testTarget(name: "CLITests", dependencies: ["dcgka", "DCGKATestSupport"]),
        // End-to-end tests of the messenger CLI: real `dcgka` processes on separate homes.
        .testTarget(name: "MessengerTests", dependencies: ["dcgka", "DCGKATestSupport", "DCGKACrypto"]),
        .testTarget(
            name: "LinkTests",
            dependencies: ["Link", "DCGKACrypto", "DCGKAEncoding", "DCGKATestSupport", .product(name: "Crypto", package: "swift-crypto")],
            exclude: ["Vectors"]),
        .testTarget(
            name: "LinkIOTests",
            dependencies: ["LinkIO", "Link", "Sync", "DCGKACrypto", "DCGKAEncoding", "DCGKATestSupport",
                           .product(name: "NIOCore", package: "swift-nio"),
                           .product(name: "NIOPosix", package: "swift-nio")]),
        .testTarget(
            name: "RelayTests",
            dependencies: ["NetworkSimulation", "Relay", "RelayStorage", "RelayPostgres", "RelayServer", "RelayClient", "Link", "LinkIO", "Sync", "Device", "DeviceStorage",
                           "DCGKAGroup", "CausalBroadcast", "DCGKACrypto", "DCGKAEncoding", "DCGKATestSupport",
                           .product(name: "WSClient", package: "swift-websocket")]),
        // The web client: its guard as values, and the real page in headless Chromium (Tests/Browser).
        .testTarget(name: "WebUITests", dependencies: ["WebUI", "dcgka", "DCGKATestSupport"]),
        .testTarget(name: "SyncTests", dependencies: ["Sync", "CausalBroadcast", "DCGKACrypto", "DCGKAEncoding"]),
        .testTarget(
            name: "DeviceTests",
            dependencies: ["Device", "DeviceStorage", "NetworkSimulation", "Sync", "DCGKAGroup", "KeyAgreement", "CausalBroadcast", "DCGKACrypto", "DCGKAEncoding",
                           .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(name: "BenchmarkingTests", dependencies: ["Benchmarking", "Membership", "DCGKAEncoding"]),
        .testTarget(
            name: "KnownAnswerTests",
            dependencies: ["KeyAgreement", "GroupMessaging", "DCGKAGroup", "CausalBroadcast", "DCGKACrypto", "DCGKAEncoding", "DCGKATestSupport"],
            exclude: ["Vectors"]),

        // Micro-benchmarks with ordo-one/benchmark: `swift package benchmark`.
        .executableTarget(
            name: "DCGKABenchmarks",
            dependencies: [
                "DCGKAGroup", "DCGKACrypto", "DCGKAEncoding", "CausalBroadcast", "TwoPartyMessaging", "Membership",
                "GroupMessaging", "Benchmarking",
                .product(name: "Benchmark", package: "package-benchmark"),
            ],
            path: "Benchmarks/DCGKABenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]),
    ],
    swiftLanguageModes: [.v6]
)
