public import DCGKAEncoding
public import Sync
internal import CausalBroadcast
internal import Relay

/// Carrying groups for their members (NETWORK.md §11.2, §14.3): a member grants a device that
/// is not in a group (a contact's phone on the way between two places, say) the right to hold
/// the group's envelopes and pass them on. The carrier keeps them with a relay's rules: only
/// what a participant validly signed, a create that binds its group ID first; it can read
/// nothing it carries. Members give a carrier the group only when it shows a grant signed by a
/// participant; a carrier gives it only to participants.
extension Device {
    /// Groups one device carries at most, and envelopes per carried group.
    public static var maximumCarriedGroups: Int { 32 }
    public static var maximumCarriedEnvelopes: Int { 200_000 }
    /// The largest envelope a carrier keeps.
    public static var maximumCarriedEnvelopeBytes: Int { 1 << 20 }

    /// Lets `holder` carry a group I am in until `days` from now: a signed grant, kept here and
    /// shown to the holder at the next link (`dcgka group grant`).
    @discardableResult
    public mutating func grant(_ groupID: GroupID, to holder: MemberID, days: UInt64) throws -> Grant {
        let now = clock()
        return try store.write { tx in
            guard let record = try tx.group(groupID), let group = try Self.decodeGroup(record), group.isMember else {
                throw DeviceError.unknownGroup(groupID.raw.hex, candidates: [])
            }
            guard let profile = try tx.profile() else { throw DeviceError.notInitialized }
            let keys = try Keys(profile)
            let grant = Grant(group: groupID, holder: holder, notAfter: now + days * 86_400, granter: keys.identity)
            try tx.saveGrant(group: groupID, holder: holder, granter: keys.me, notAfter: grant.notAfter, wire: grant.wireBytes)
            return grant
        }
    }

    /// A grant a peer showed over a link. Kept when it holds: for me, it starts (or renews) a
    /// group I carry, within my quota; for the peer, it must be signed by a participant of a
    /// group I hold. Returns whether it was kept.
    @discardableResult
    public func acceptGrant(_ grant: Grant, from peer: MemberID) throws -> Bool {
        let now = clock()
        return try store.write { tx in
            guard let profile = try tx.profile() else { throw DeviceError.notInitialized }
            let me = try Keys(profile).me
            let record = try tx.group(grant.group)
            if grant.holder == me {
                // Someone lets me carry a group. Its participants are not known until its create
                // arrives: the grant is checked against them whenever the group is served.
                guard (try? grant.verify(now: now, isParticipant: { _ in true })) != nil else { return false }
                if let record, record.status != .carried { return false }
                if record == nil {
                    guard try tx.groups().filter({ $0.status == .carried }).count < Self.maximumCarriedGroups else { return false }
                    try tx.saveGroup(GroupRecord(id: grant.group, title: "(carried)", state: nil, status: .carried, createdAt: now))
                }
                try tx.saveGrant(group: grant.group, holder: grant.holder, granter: grant.granter, notAfter: grant.notAfter, wire: grant.wireBytes)
                return true
            }
            guard grant.holder == peer, let record, let participants = try Self.participants(record, tx: tx),
                  (try? grant.verify(now: now, isParticipant: { participants.contains($0) })) != nil
            else { return false }
            try tx.saveGrant(group: grant.group, holder: grant.holder, granter: grant.granter, notAfter: grant.notAfter, wire: grant.wireBytes)
            return true
        }
    }

    /// The grants to show `peer` at the start of a link: those that let it carry a group of
    /// mine, and mine for the groups I carry that it takes part in.
    public func grants(presentedTo peer: MemberID) throws -> [Grant] {
        let now = clock()
        return try store.read { tx in
            guard let profile = try tx.profile() else { return [] }
            let me = try Keys(profile).me
            var shown: [Grant] = []
            for record in try tx.groups() where record.status == .joined || record.status == .carried {
                let grants = try tx.grants(group: record.id).compactMap { try? Grant(wireBytes: $0) }.filter { $0.notAfter >= now }
                if grants.contains(where: { $0.holder == peer }) { shown += grants.filter { $0.holder == peer } }
                if record.status == .carried, try tx.participants(group: record.id).contains(peer) {
                    shown += grants.filter { $0.holder == me }
                }
            }
            return shown
        }
    }

    /// The groups I carry for others.
    public func carriedGroups() throws -> [(group: GroupID, envelopes: Int, grantedBy: [MemberID])] {
        try store.read { tx in
            try tx.groups().filter { $0.status == .carried }.map { record in
                let granters = try tx.grants(group: record.id).compactMap { try? Grant(wireBytes: $0) }.map(\.granter)
                return (record.id, try tx.logCount(group: record.id), Array(Set(granters)).sorted())
            }
        }
    }

    /// Who takes part in a group, as this device knows it: from the group's state for a group
    /// I am in, from the stored creates and adds for one I carry; nil for anything else.
    static func participants(_ record: GroupRecord, tx: any DeviceStoreTransaction) throws -> Set<MemberID>? {
        switch record.status {
        case .joined:
            guard let group = try decodeGroup(record) else { return nil }
            return Set(group.keyAgreement.history.participants)
        case .carried:
            return try tx.participants(group: record.id)
        case .invited, .declined:
            return nil
        }
    }

    /// Whether `peer` may have a group's envelopes from me (§11.2): a participant; or, for a
    /// group I am in, a holder of a grant a participant signed; a group I carry goes only to
    /// its participants, and only while a participant's grant lets me carry it. Grants are read
    /// (and their signatures checked) only when membership alone does not decide.
    static func shares(_ record: GroupRecord, with peer: MemberID, me: MemberID?, tx: any DeviceStoreTransaction, now: UInt64) throws -> Bool {
        func validGrants(_ isParticipant: (MemberID) -> Bool) throws -> [Grant] {
            try tx.grants(group: record.id).compactMap { try? Grant(wireBytes: $0) }
                .filter { (try? $0.verify(now: now, isParticipant: isParticipant)) != nil }
        }
        switch record.status {
        case .joined:
            guard let group = try decodeGroup(record) else { return false }
            let history = group.keyAgreement.history
            if history.isKnownParticipant(peer) { return true }
            return try validGrants { history.isKnownParticipant($0) }.contains { $0.holder == peer }
        case .carried:
            let participants = try tx.participants(group: record.id)
            guard let me, participants.contains(peer) else { return false }
            return try validGrants { participants.contains($0) }.contains { $0.holder == me }
        case .invited, .declined:
            return false
        }
    }
}

extension ReceiveSession {
    /// An envelope of a group I carry: kept when a relay would keep it (§13.3), within my quota.
    mutating func carry(_ envelope: Envelope, wire: [UInt8], group: GroupID, tx: any DeviceStoreTransaction) throws {
        if carried[group] == nil { carried[group] = (try tx.participants(group: group), try tx.logCount(group: group)) }
        guard let (participants, count) = carried[group] else { return }
        let admitted: AdmittedEnvelope
        do {
            admitted = try RelayAdmission.check(
                wire: wire, group: group, participants: participants.isEmpty ? nil : participants,
                maximumEnvelopeBytes: Device<SystemRandomNumberGenerator>.maximumCarriedEnvelopeBytes)
        } catch {
            report.reject("not kept for carrying: \(error)")
            return
        }
        guard count < Device<SystemRandomNumberGenerator>.maximumCarriedEnvelopes else {
            report.reject("the carried group is at its quota")
            return
        }
        let newNames = admitted.names.filter { !participants.contains($0) }
        if !newNames.isEmpty { try tx.addParticipants(group: group, newNames) }
        carried[group] = (participants.union(newNames), count + 1)
        try append(envelope, wire: wire, tx: tx)
    }
}
