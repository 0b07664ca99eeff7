public import DCGKAEncoding
public import CausalBroadcast
public import Sync

/// The relay as a sync holder for one link (NETWORK.md §11.2, §13.3): a peer may read the groups
/// it is a participant of or holds a grant for; everything else is answered as if it did not
/// exist.
public struct RelayHolder: SyncHolder, Sendable {
    public let store: any RelayStore
    public let now: UInt64

    public init(store: any RelayStore, now: UInt64) {
        self.store = store
        self.now = now
    }

    public func groups(sharedWith peer: MemberID) async throws -> [GroupID] {
        try await store.groups(readableBy: peer, now: now)
    }

    public func holdings(of group: GroupID) async throws -> Holdings { try await store.holdings(of: group) }

    public func wires(of group: GroupID, _ references: [EnvelopeReference]) async throws -> [[UInt8]] {
        try await store.wires(of: group, references)
    }

    public func wire(of group: GroupID, sender: MemberID, seq: UInt64) async throws -> [UInt8]? {
        try await store.wire(of: group, sender: sender, seq: seq)
    }
}
