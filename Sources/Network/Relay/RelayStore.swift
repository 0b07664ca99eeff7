public import DCGKAEncoding
public import CausalBroadcast
public import Sync

/// One group's admitted envelopes from one link, to store in order.
public struct StoreBatch: Sendable {
    public var group: GroupID
    public var envelopes: [AdmittedEnvelope]
    /// Who brought them (quotas count per identity).
    public var writer: MemberID

    public init(group: GroupID, envelopes: [AdmittedEnvelope], writer: MemberID) {
        self.group = group
        self.envelopes = envelopes
        self.writer = writer
    }
}

/// What became of one admitted envelope.
public enum StoreOutcome: Sendable, Hashable {
    /// Newly stored (push it to subscribers).
    case stored
    /// Already held (acknowledge it again; nothing to push).
    case duplicate
    /// Another envelope is held at its `(sender, seq)`: kept as evidence of the fork (the first
    /// pair per sender), passed on as `evidence`, never stored as a chain link.
    case fork
    case refused(RelayRefusal)

    /// Whether the writer may drop it from its outbox (the relay holds it or its fork evidence).
    public var isDurable: Bool {
        switch self {
        case .stored, .duplicate, .fork: true
        case .refused: false
        }
    }
}

/// Quotas the store enforces inside its transaction (NETWORK.md §13.4–§13.5).
public struct StoreQuotas: Sendable, Equatable {
    public var groupsPerIdentity: Int
    public var groupBytes: Int64
    public var groupEnvelopes: Int64

    public init(_ limits: RelayLimits) {
        groupsPerIdentity = limits.groupsPerIdentity
        groupBytes = limits.groupBytes
        groupEnvelopes = limits.groupEnvelopes
    }
}

/// Where a relay keeps groups, envelopes, grants and bundles (NETWORK.md §13.4). Two
/// implementations: SQLite (one process) and PostgreSQL (any number of processes on one
/// database). The relay's rules stay outside (``RelayAdmission``); a store only keeps records,
/// and everything it returns from ``store(_:now:quotas:)`` is durable.
public protocol RelayStore: Sendable {
    /// The participants of a group, nil when the group is unknown here.
    func participants(of group: GroupID) async throws -> Set<MemberID>?
    /// Stores several groups' batches in one transaction (group commit: one durable commit for
    /// many envelopes and links), in order; participants named by a create or add count from the
    /// next envelope on.
    func store(_ batches: [StoreBatch], now: UInt64, quotas: StoreQuotas) async throws -> [[StoreOutcome]]
    /// Groups `peer` may read: it is a participant, or holds an unexpired grant.
    func groups(readableBy peer: MemberID, now: UInt64) async throws -> [GroupID]
    func holdings(of group: GroupID) async throws -> Holdings
    /// Wires in a causal order (arrival order at this relay), leaving out what is not held.
    func wires(of group: GroupID, _ references: [EnvelopeReference]) async throws -> [[UInt8]]
    func wire(of group: GroupID, sender: MemberID, seq: UInt64) async throws -> [UInt8]?
    /// For each sender, the seqs missing just below `seq` (from the highest held below it), to
    /// ask the peer for with `want`; one index lookup per sender.
    func gaps(of group: GroupID, below firsts: [MemberID: UInt64]) async throws -> [SeqRange]
    /// The evidence pairs kept for a group.
    func evidence(of group: GroupID) async throws -> [(first: [UInt8], second: [UInt8])]
    /// Ranges whose application payloads were pruned (headers kept).
    func prunedRanges(of group: GroupID) async throws -> [SeqRange]
    /// Replaces application payloads that arrived before `time` by nothing (their headers and
    /// signatures stay, PROTOCOL.md §6.1); returns how many were pruned.
    func prune(receivedBefore time: UInt64) async throws -> Int
    func saveGrant(_ grant: Grant) async throws
    /// The key-bundle directory (§13.3): the newest bundle a member published.
    func publishBundle(member: MemberID, bundle: [UInt8], now: UInt64) async throws
    func bundle(of member: MemberID) async throws -> [UInt8]?
    /// Whether the relay has seen this identity before (for the new-identities-per-minute limit).
    func noteIdentity(_ id: MemberID, now: UInt64) async throws -> Bool
    /// Counts for operators and tests.
    func statistics() async throws -> RelayStatistics
    /// Runs while the relay runs (a connection pool; listening for what other relay processes on
    /// the same database store). `foreign` receives those envelopes, for this process's
    /// subscribers. Returns when cancelled.
    func run(foreign: @escaping @Sendable (GroupID, [[UInt8]]) async -> Void) async throws
    /// Returns once the store answers (its schema exists), while ``run(foreign:)`` runs.
    func ready() async throws
}

extension RelayStore {
    /// One process, nothing to listen for: waits until cancelled.
    public func run(foreign: @escaping @Sendable (GroupID, [[UInt8]]) async -> Void) async throws {
        while !Task.isCancelled { try await Task.sleep(for: .seconds(3600)) }
    }

    public func ready() async throws {}
}

public struct RelayStatistics: Sendable, Equatable, Codable {
    public var groups: Int
    public var envelopes: Int
    public var bytes: Int64
    public var evidence: Int
    public var prunedPayloads: Int

    public init(groups: Int, envelopes: Int, bytes: Int64, evidence: Int, prunedPayloads: Int) {
        self.groups = groups
        self.envelopes = envelopes
        self.bytes = bytes
        self.evidence = evidence
        self.prunedPayloads = prunedPayloads
    }
}
