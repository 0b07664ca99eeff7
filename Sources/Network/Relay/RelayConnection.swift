public import DCGKAEncoding
public import Sync
internal import CausalBroadcast
internal import DCGKACrypto

/// What a relay's connections share: the store, the limits, group commit and the per-identity
/// rate limits. The server provides it; tests can provide their own.
public protocol RelayEnvironment: Sendable {
    var store: any RelayStore { get }
    var limits: RelayLimits { get }
    /// Stores a batch durably, committed together with other links' batches (group commit).
    func commit(_ batch: StoreBatch) async throws -> [StoreOutcome]
    /// Takes `count` envelope tokens from the identity's bucket (shared by its connections).
    func takeEnvelopeTokens(_ identity: MemberID, _ count: Int, now: Double) async -> Bool
}

/// One authenticated link at a relay (NETWORK.md §13), after the handshake: the §11 session
/// with the relay's rules around it. Messages in; messages, subscriptions and newly stored
/// envelopes (for fan-out) out. Time is passed in.
public struct RelayConnection: Sendable {
    public enum Output: Sendable, Equatable {
        case send(SyncMessage)
        /// The peer subscribed to a group it may read: push it what others store from now on.
        case subscribe(GroupID)
        /// Newly stored envelopes of a group, for the other links' subscribers.
        case published(GroupID, [[UInt8]])
        /// Newly stored creates or adds named these participants: their live links hear `invited`.
        case named(GroupID, Set<MemberID>)
        /// Send `error(code, text)` for this reason, then close the link.
        case close(RelayRefusal)
        /// The peer ended the link.
        case closed
    }

    public let relay: MemberID
    public let peer: MemberID
    public let environment: any RelayEnvironment
    private var session: SyncSession
    private var messages: TokenBucket
    public private(set) var subscriptions: Set<GroupID> = []
    /// Groups whose pruned ranges and evidence this link was given.
    private var served: Set<GroupID> = []
    public private(set) var isClosed = false

    public init(relay: MemberID, peer: MemberID, environment: any RelayEnvironment, now: Double) {
        self.relay = relay
        self.peer = peer
        self.environment = environment
        let limits = environment.limits
        session = SyncSession(me: relay, wanted: [], maximumFrameBytes: limits.maximumFrameBytes, answersUnsharedGroups: true)
        messages = TokenBucket(rate: limits.messagesPerSecondPerConnection, burst: limits.messageBurstPerConnection, now: now)
    }

    /// The relay's `hello`.
    public mutating func start() -> [Output] {
        session.start().compactMap { if case .send(let message) = $0 { .send(message) } else { nil } }
    }

    public mutating func receive(_ message: SyncMessage, now: Double) async throws -> [Output] {
        guard !isClosed else { return [] }
        guard messages.take(now: now) else { return close(.rateLimited) }
        if case .hello(let hello) = message, hello.holder != peer {
            return close(.unauthorizedWriter)  // the hello must name the identity the link authenticated
        }
        switch message {
        case .envelopes(_, let wires), .push(_, let wires):
            guard await environment.takeEnvelopeTokens(peer, wires.count, now: now) else { return close(.rateLimited) }
        case .evidence:
            guard await environment.takeEnvelopeTokens(peer, 2, now: now) else { return close(.rateLimited) }
        default:
            break
        }
        let holder = RelayHolder(store: environment.store, now: UInt64(max(0, now)))
        var outputs: [Output] = []
        if case .have(let group, _) = message, !served.contains(group), try await holder.groups(sharedWith: peer).contains(group) {
            // Once per link and group: what was pruned here, and the forks seen (PROTOCOL.md §6.2).
            served.insert(group)
            let pruned = try await environment.store.prunedRanges(of: group)
            if !pruned.isEmpty { outputs.append(.send(.pruned(group, pruned))) }
            for pair in try await environment.store.evidence(of: group) { outputs.append(.send(.evidence(group, pair.first, pair.second))) }
        }
        var pending = try await session.receive(message, holder: holder)
        while !pending.isEmpty {
            let output = pending.removeFirst()
            switch output {
            case .send(let message):
                outputs.append(.send(message))
            case .deliver(let group, let wires):
                let admitted = try await admit(group, wires, holder: holder, now: now)
                outputs += admitted.outputs
                if let refusal = admitted.refusal {
                    // What was stored before the refusal is still acknowledged, then the link closes.
                    outputs += admitted.session.compactMap { if case .send(let message) = $0 { .send(message) } else { nil } }
                    return outputs + close(refusal)
                }
                pending += admitted.session
            case .subscribed(let group):
                guard subscriptions.contains(group) || subscriptions.count < environment.limits.subscriptionsPerConnection else {
                    return outputs + close(.tooManySubscriptions)
                }
                subscriptions.insert(group)
                outputs.append(.subscribe(group))
            case .granted(let grant):
                // A grant counts when a participant signed it for this link's identity.
                let participants = try await environment.store.participants(of: grant.group) ?? []
                if grant.holder == peer, (try? grant.verify(now: UInt64(max(0, now)), isParticipant: { participants.contains($0) })) != nil {
                    try await environment.store.saveGrant(grant)
                }
            case .closed:
                isClosed = true
                outputs.append(.closed)
            case .bundles(let bundles):
                // The directory keeps only the link's own bundle (any other is dropped); fetchers
                // verify what they get, the relay only checks whose it is.
                for bytes in bundles {
                    guard let bundle = try? KeyBundle(wireBytes: bytes), bundle.identity == peer else { continue }
                    try await environment.store.publishBundle(member: peer, bundle: bytes, now: UInt64(max(0, now)))
                }
            case .bundlesRequested(let members):
                var found: [[UInt8]] = []
                for member in Set(members).sorted() {
                    if let bundle = try await environment.store.bundle(of: member) { found.append(bundle) }
                }
                outputs.append(.send(.bundles(found)))
            case .acknowledged, .invited, .prunedAtPeer, .pong:
                break
            }
        }
        return outputs
    }

    /// Checks and stores what a peer sent, in order; stops at the first refusal (what came before
    /// it is stored and acknowledged).
    private mutating func admit(
        _ group: GroupID, _ wires: [[UInt8]], holder: RelayHolder, now: Double
    ) async throws -> (outputs: [Output], session: [SyncSession.Output], refusal: RelayRefusal?) {
        let store = environment.store
        var participants = try await store.participants(of: group)
        if participants != nil, !(try await holder.groups(sharedWith: peer).contains(group)) {
            return ([], [], .unauthorizedWriter)
        }
        var admitted: [AdmittedEnvelope] = []
        var refusal: RelayRefusal?
        for wire in wires {
            do {
                let checked = try RelayAdmission.check(
                    wire: wire, group: group, participants: participants,
                    maximumEnvelopeBytes: environment.limits.maximumEnvelopeBytes)
                admitted.append(checked)
                if !checked.names.isEmpty { participants = (participants ?? []).union(checked.names) }
            } catch {
                refusal = error
                break
            }
        }
        guard !admitted.isEmpty else { return ([], [], refusal) }
        let outcomes = try await environment.commit(StoreBatch(group: group, envelopes: admitted, writer: peer))
        var durable: [Bytes32] = []
        var stored: [[UInt8]] = []
        var named: Set<MemberID> = []
        var firsts: [MemberID: UInt64] = [:]
        for (item, outcome) in zip(admitted, outcomes) {
            if outcome.isDurable { durable.append(item.envelope.hash) }
            if outcome == .stored {
                stored.append(item.wire)
                named.formUnion(item.names)
                let sender = item.envelope.sender
                firsts[sender] = min(firsts[sender] ?? .max, item.envelope.seq)
            }
            if case .refused(let reason) = outcome, refusal == nil { refusal = reason }
        }
        var outputs: [Output] = []
        if !stored.isEmpty { outputs.append(.published(group, stored)) }
        if !named.isEmpty { outputs.append(.named(group, named)) }
        let gaps = firsts.isEmpty ? [] : try await store.gaps(of: group, below: firsts)
        return (outputs, session.committed(group, hashes: durable, gaps: gaps), refusal)
    }

    public mutating func close(_ reason: RelayRefusal) -> [Output] {
        isClosed = true
        return [.close(reason)]
    }
}
