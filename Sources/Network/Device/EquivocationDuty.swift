internal import DCGKAEncoding
internal import DCGKACrypto
internal import DCGKAGroup

/// The device's part of the equivocation rule (PROTOCOL-NOTES.md, "Equivocation"): an
/// equivocator still in my view is removed by a remove that carries the evidence, at once when
/// the rule names me, otherwise once ``removalDelay`` has passed since I first kept the evidence
/// (so that one remove usually suffices, and an offline named member does not stop it).
enum EquivocationDuty {
    /// Seconds a member not named by the rule waits: long enough for the named member's remove to
    /// arrive, short enough that a group does not keep an equivocator for long.
    static let removalDelay: UInt64 = 3_600

    /// Removes at most one equivocator (one own operation per call); true when it did.
    @discardableResult
    static func perform<R: RandomNumberGenerator>(
        on group: inout Group, id: GroupID, effects: inout Effects, tx: any DeviceStoreTransaction,
        me: MemberID, prekeys: PrekeyStore, now: UInt64, rng: inout R
    ) throws -> Bool {
        for equivocator in group.equivocatorsToRemove {
            let since = try tx.evidenceSavedAt(group: id, sender: equivocator) ?? now
            guard group.removesAtOnce(equivocator) || now >= since &+ removalDelay else { continue }
            guard let envelope = try? group.remove(equivocator, prekeys: prekeys, now: now, using: &rng) else { continue }
            effects.sent(envelope)
            effects.event("removed-equivocator", sender: me, subjects: [equivocator])
            effects.membersLeft = true
            return true
        }
        return false
    }
}

extension Device {
    /// Seconds a member the equivocation rule did not name waits before removing the
    /// equivocator itself (``performEquivocationDuty()``).
    public static var equivocatorRemovalDelay: UInt64 { EquivocationDuty.removalDelay }

    /// Performs the equivocation rule's duty in every group I am in (the receive path does it
    /// for the groups it touches; this covers the delay passing while nothing arrives). Hosts
    /// call it with every sync. Returns how many equivocators it removed.
    @discardableResult
    public mutating func performEquivocationDuty() throws -> Int {
        let due = try store.read { tx in
            try tx.groups().filter { $0.status == .joined }.compactMap { record -> GroupID? in
                guard let group = try Self.decodeGroup(record), !group.equivocatorsToRemove.isEmpty else { return nil }
                return record.id
            }
        }
        var removed = 0
        for id in due {
            try withGroup(id) { tx, keys, group, _, effects, random in
                if try EquivocationDuty.perform(on: &group, id: id, effects: &effects, tx: tx, me: keys.me, prekeys: keys.prekeys, now: effects.now, rng: &random) {
                    removed += 1
                }
            }
        }
        return removed
    }
}
