public import Relay
public import Sync
public import DCGKAEncoding
public import DCGKACrypto
public import Logging
internal import Link
internal import LinkIO
internal import RelayStorage
internal import Hummingbird
internal import HummingbirdWebSocket
internal import ServiceLifecycle
internal import NIOCore
internal import Metrics
internal import Prometheus
internal import Foundation
internal import Synchronization

/// How `dcgka relay serve` runs (NETWORK.md §13).
public struct RelayServerConfiguration: Sendable {
    public var host: String = "127.0.0.1"
    /// 0 picks a free port (tests); the printed address names the real one.
    public var port: Int = Int(RelayAddress.defaultPort)
    public var limits = RelayLimits()
    /// How often payloads past retention are pruned.
    public var pruneEverySeconds: Double = 3_600
    /// Where to serve Prometheus metrics (`/metrics`), if anywhere. The process's metrics system
    /// is bootstrapped with a Prometheus registry when this is set (once per process).
    public var metricsHost: String?
    public var metricsPort: Int = 0

    public init() {}
}

/// What `/info` publishes: the relay's identity and every limit it enforces (§13.5).
public struct RelayInfo: Codable, Sendable, Equatable {
    public var relay: String
    public var version: Int
    public var limits: RelayLimits

    public init(relay: String, version: Int, limits: RelayLimits) {
        self.relay = relay
        self.version = version
        self.limits = limits
    }
}

/// The relay server: Hummingbird 2 with a WebSocket route carrying secure links (§12), the
/// relay's rules around the sync engine (§13), group commit, live push, a retention pruner and
/// graceful shutdown through swift-service-lifecycle.
public struct RelayServer: Sendable {
    public let identity: IdentityKey
    public let store: any RelayStore
    public let configuration: RelayServerConfiguration
    public let logger: Logger
    let clock: @Sendable () -> Double

    public init(
        identity: IdentityKey, store: any RelayStore, configuration: RelayServerConfiguration, logger: Logger,
        clock: @escaping @Sendable () -> Double = RelayServer.systemClock
    ) {
        self.identity = identity
        self.store = store
        self.configuration = configuration
        self.logger = logger
        self.clock = clock
    }

    /// Seconds since 1970 from the system clock.
    public static let systemClock: @Sendable () -> Double = { Date().timeIntervalSince1970 }

    /// Runs until SIGINT or SIGTERM (or cancellation), then drains gracefully. `onListening`
    /// gets the address once the socket listens.
    public func run(onListening: @escaping @Sendable (RelayAddress) -> Void) async throws {
        let environment = ServerEnvironment(store: store, limits: configuration.limits, clock: clock)
        let state = ServerState(limits: configuration.limits)
        let info = RelayInfo(relay: RelayAddress.encode(identity.id), version: Int(SyncMessage.protocolVersion), limits: configuration.limits)
        let router = Router(context: RelayRequestContext.self)
        router.get("/info") { _, _ -> Response in
            let body = (try? JSONEncoder().encode(info)) ?? Data()
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
        }
        let identity = identity
        let logger = logger
        let clock = clock
        router.ws("/link") { inbound, outbound, context in
            await LinkHandler(
                identity: identity, environment: environment, state: state, logger: logger, clock: clock,
                remote: context.requestContext.remoteHost, closeConnection: { [channel = context.requestContext.channel] in channel.close(promise: nil) }
            ).run(inbound: inbound, outbound: outbound)
        }
        let host = configuration.host
        let app = Application(
            router: router,
            server: .http1WebSocketUpgrade(
                webSocketRouter: router,
                configuration: .init(maxFrameSize: WebSocketLink.maximumWebSocketFrame, autoPing: .enabled(timePeriod: .seconds(60)))),
            configuration: .init(address: .hostname(host, port: configuration.port), serverName: "dcgka-relay"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                onListening(RelayAddress(host: host, port: UInt16(clamping: port), relay: identity.id))
            },
            logger: logger)
        let pruner = Pruner(store: store, limits: configuration.limits, every: configuration.pruneEverySeconds, clock: clock, logger: logger)
        var services: [any Service] = [app, pruner]
        if let metricsHost = configuration.metricsHost {
            let registry = PrometheusCollectorRegistry()
            MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
            let metricsRouter = Router()
            metricsRouter.get("/metrics") { _, _ -> Response in
                Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                         body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
            }
            services.append(Application(
                router: metricsRouter, configuration: .init(address: .hostname(metricsHost, port: configuration.metricsPort)), logger: logger))
        }
        let serviceGroup = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        let store = store
        let hub = state.hub
        // The store runs beside the server (a connection pool; other processes' envelopes, which
        // this process pushes to its own subscribers); the server starts once the store answers.
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await store.run { envelopeGroup, wires in await hub.stored(envelopeGroup, wires, except: nil, store: store) }
            }
            try await store.ready()
            do {
                try await serviceGroup.run()
            } catch is CancellationError {
                // A graceful shutdown can end the server's own tasks by cancellation: not a failure.
            }
            group.cancelAll()
        }
    }

    /// The relay's identity in `directory/relay-identity` (its 32-byte seed, owner-only), created
    /// on first start.
    public static func identity(in directory: String) throws -> IdentityKey {
        let manager = FileManager.default
        try manager.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let path = (directory as NSString).appendingPathComponent("relay-identity")
        if let data = manager.contents(atPath: path) {
            guard data.count == 32, let seed = Bytes32(Array(data)) else {
                throw RelayStoreError.cannotOpen("\(path) is not a relay identity (32 bytes)")
            }
            return IdentityKey(seed: seed)
        }
        var random = SystemRandomNumberGenerator()
        let seed = Bytes32((0..<32).map { _ in UInt8.random(in: 0...255, using: &random) })!
        guard manager.createFile(atPath: path, contents: Data(seed.bytes), attributes: [.posixPermissions: 0o600]) else {
            throw RelayStoreError.cannotOpen("cannot write \(path)")
        }
        return IdentityKey(seed: seed)
    }
}

/// The request context: Hummingbird's, plus the peer's address for per-address limits.
struct RelayRequestContext: RequestContext, WebSocketRequestContext {
    var coreContext: CoreRequestContextStorage
    let webSocket: WebSocketHandlerReference<Self>
    let remoteHost: String
    /// The connection, to close a link's socket without a close handshake (a slow reader).
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        webSocket = .init()
        remoteHost = source.channel.remoteAddress?.ipAddress ?? "unknown"
        channel = source.channel
    }
}

/// The connections' shared environment: store, limits, group commit, per-identity buckets.
final class ServerEnvironment: RelayEnvironment {
    let store: any RelayStore
    let limits: RelayLimits
    let committer: GroupCommitter
    private let buckets = Mutex<[MemberID: TokenBucket]>([:])

    init(store: any RelayStore, limits: RelayLimits, clock: @escaping @Sendable () -> Double) {
        self.store = store
        self.limits = limits
        committer = GroupCommitter(store: store, quotas: StoreQuotas(limits), clock: { UInt64(max(0, clock())) })
    }

    func commit(_ batch: StoreBatch) async throws -> [StoreOutcome] {
        let started = ContinuousClock.now
        let outcomes = try await committer.commit(batch)
        let elapsed = started.duration(to: .now).components
        Timer(label: "dcgka_relay_commit_seconds").recordNanoseconds(elapsed.seconds * 1_000_000_000 + elapsed.attoseconds / 1_000_000_000)
        return outcomes
    }

    func takeEnvelopeTokens(_ identity: MemberID, _ count: Int, now: Double) async -> Bool {
        buckets.withLock { buckets in
            var bucket = buckets[identity] ?? TokenBucket(rate: limits.envelopesPerSecondPerIdentity, burst: limits.envelopeBurstPerIdentity, now: now)
            let ok = bucket.take(Double(count), now: now)
            buckets[identity] = bucket
            return ok
        }
    }
}

/// Connection counts and the hub, shared by every link of the process.
final class ServerState: Sendable {
    struct Counts {
        var total = 0
        var byAddress: [String: Int] = [:]
        var byIdentity: [MemberID: Int] = [:]
        var nextID = 0
        var newIdentities: TokenBucket?
    }

    let limits: RelayLimits
    let hub = RelayHub()
    private let counts = Mutex(Counts())

    init(limits: RelayLimits) { self.limits = limits }

    /// A new connection from `address`: its ID, or nil when a limit refuses it.
    func open(address: String) -> Int? {
        counts.withLock { counts in
            guard counts.total < limits.connectionsTotal, counts.byAddress[address, default: 0] < limits.connectionsPerAddress else { return nil }
            counts.total += 1
            counts.byAddress[address, default: 0] += 1
            counts.nextID += 1
            return counts.nextID
        }
    }

    func close(address: String) {
        counts.withLock { counts in
            counts.total -= 1
            counts.byAddress[address, default: 1] -= 1
            if counts.byAddress[address] == 0 { counts.byAddress[address] = nil }
        }
    }

    func open(identity: MemberID, isNew: Bool, now: Double) -> RelayRefusal? {
        counts.withLock { counts in
            guard counts.byIdentity[identity, default: 0] < limits.connectionsPerIdentity else { return .tooManyConnections }
            if isNew {
                var bucket = counts.newIdentities
                    ?? TokenBucket(rate: Double(limits.newIdentitiesPerMinute) / 60, burst: Double(limits.newIdentitiesPerMinute), now: now)
                let ok = bucket.take(now: now)
                counts.newIdentities = bucket
                guard ok else { return .rateLimited }
            }
            counts.byIdentity[identity, default: 0] += 1
            return nil
        }
    }

    func close(identity: MemberID) {
        counts.withLock { counts in
            counts.byIdentity[identity, default: 1] -= 1
            if counts.byIdentity[identity] == 0 { counts.byIdentity[identity] = nil }
        }
    }

    var connectionCount: Int { counts.withLock { $0.total } }
}

/// Prunes application payloads past retention (NETWORK.md §13.4), hourly by default.
struct Pruner: Service {
    let store: any RelayStore
    let limits: RelayLimits
    let every: Double
    let clock: @Sendable () -> Double
    let logger: Logger

    func run() async throws {
        try await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let now = UInt64(max(0, clock()))
                if now > limits.payloadRetentionSeconds,
                   let pruned = try? await store.prune(receivedBefore: now - limits.payloadRetentionSeconds), pruned > 0 {
                    logger.info("pruned payloads past retention", metadata: ["count": "\(pruned)"])
                }
                try await Task.sleep(for: .seconds(every))
            }
        }
    }
}
