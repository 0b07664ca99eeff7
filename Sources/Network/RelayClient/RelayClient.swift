public import Device
public import Sync
public import DCGKAEncoding
public import DCGKACrypto
internal import Link
public import LinkIO
internal import WSClient
public import Logging
internal import NIOCore
internal import Synchronization
internal import CausalBroadcast

/// What one sync pass with a relay did.
public struct RelaySyncReport: Sendable, Equatable, Codable {
    public var relay: String
    /// Envelopes given to the relay, and how many it acknowledged as stored.
    public var sent = 0
    public var acknowledged = 0
    /// Envelopes received, and how many were new to this device.
    public var received = 0
    public var new = 0
    /// Groups the relay told of that this device did not ask for (invitations).
    public var invited = 0
    public var joined = 0
    /// Invitations from non-contacts waiting for `dcgka group accept`.
    public var invitations = 0
    public var messages = 0
    /// Contacts whose key bundle the relay's directory had newer than mine.
    public var bundlesRefreshed = 0
    /// Why the link ended early, if it did.
    public var error: String?

    public init(relay: String) { self.relay = relay }
}

/// Why a sync with a relay failed, in words.
public enum RelayClientError: Error, Equatable, Sendable, CustomStringConvertible {
    case unreachable(String)
    case refused(SyncErrorCode, String)
    case link(String)
    case timeout

    public var description: String {
        switch self {
        case .unreachable(let why): "the relay cannot be reached (\(why))"
        case .refused(let code, let text): "the relay refused: \(text) (\(code))"
        case .link(let why): "the link to the relay failed: \(why)"
        case .timeout: "the relay did not answer in time"
        }
    }
}

/// The device's side of a relay (NETWORK.md §11, §13): a secure link over a WebSocket, the sync
/// session over the device's log, invitations followed, acknowledgments clearing the outbox.
public struct RelayClient<Random: RandomNumberGenerator & Sendable>: Sendable {
    public let device: Device<Random>
    public let identity: IdentityKey
    public let logger: Logger

    public init(device: Device<Random>, identity: IdentityKey, logger: Logger = Logger(label: "dcgka.relay-client")) {
        self.device = device
        self.identity = identity
        self.logger = logger
    }

    /// One pass: push what the relay lacks, pull what I lack, follow invitations, until both sides
    /// have nothing more to say (a `ping` answered with nothing in between).
    public func sync(with address: RelayAddress, timeout: Duration = .seconds(60)) async throws -> RelaySyncReport {
        let device = device
        return try await connect(address, timeout: timeout) { channel in
            var pass = RelayPass(device: device, me: identity.id, report: RelaySyncReport(relay: address.description))
            try await pass.run(&channel, follow: nil)
            return pass.report
        }
    }

    /// Stays connected: one pass, then subscriptions; new envelopes in my log (from this or any
    /// other process on the home) are pushed as the log grows, and the relay's pushes are taken
    /// in. Returns or throws when the link ends (the caller reconnects with backoff).
    public func follow(_ address: RelayAddress, onChange: @escaping @Sendable (RelaySyncReport) -> Void) async throws {
        let device = device
        _ = try await connect(address, timeout: nil) { channel in
            var pass = RelayPass(device: device, me: identity.id, report: RelaySyncReport(relay: address.description))
            try await pass.run(&channel, follow: onChange)
            return true
        }
    }

    func connect<T: Sendable>(
        _ address: RelayAddress, timeout: Duration?, _ body: @escaping @Sendable (inout LinkChannel) async throws -> T
    ) async throws -> T {
        try await RelayLink.with(address, identity: identity, timeout: timeout, logger: logger, body)
    }
}

/// A secure link to a relay as a scoped resource: connect, authenticate both sides (§12), run
/// `body` with the channel, close. Errors come out as ``RelayClientError``.
public enum RelayLink {
    public static func with<T: Sendable>(
        _ address: RelayAddress, identity: IdentityKey, timeout: Duration?, logger: Logger,
        _ body: @escaping @Sendable (inout LinkChannel) async throws -> T
    ) async throws -> T {
        let result = ResultBox<T>()
        let url = "ws://\(address.authority)/link"
        let work: @Sendable () async throws -> Void = {
            do {
                try await WebSocketClient.connect(
                    url: url, configuration: .init(maxFrameSize: WebSocketLink.maximumWebSocketFrame), logger: logger
                ) { inbound, outbound, _ in
                    var iterator = inbound.messages(maxSize: WebSocketLink.maximumWebSocketFrame).makeAsyncIterator()
                    var random = SystemRandomNumberGenerator()
                    let handshake = try LinkHandshake.initiator(identity: identity, expectedPeer: address.relay, random: &random)
                    let link = try await WebSocketLink.establish(handshake, inbound: &iterator, outbound: outbound)
                    var channel = LinkChannel(link: link, iterator: iterator)
                    do {
                        result.set(.success(try await body(&channel)))
                    } catch {
                        result.set(.failure(error))
                    }
                    try? await outbound.close(.normalClosure, reason: nil)
                }
            } catch let error as RelayClientError {
                throw error
            } catch let error as WebSocketLinkError {
                throw RelayClientError.link(error.description)
            } catch {
                throw RelayClientError.unreachable("\(error)")
            }
        }
        if let timeout {
            try await withThrowingTaskGroup(of: Bool.self) { group in
                group.addTask { try await work(); return true }
                group.addTask { try await Task.sleep(for: timeout); return false }
                let finished = try await group.next() ?? false
                group.cancelAll()
                if !finished { throw RelayClientError.timeout }
            }
        } else {
            try await work()
        }
        switch result.get() {
        case .success(let value): return value
        case .failure(let error as RelayClientError): throw error
        case .failure(let error as WebSocketLinkError): throw RelayClientError.link(error.description)
        case .failure(let error): throw error
        case nil: throw RelayClientError.link("the relay closed the connection during the handshake")
        }
    }
}

/// A value set once by the connection handler, read after it returns.
final class ResultBox<T: Sendable>: Sendable {
    private let value = Mutex<Result<T, any Error>?>(nil)
    func set(_ result: Result<T, any Error>) { value.withLock { $0 = result } }
    func get() -> Result<T, any Error>? { value.withLock { $0 } }
}

/// What a link has seen of the device's logs: hashes that arrived over it (never pushed back)
/// and, per group, the log position up to which everything newer was given to the peer.
final class LinkCursor: Sendable {
    private struct State {
        var arrived: Set<Bytes32> = []
        var positions: [GroupID: Int64] = [:]
        /// Groups this link asked for after the peer's `invited` (their `have` already went out).
        var requested: Set<GroupID> = []
    }
    private let state = Mutex(State())

    func arrived(_ hashes: [Bytes32]) { state.withLock { $0.arrived.formUnion(hashes) } }

    /// The link asked the peer for these groups (invitations): if one is joined over it, what my
    /// log gains besides what arrived (my acknowledgments of the welcome) is pushed.
    func requested(_ groups: [GroupID]) { state.withLock { $0.requested.formUnion(groups) } }

    /// Starts every group I am in at its current log end: what is older travels by `have`.
    func start<R>(_ device: Device<R>) throws {
        for group in try device.joinedGroupIDs() {
            let last = try device.lastLogPosition(of: group)
            state.withLock { $0.positions[group] = last }
        }
    }

    /// The envelopes my log gained since the cursor (mine, or from another link), as `push`
    /// messages for the peer; groups new on the home are announced with `have` instead.
    func fresh<R>(_ device: Device<R>) throws -> [SyncMessage] {
        var messages: [SyncMessage] = []
        for group in try device.joinedGroupIDs() {
            let (known, requested) = state.withLock { ($0.positions[group], $0.requested.contains(group)) }
            var after: Int64
            if let known {
                after = known
            } else if requested {
                // Joined over this link: the peer already answered my `have` with what it holds
                // (all of it marked as arrived); my log's own additions (the acknowledgment of the
                // welcome) are pushed from the log's start, and I subscribe for what follows.
                after = 0
                messages.append(.subscribe(group))
            } else {
                // A group new on this home (created, or joined by another link): the peer gets it
                // by answering my `have`, and I subscribe for what follows.
                let last = try device.lastLogPosition(of: group)
                state.withLock { $0.positions[group] = last }
                messages += [.have(group, try device.holdings(of: group).vector()), .subscribe(group)]
                continue
            }
            while true {
                let (wires, last) = try device.log(of: group, after: after)
                guard !wires.isEmpty else { break }
                after = last
                let new = state.withLock { state in
                    wires.filter { wire in
                        guard let hash = try? Envelope(wire: wire, groupID: group).hash else { return false }
                        return !state.arrived.contains(hash)
                    }
                }
                if !new.isEmpty { messages.append(.push(group, new)) }
            }
            state.withLock { $0.positions[group] = after }
        }
        return messages
    }
}

/// One pass (or a followed link) over an established channel.
struct RelayPass<Random: RandomNumberGenerator & Sendable> {
    var device: Device<Random>
    let me: MemberID
    var report: RelaySyncReport
    let cursor = LinkCursor()

    /// Runs the §11 exchange. Quiet means a `ping` came back with nothing in between; then what
    /// my log gained meanwhile (my acknowledgments of what arrived, say) is pushed, and a pass
    /// ends once that, too, is quiet. Following, it subscribes and keeps pushing.
    mutating func run(_ channel: inout LinkChannel, follow: (@Sendable (RelaySyncReport) -> Void)?) async throws {
        let wanted = try device.joinedGroupIDs()
        try cursor.start(device)
        var session = SyncSession(me: me, wanted: wanted)
        var ping: UInt64 = 1
        var activity = 0
        // The directory (§13.3): my newest bundle for those who need it, my contacts' newest for me.
        let directory: [SyncMessage] = [.bundles([try device.profile().bundle.wireBytes]),
                                        .bundleRequest(try device.contacts().map(\.id))]
        try await channel.link.send(
            session.start().compactMap { if case .send(let m) = $0 { m } else { nil } } + directory + [.ping(ping)])
        var pusher: Task<Void, any Error>?
        defer { pusher?.cancel() }
        while true {
            guard let messages = try await channel.receive() else {
                throw RelayClientError.link("the relay closed the link")
            }
            for message in messages {
                if case .pong(let nonce) = message {
                    guard nonce == ping, pusher == nil else { continue }
                    if activity == 0 {
                        let fresh = try cursor.fresh(device)
                        if fresh.isEmpty {
                            guard let follow else { return }
                            pusher = try await startFollowing(channel.link, session: session, follow: follow)
                            continue
                        }
                        report.sent += fresh.reduce(0) { if case .push(_, let wires) = $1 { $0 + wires.count } else { $0 } }
                        try await channel.link.send(fresh)
                    }
                    activity = 0
                    ping += 1
                    try await channel.link.send([.ping(ping)])
                    continue
                }
                activity += 1
                if case .have(let group, let vector) = message, let head = vector.heads[me] { try confirmHeld(group, upTo: head) }
                let outputs = try await session.receive(message, holder: device)
                activity += try await handle(outputs, session: &session, link: channel.link)
                if let follow, pusher != nil { follow(report) }
            }
        }
    }

    /// The relay's `have` is what it stored durably: my envelopes of the group up to its head for
    /// me (the same chain: the hash at that seq is mine) are confirmed, like an `ack`, so that an
    /// outbox entry whose `ack` was lost (a relay stopped between its commit and its `ack`) is
    /// cleared too (NETWORK.md §10.2). Only while something waits in the outbox.
    mutating func confirmHeld(_ group: GroupID, upTo head: Frontier.Head) throws {
        guard try device.store.read({ try $0.outboxCount() }) > 0,
              let chain = try device.holdings(of: group).chains[me], chain[head.seq] == head.hash else { return }
        report.acknowledged += try device.acknowledged(group, chain.filter { $0.key <= head.seq }.map(\.value))
    }

    /// Handles the session's outputs; returns how many messages were sent.
    mutating func handle(_ outputs: [SyncSession.Output], session: inout SyncSession, link: WebSocketLink) async throws -> Int {
        var pending = outputs
        var sent = 0
        while !pending.isEmpty {
            switch pending.removeFirst() {
            case .send(let message):
                if case .envelopes(_, let wires) = message { report.sent += wires.count }
                try await link.send([message])
                sent += 1
            case .deliver(let group, let wires):
                report.received += wires.count
                let hashes = wires.compactMap { try? Envelope(wire: $0, groupID: group).hash }
                cursor.arrived(hashes)
                let result = try device.receive(wires.map { ReceivedEnvelope(group: group, wire: $0) })
                report.new += result.new
                report.joined += result.joined.count
                report.invitations += result.invitations.count
                report.messages += result.messages
                pending += try await session.committed(group, hashes: try device.held(group, hashes), holder: device)
            case .acknowledged(let group, let hashes):
                report.acknowledged += hashes.count
                try device.acknowledged(group, hashes)
            case .invited(let groups):
                report.invited += groups.count
                cursor.requested(groups)
                pending += try await session.request(groups, holder: device)
            case .closed(let code, let text):
                throw RelayClientError.refused(code, text)
            case .bundles(let bundles):
                report.bundlesRefreshed += try device.refreshContacts(bundles)
            case .prunedAtPeer, .subscribed, .granted, .pong, .bundlesRequested:
                break
            }
        }
        return sent
    }

    /// After the first quiet point: subscribe to every group, then push my log's growth (from
    /// this process or any other on the home) every quarter second.
    func startFollowing(
        _ link: WebSocketLink, session: SyncSession, follow: @escaping @Sendable (RelaySyncReport) -> Void
    ) async throws -> Task<Void, any Error> {
        let groups = try device.joinedGroupIDs()
        try await link.send(groups.map { .subscribe($0) })
        follow(report)
        let device = device
        let cursor = cursor
        return Task {
            var ticks: UInt64 = 0
            while !Task.isCancelled {
                try await Task.sleep(for: .milliseconds(250))
                ticks += 1
                var fresh = try cursor.fresh(device)
                // A keep-alive well within the relay's idle limit (its answer is ignored).
                if ticks % 240 == 0 { fresh.append(.ping(UInt64.max - ticks)) }
                if !fresh.isEmpty { try await link.send(fresh) }
            }
        }
    }
}
