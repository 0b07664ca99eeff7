public import DCGKAEncoding
public import CausalBroadcast
public import Sync
public import DCGKACrypto

/// A device as a holder for the sync engine (NETWORK.md §11): the groups it shares with a peer
/// are those the peer takes part in; what it offers is its envelope log.
extension Device: SyncHolder {
    /// A relay I use carries the groups I gave it (every group I am in, for a relay I added
    /// myself); any other peer gets the groups it takes part in (NETWORK.md §11.2).
    /// A group I carry for its members goes only to its participants (§14.3).
    public func groups(sharedWith peer: MemberID) throws -> [GroupID] {
        let now = clock()
        return try store.read { tx in
            let records = try tx.groups()
            // My ID matters only for groups I carry (my own grant); read it only then.
            let me = try records.contains { $0.status == .carried } ? tx.profile().map { try Keys($0).me } : nil
            let asMyRelay = try tx.relays().filter { $0.relay == peer }
            return try records.filter { record in
                if record.status == .joined, asMyRelay.contains(where: { $0.carries(record.id) }) { return true }
                return try Self.shares(record, with: peer, me: me, tx: tx, now: now)
            }.map(\.id).sorted()
        }
    }

    /// Whether `peer` may have `group`'s envelopes: as ``groups(sharedWith:)``, for one group.
    public func shares(_ group: GroupID, with peer: MemberID) throws -> Bool {
        let now = clock()
        return try store.read { tx in
            guard let record = try tx.group(group) else { return false }
            if record.status == .joined, try tx.relays().contains(where: { $0.relay == peer && $0.carries(group) }) { return true }
            let me = try record.status == .carried ? tx.profile().map { try Keys($0).me } : nil
            return try Self.shares(record, with: peer, me: me, tx: tx, now: now)
        }
    }

    /// The groups I am in (not invitations still pending), read from their records without
    /// decoding any group state: cheap enough for a loop that polls.
    public func joinedGroupIDs() throws -> [GroupID] {
        try store.read { tx in try tx.groups().filter { $0.status == .joined }.map(\.id).sorted() }
    }

    /// The groups whose envelopes I hold for others: those I am in and those I carry.
    public func heldGroupIDs() throws -> [GroupID] {
        try store.read { tx in try tx.groups().filter { $0.status == .joined || $0.status == .carried }.map(\.id).sorted() }
    }

    /// A relay stored these durably: they leave its outbox (NETWORK.md §10.2, §14.1).
    /// Returns how many were still waiting for it.
    @discardableResult
    public func acknowledged(_ group: GroupID, _ hashes: [Bytes32], by relay: MemberID) throws -> Int {
        try store.write { tx in try tx.removeFromOutbox(group: group, hashes: hashes, relay: relay) }
    }

    /// Envelopes of mine a relay (or any relay, nil) has not confirmed yet.
    public func outboxCount(relay: MemberID? = nil) throws -> Int {
        try store.read { try $0.outboxCount(relay: relay) }
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

    // MARK: Relay lists as group content (§14.5)

    /// Posts my relay list for a group (an encrypted message of the reserved type); I use these
    /// relays for it at once.
    public mutating func setRelays(_ addresses: [RelayAddress], for groupID: GroupID) throws {
        guard addresses.count <= MessageContent.maximumRelays else { throw DeviceError.tooManyRelays(MessageContent.maximumRelays) }
        let now = clock()
        try withGroup(groupID) { tx, keys, group, record, effects, random in
            try Self.sendContent(.relays(addresses.map(\.description)), in: &group, record: &record, keys: keys, effects: &effects, now: now, rng: &random)
            for address in addresses { try RelayPolicy.use(address, for: groupID, tx: tx, now: now) }
        }
    }

    public func relayList(of groupID: GroupID) throws -> GroupRelays {
        try store.read { tx in
            guard let record = try tx.group(groupID) else { throw DeviceError.unknownGroup(groupID.raw.hex, candidates: []) }
            return GroupRelays(
                group: groupID, relays: record.relays, setBy: record.relaysSetBy, setAt: record.relaysSetAt,
                suggestions: try tx.relaySuggestions(group: groupID).sorted { $1.isNewer(than: $0) })
        }
    }

    public func relayPolicy() throws -> RelayPolicy {
        try store.read { tx in RelayPolicy(rawValue: try tx.setting(RelayPolicy.settingKey) ?? "") ?? .ask }
    }

    public func setRelayPolicy(_ policy: RelayPolicy) throws {
        try store.write { tx in try tx.setSetting(RelayPolicy.settingKey, policy.rawValue) }
    }

    /// Relays my groups' lists name that I do not use for those groups yet (policy `ask`, or a
    /// non-contact's suggestion under `contacts`).
    public func suggestedRelays() throws -> [SuggestedRelay] {
        try store.read { tx in
            let mine = try tx.relays()
            var suggested: [String: SuggestedRelay] = [:]
            for record in try tx.groups() where record.status == .joined {
                for text in record.relays {
                    guard let address = try? RelayAddress(parsing: text) else { continue }
                    let key = address.description
                    guard !mine.contains(where: { $0.address == key && $0.carries(record.id) }) else { continue }
                    var entry = suggested[key] ?? SuggestedRelay(address: key, groups: [], suggestedBy: [])
                    entry.groups.append(record.id)
                    if let by = record.relaysSetBy, !entry.suggestedBy.contains(by) { entry.suggestedBy.append(by) }
                    suggested[key] = entry
                }
            }
            return suggested.values.sorted { $0.address < $1.address }
        }
    }

    /// Starts using a suggested relay for every group that suggests it. Returns those groups.
    @discardableResult
    public func acceptRelay(_ address: RelayAddress) throws -> [GroupID] {
        let now = clock()
        return try store.write { tx in
            var accepted: [GroupID] = []
            for record in try tx.groups() where record.status == .joined {
                guard record.relays.contains(where: { (try? RelayAddress(parsing: $0))?.description == address.description }) else { continue }
                if try RelayPolicy.use(address, for: record.id, tx: tx, now: now) { accepted.append(record.id) }
            }
            return accepted
        }
    }

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

    /// Fork pairs I keep as evidence for a group (PROTOCOL.md §6.2), to pass on.
    public func evidence(of group: GroupID) throws -> [(first: [UInt8], second: [UInt8])] {
        try store.read { try $0.evidence(group: group) }
    }

    public func evidenceCount(of group: GroupID) throws -> Int {
        try store.read { try $0.evidenceCount(group: group) }
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
