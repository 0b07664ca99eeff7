internal import DCGKAEncoding
internal import DCGKACrypto
internal import DCGKAGroup
internal import CausalBroadcast

/// The device's part of the equivocation rule (PROTOCOL-NOTES.md, "Equivocation"): an
/// equivocator still in my view is removed by a remove that carries the evidence, at once when
/// the rule names me, otherwise once ``removalDelay`` has passed since I first kept the evidence
/// (so that one remove usually suffices, and an offline named member does not stop it).
enum EquivocationDuty {
    /// Seconds a member not named by the rule waits: long enough for the named member's remove to
    /// arrive, short enough that a group does not keep an equivocator for long.
    static let removalDelay: UInt64 = 3_600

    /// Keeps the group's evidence in the evidence table (once per fork: the table ignores a pair
    /// it holds), to be passed on, and to start the delay.
    static func keep(_ evidence: ForkEvidence?, group: GroupID, tx: any DeviceStoreTransaction, now: UInt64) throws {
        guard let evidence else { return }
        try tx.saveEvidence(
            group: group, sender: evidence.sender, seq: evidence.cutSeq,
            first: evidence.first.wireBytes, second: evidence.second.wireBytes, savedAt: now)
    }

    /// Removes at most one equivocator (one own operation per call); true when it did. Then
    /// marks the group's evidence settled when no equivocator is left in my view, open otherwise
    /// (a re-add of an equivocator opens it again in the batch that brings the re-add).
    @discardableResult
    static func perform<R: RandomNumberGenerator>(
        on group: inout Group, id: GroupID, effects: inout Effects, tx: any DeviceStoreTransaction,
        me: MemberID, prekeys: PrekeyStore, now: UInt64, rng: inout R
    ) throws -> Bool {
        // A group without evidence (nearly every batch) has nothing to mark: no statement runs.
        guard !group.forkEvidence.isEmpty else { return false }
        let removed = try removeOne(from: &group, id: id, effects: &effects, tx: tx, me: me, prekeys: prekeys, now: now, rng: &rng)
        try tx.setEvidenceSettled(group: id, group.equivocatorsToRemove.isEmpty)
        return removed
    }

    private static func removeOne<R: RandomNumberGenerator>(
        from group: inout Group, id: GroupID, effects: inout Effects, tx: any DeviceStoreTransaction,
        me: MemberID, prekeys: PrekeyStore, now: UInt64, rng: inout R
    ) throws -> Bool {
        for equivocator in group.equivocatorsToRemove {
            let since: UInt64
            if let saved = try tx.evidenceSavedAt(group: id, sender: equivocator) {
                since = saved
            } else {
                // Evidence the table lacks (it came with the group's state) starts its delay now.
                try keep(group.forkEvidence[equivocator], group: id, tx: tx, now: now)
                since = now
            }
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
        // Only groups with open evidence in the table can have a duty (every fork a group notes
        // is kept there, and a batch that brings a re-added equivocator opens it again): no group
        // state is decoded for a sync pass otherwise. A group found without a duty is settled.
        var due: [GroupID] = []
        var settled: [GroupID] = []
        try store.read { tx in
            for id in try tx.groupsWithOpenEvidence() {
                if let record = try tx.group(id), record.status == .joined, let group = try Self.decodeGroup(record),
                   group.isMember, !group.equivocatorsToRemove.isEmpty {
                    due.append(id)
                } else {
                    settled.append(id)
                }
            }
        }
        if !settled.isEmpty {
            try store.write { tx in for id in settled { try tx.setEvidenceSettled(group: id, true) } }
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
