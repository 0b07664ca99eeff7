public import DCGKAEncoding
public import CausalBroadcast

/// What a holder (a device, a relay) lets the sync engine see: which groups a peer may have, what
/// it holds of each, and its envelopes' bytes. Reading only: what arrives is handed back to the
/// host as ``SyncSession/Output/deliver(_:_:)`` and stored by the host, in its own transaction.
///
/// The requirements are `async` so that a holder may keep its records behind an asynchronous
/// store (a relay on PostgreSQL); a device on SQLite meets them with plain functions.
public protocol SyncHolder {
    /// Groups I hold that `peer` may have (it is a participant, or holds a grant, NETWORK.md §11.2).
    func groups(sharedWith peer: MemberID) async throws -> [GroupID]
    func holdings(of group: GroupID) async throws -> Holdings
    /// Wire bytes of these envelopes, in the order a receiver best takes them (oldest first per
    /// sender, control before application), leaving out what I do not hold.
    func wires(of group: GroupID, _ references: [EnvelopeReference]) async throws -> [[UInt8]]
    /// The wire bytes of the envelope I hold at a sender's seq (for fork evidence).
    func wire(of group: GroupID, sender: MemberID, seq: UInt64) async throws -> [UInt8]?
}

/// One link between two holders, as a state machine (NETWORK.md §11): messages in, messages and
/// deliveries out. The host moves bytes (a socket, a file, a test's queue) and stores what is
/// delivered, then calls ``committed(_:hashes:holder:)`` so the session acknowledges it and asks
/// for what is still missing.
public struct SyncSession: Sendable {
    public enum Output: Hashable, Sendable {
        case send(SyncMessage)
        /// Envelopes for the host to check and store (then ``SyncSession/committed(_:hashes:holder:)``).
        case deliver(GroupID, [[UInt8]])
        /// The peer confirmed it stored these (an outbox may drop them).
        case acknowledged(GroupID, [Bytes32])
        /// Groups the peer has that list me, which I did not ask for.
        case invited([GroupID])
        /// Ranges whose payloads the peer no longer has (it still has their headers).
        case prunedAtPeer(GroupID, [SeqRange])
        /// The peer ended the link.
        case closed(SyncErrorCode, String)
        /// The peer asked for live delivery of a group it may have (the host pushes new envelopes).
        case subscribed(GroupID)
        /// The peer showed a grant; the host verifies it before it counts (§11.2).
        case granted(Grant)
        /// The answer to my ``SyncMessage/ping(_:)``: the peer handled everything I sent before it.
        case pong(UInt64)
        /// Key bundles the peer sent (its own to publish, or a directory's answer): the host
        /// verifies them before any use.
        case bundles([[UInt8]])
        /// The peer asks for these members' bundles (a relay's directory answers).
        case bundlesRequested([MemberID])
    }

    public let me: MemberID
    public let maximumFrameBytes: Int
    public private(set) var peer: MemberID?
    /// Groups this side wants to sync.
    public private(set) var wanted: [GroupID]
    /// Groups whose `have` this side already sent on this link.
    private var announced: Set<GroupID> = []
    /// Gaps already asked for on this link, per group: the peer answered what it had, so asking
    /// again cannot help. (A gap below an envelope that continues an equivocator's other branch
    /// can never be filled here: the envelope that would fill it is refused, PROTOCOL.md §6.2.
    /// Asking for it after every delivery kept two honest devices busy for ever.)
    private var asked: [GroupID: Set<SeqRange>] = [:]
    public private(set) var isClosed = false
    /// Whether a `have` for a group I do not share with the peer gets an empty `have` back (a
    /// relay: the peer may be about to give it a new group's create), instead of nothing. Either
    /// way the peer learns nothing about whether the group exists here.
    public let answersUnsharedGroups: Bool

    public init(
        me: MemberID, wanted: [GroupID], maximumFrameBytes: Int = SyncFraming.defaultMaximumFrameBytes,
        answersUnsharedGroups: Bool = false
    ) {
        self.me = me
        self.wanted = wanted
        self.maximumFrameBytes = min(maximumFrameBytes, SyncFraming.hardMaximumFrameBytes)
        self.answersUnsharedGroups = answersUnsharedGroups
    }

    /// The first messages: `hello` (the peer is not known yet, so no `have` before its answer).
    public mutating func start() -> [Output] {
        [.send(.hello(Hello(holder: me, groups: wanted, maximumFrameBytes: UInt32(maximumFrameBytes))))]
    }

    public mutating func receive(_ message: SyncMessage, holder: any SyncHolder) async throws -> [Output] {
        guard !isClosed else { return [] }
        if peer == nil {
            guard case .hello(let hello) = message else { return close(.malformed, "the first message must be hello") }
            guard hello.version == SyncMessage.protocolVersion else { return close(.unsupportedVersion, "version \(hello.version)") }
            peer = hello.holder
            let shared = try await holder.groups(sharedWith: hello.holder)
            var outputs: [Output] = []
            // Every shared group the peer did not name may be news to it (a device learns of a
            // group it was added to from whichever holder it links with, §11.1, §14.3).
            let uninvited = shared.filter { !hello.groups.contains($0) }
            if !uninvited.isEmpty { outputs.append(.send(.invited(uninvited))) }
            // My vectors for what either side wants and both may have: the peer answers each.
            for group in shared where wanted.contains(group) || hello.groups.contains(group) {
                outputs += try await announce(group, holder: holder)
            }
            return outputs
        }
        guard let peer else { return [] }
        switch message {
        case .hello:
            return close(.malformed, "a second hello")
        case .invited(let groups):
            return [.invited(groups)]
        case .have(let group, let vector):
            // Nothing, not even whether the group exists, for a peer that may not have it.
            guard try await holder.groups(sharedWith: peer).contains(group) else {
                guard answersUnsharedGroups, !announced.contains(group) else { return [] }
                announced.insert(group)
                return [.send(.have(group, Frontier()))]
            }
            var outputs: [Output] = []
            if !announced.contains(group) { outputs += try await announce(group, holder: holder) }
            let plan = SyncPlanner.plan(try await holder.holdings(of: group), peer: vector)
            for fork in plan.forks {
                if let mine = try await holder.wire(of: group, sender: fork.sender, seq: fork.seq) {
                    outputs.append(.send(.evidence(group, mine, [])))
                }
            }
            outputs += batches(group, try await holder.wires(of: group, plan.send))
            return outputs
        case .want(let group, let ranges, let hashes):
            guard try await holder.groups(sharedWith: peer).contains(group) else { return [] }
            let holdings = try await holder.holdings(of: group)
            var references: [EnvelopeReference] = []
            let wantedHashes = Set(hashes)
            for (sender, chain) in holdings.chains {
                for (seq, hash) in chain {
                    let inRange = ranges.contains { $0.sender == sender && $0.from <= seq && seq <= $0.through }
                    if inRange || wantedHashes.contains(hash) { references.append(EnvelopeReference(sender: sender, seq: seq, hash: hash)) }
                }
            }
            references.sort { ($0.sender, $0.seq) < ($1.sender, $1.seq) }
            return batches(group, try await holder.wires(of: group, references))
        case .summary:
            return []
        case .envelopes(let group, let wires), .push(let group, let wires):
            return wires.isEmpty ? [] : [.deliver(group, wires)]
        case .evidence(let group, let first, let second):
            return [.deliver(group, [first, second].filter { !$0.isEmpty })]
        case .ack(let group, let hashes):
            return [.acknowledged(group, hashes)]
        case .subscribe(let group):
            guard try await holder.groups(sharedWith: peer).contains(group) else { return [] }
            return [.subscribed(group)]
        case .ping(let nonce):
            return [.send(.pong(nonce))]
        case .pong(let nonce):
            return [.pong(nonce)]
        case .pruned(let group, let ranges):
            return [.prunedAtPeer(group, ranges)]
        case .error(let code, let text):
            isClosed = true
            return [.closed(code, text)]
        case .grant(let grant):
            return [.granted(grant)]
        case .bundles(let bundles):
            return [.bundles(bundles)]
        case .bundleRequest(let members):
            return [.bundlesRequested(members)]
        }
    }

    /// Asks the peer for groups I may not hold yet (an invitation it announced): my `have` for
    /// each, empty where I hold nothing, so the peer answers with what it may give me.
    public mutating func request(_ groups: [GroupID], holder: any SyncHolder) async throws -> [Output] {
        guard !isClosed, peer != nil else {
            wanted += groups.filter { !wanted.contains($0) }
            return []
        }
        var outputs: [Output] = []
        for group in groups where !announced.contains(group) {
            if !wanted.contains(group) { wanted.append(group) }
            outputs += try await announce(group, holder: holder)
        }
        return outputs
    }

    /// After the host stored delivered envelopes: acknowledge them, and ask for the gaps they
    /// revealed (the "missing" report of PROTOCOL.md §6.2 as `want`).
    public mutating func committed(_ group: GroupID, hashes: [Bytes32], holder: any SyncHolder) async throws -> [Output] {
        guard !isClosed else { return [] }
        var outputs: [Output] = []
        if !hashes.isEmpty { outputs.append(.send(.ack(group, hashes))) }
        let gaps = SyncPlanner.gaps(try await holder.holdings(of: group)).filter { asked[group, default: []].insert($0).inserted }
        if !gaps.isEmpty { outputs.append(.send(.want(group, ranges: gaps, hashes: []))) }
        return outputs
    }

    /// As ``committed(_:hashes:holder:)``, for a host that knows the gaps itself (a relay asks
    /// its index for what lies just below each stored run, instead of reading a whole group).
    public func committed(_ group: GroupID, hashes: [Bytes32], gaps: [SeqRange]) -> [Output] {
        guard !isClosed else { return [] }
        var outputs: [Output] = []
        if !hashes.isEmpty { outputs.append(.send(.ack(group, hashes))) }
        if !gaps.isEmpty { outputs.append(.send(.want(group, ranges: gaps, hashes: []))) }
        return outputs
    }

    /// New envelopes of mine or from elsewhere, pushed live to the peer (after `subscribe`).
    public func push(_ group: GroupID, _ wires: [[UInt8]]) -> [Output] {
        guard !isClosed, !wires.isEmpty else { return [] }
        return [.send(.push(group, wires))]
    }

    mutating func announce(_ group: GroupID, holder: any SyncHolder) async throws -> [Output] {
        announced.insert(group)
        return [.send(.have(group, try await holder.holdings(of: group).vector()))]
    }

    /// `summary`, then `envelopes` messages that each fit the frame limit.
    func batches(_ group: GroupID, _ wires: [[UInt8]]) -> [Output] {
        guard !wires.isEmpty else { return [] }
        var outputs: [Output] = [.send(.summary(group, count: UInt64(wires.count), bytes: UInt64(wires.reduce(0) { $0 + $1.count })))]
        let budget = max(1024, maximumFrameBytes - 64)
        var batch: [[UInt8]] = []
        var size = 0
        for wire in wires {
            if !batch.isEmpty, size + wire.count + 5 > budget || batch.count >= SyncMessage.maximumItems {
                outputs.append(.send(.envelopes(group, batch)))
                batch = []
                size = 0
            }
            batch.append(wire)
            size += wire.count + 5
        }
        outputs.append(.send(.envelopes(group, batch)))
        return outputs
    }

    mutating func close(_ code: SyncErrorCode, _ text: String) -> [Output] {
        isClosed = true
        return [.send(.error(code, text))]
    }
}
