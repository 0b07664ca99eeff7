public import DCGKAEncoding
public import Sync

/// Which suggested relays a device starts using by itself (NETWORK.md §14.5). A relay learns
/// the address and times of whoever connects to it, so the default asks the person first.
public enum RelayPolicy: String, Sendable, CaseIterable, Codable {
    /// Suggestions wait for `dcgka relay accept ADDRESS`.
    case ask
    /// Suggestions from contacts are used at once; others wait.
    case contacts
    /// Every member's suggestion is used at once.
    case always

    static let settingKey = "relay-policy"

    /// Starts carrying `group` through the relay at `address`: a new relay record for that group
    /// only, or the group added to the record of that address. Returns whether anything changed.
    @discardableResult
    static func use(_ address: RelayAddress, for group: GroupID, tx: any DeviceStoreTransaction, now: UInt64) throws -> Bool {
        if var existing = try tx.relays().first(where: { $0.address == address.description }) {
            guard !existing.carries(group) else { return false }
            existing.groups.append(group)
            try tx.saveRelay(existing)
        } else {
            try tx.saveRelay(RelayRecord(address: address.description, relay: address.relay, addedAt: now, groups: [group]))
        }
        return true
    }
}

/// A group's relay lists (NETWORK.md §14.5): the one in force and every member's newest.
public struct GroupRelays: Sendable, Equatable {
    public var group: GroupID
    /// The list in force: the newest by (sending time, sender ID) among current members.
    public var relays: [String]
    public var setBy: MemberID?
    public var setAt: UInt64
    /// Each sender's newest list, removed members' included (they no longer count).
    public var suggestions: [RelaySuggestion]
}

/// A relay that a group suggests and this device does not use for it yet.
public struct SuggestedRelay: Sendable, Equatable {
    public var address: String
    public var groups: [GroupID]
    public var suggestedBy: [MemberID]
}
