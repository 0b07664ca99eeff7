public import DCGKAEncoding
public import CausalBroadcast
public import Sync
public import DCGKACrypto

/// A device as a holder for the sync engine (NETWORK.md §11): the groups it shares with a peer
/// are those the peer takes part in; what it offers is its envelope log.
extension Device: SyncHolder {
    /// A relay I added carries every group I am in (it holds them for me and my groups' other
    /// members); any other peer gets the groups it takes part in.
    public func groups(sharedWith peer: MemberID) throws -> [GroupID] {
        try store.read { tx in
            let isMyRelay = try tx.relays().contains { $0.relay == peer }
            return try tx.groups().filter { record in
                guard record.status == .joined, let group = try Self.decodeGroup(record) else { return false }
                return isMyRelay || group.keyAgreement.history.isKnownParticipant(peer)
            }.map(\.id).sorted()
        }
    }

    /// The groups I am in (not invitations still pending), read from their records without
    /// decoding any group state: cheap enough for a loop that polls.
    public func joinedGroupIDs() throws -> [GroupID] {
        try store.read { tx in try tx.groups().filter { $0.status == .joined }.map(\.id).sorted() }
    }

    /// The peer stored these durably: they leave the outbox.
    /// Returns how many were still waiting.
    @discardableResult
    public func acknowledged(_ group: GroupID, _ hashes: [Bytes32]) throws -> Int {
        try store.write { tx in try tx.removeFromOutbox(group: group, hashes: hashes) }
    }

    /// Which of these hashes my log holds (what a sync acknowledges after an import).
    public func held(_ group: GroupID, _ hashes: [Bytes32]) throws -> [Bytes32] {
        try store.read { tx in try hashes.filter { try tx.logContains(group: group, hash: $0) } }
    }

    /// This device's identity key, for authenticating links (NETWORK.md §12).
    public func identityKey() throws -> IdentityKey {
        try store.read { tx in
            guard let profile = try tx.profile() else { throw DeviceError.notInitialized }
            return try Keys(profile).identity
        }
    }

    // MARK: Relays (`dcgka relay add/list/remove`)

    public func addRelay(_ address: RelayAddress) throws {
        try store.write { tx in
            guard !(try tx.relays().contains { $0.address == address.description }) else { return }
            try tx.saveRelay(RelayRecord(address: address.description, relay: address.relay, addedAt: clock()))
        }
    }

    public func relays() throws -> [RelayRecord] { try store.read { try $0.relays() } }

    @discardableResult
    public func removeRelay(_ address: RelayAddress) throws -> Bool {
        try store.write { try $0.deleteRelay(address: address.description) }
    }

    /// Records how a sync with a relay went.
    public func noteSync(_ address: RelayAddress, error: String?) throws {
        try store.write { tx in
            guard var record = try tx.relays().first(where: { $0.address == address.description }) else { return }
            if error == nil { record.lastSync = clock() }
            record.lastError = error
            try tx.saveRelay(record)
        }
    }

    public func lastLogPosition(of group: GroupID) throws -> Int64 {
        try store.read { try $0.lastLogPosition(group: group) }
    }

    /// Envelopes in a group's log after `position` (for live push), with the last position.
    public func log(of group: GroupID, after position: Int64, limit: Int = 2048) throws -> (wires: [[UInt8]], last: Int64) {
        try store.read { tx in
            let entries = try tx.log(group: group, after: position, limit: limit)
            return (entries.map(\.wire), entries.last?.position ?? position)
        }
    }

    public func holdings(of group: GroupID) throws -> Holdings {
        try store.read { tx in
            guard let record = try tx.group(group) else { return Holdings() }
            return try Self.holdings(record, tx: tx)
        }
    }

    /// In my log's order (a causal order for what I delivered), whatever order they are asked in.
    public func wires(of group: GroupID, _ references: [EnvelopeReference]) throws -> [[UInt8]] {
        try store.read { tx in
            var entries: [LogRecord] = []
            for reference in references {
                if let entry = try tx.logEntry(group: group, hash: reference.hash) { entries.append(entry) }
            }
            return entries.sorted { $0.position < $1.position }.map(\.wire)
        }
    }

    public func wire(of group: GroupID, sender: MemberID, seq: UInt64) throws -> [UInt8]? {
        try store.read { tx in try tx.logEntry(group: group, sender: sender, seq: seq)?.wire }
    }
}
