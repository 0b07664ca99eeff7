public import DCGKAEncoding
public import DCGKACrypto
public import CausalBroadcast
internal import DCGKAGroup
public import Sync

extension Device {
    /// What a group's log holds, for version vectors and planning (NETWORK.md §11.1): every
    /// logged envelope, plus everything the group delivered or skipped (a welcome's frontier).
    static func holdings(_ record: GroupRecord, tx: any DeviceStoreTransaction) throws -> Holdings {
        var holdings = Holdings()
        for entry in try tx.logIndex(group: record.id) { holdings.insert(sender: entry.sender, seq: entry.seq, hash: entry.hash) }
        if let group = try decodeGroup(record) { holdings.assumed = group.broadcast.frontier }
        return holdings
    }

    /// The parts of a sync file (NETWORK.md §14.4): my groups (or those given), each with my
    /// version vector and the envelopes the recipient may lack, in my log's order. With
    /// `peer`, only groups the peer takes part in, and only what its last file or sync did
    /// not show it holding.
    public func exportParts(
        groups only: [GroupID]? = nil, for peer: MemberID? = nil, progress: ((Int, Int) -> Void)? = nil
    ) throws -> [SyncFile.GroupPart] {
        try store.read { tx in
            var parts: [SyncFile.GroupPart] = []
            let selected = try tx.groups().filter { $0.status == .joined && (only?.contains($0.id) ?? true) }
            let total = try selected.reduce(0) { $0 + (try tx.logCount(group: $1.id)) }
            var read = 0
            for record in try tx.groups().sorted(by: { $0.id < $1.id }) where record.status == .joined {
                if let only, !only.contains(record.id) { continue }
                guard let group = try Self.decodeGroup(record) else { continue }
                if let peer, !group.keyAgreement.history.isKnownParticipant(peer) { continue }
                let holdings = try Self.holdings(record, tx: tx)
                var wanted: Set<Bytes32>?
                if let peer, let raw = try tx.peerVector(peer: peer, group: record.id), let vector = try? Frontier(wireBytes: raw) {
                    wanted = Set(SyncPlanner.plan(holdings, peer: vector).send.map(\.hash))
                }
                var wires: [[UInt8]] = []
                var prunedSeqs: [MemberID: [UInt64]] = [:]
                var after: Int64 = 0
                while true {
                    let page = try tx.log(group: record.id, after: after, limit: 4096)
                    guard let last = page.last else { break }
                    for entry in page where wanted?.contains(entry.hash) ?? true {
                        wires.append(entry.wire)
                        if entry.isPruned { prunedSeqs[entry.sender, default: []].append(entry.seq) }
                    }
                    after = last.position
                    read += page.count
                    progress?(read, total)
                }
                parts.append(SyncFile.GroupPart(
                    group: record.id, vector: holdings.vector(), envelopes: wires, pruned: Self.ranges(prunedSeqs),
                    evidence: try tx.evidence(group: record.id).map { [$0.first, $0.second] }))
            }
            return parts
        }
    }

    /// Consecutive seqs per sender as ranges.
    static func ranges(_ seqs: [MemberID: [UInt64]]) -> [SeqRange] {
        var ranges: [SeqRange] = []
        for sender in seqs.keys.sorted() {
            for seq in (seqs[sender] ?? []).sorted() {
                if let last = ranges.last, last.sender == sender, last.through + 1 == seq {
                    ranges[ranges.count - 1].through = seq
                } else {
                    ranges.append(SeqRange(sender: sender, from: seq, through: seq))
                }
            }
        }
        return ranges
    }

    /// Everyone a file of these groups is for by default (NETWORK.md §14.4): every participant
    /// its envelopes name, removed members included (so they can read their own removal), with
    /// the newest bundle known for each, from the group or from contacts.
    public func participantBundles(of groups: [GroupID]) throws -> [KeyBundle] {
        try store.read { tx in
            var newest: [MemberID: KeyBundle] = [:]
            func offer(_ bundle: KeyBundle) {
                if let known = newest[bundle.identity], known.notAfter >= bundle.notAfter { return }
                newest[bundle.identity] = bundle
            }
            var participants: Set<MemberID> = []
            for id in groups {
                guard let record = try tx.group(id), let group = try Self.decodeGroup(record) else { continue }
                participants.formUnion(group.keyAgreement.history.participants)
                participants.insert(group.me)
                for bundle in group.bundles.values { offer(bundle) }
                if let own = group.bundleToAnnounce { offer(own) }
            }
            for contact in try tx.contacts() where participants.contains(contact.id) {
                if let bundle = try? KeyBundle(wireBytes: contact.bundle) { offer(bundle) }
            }
            if let profile = try tx.profile(), let keys = try? Keys(profile) { offer(keys.bundle) }
            return participants.sorted().compactMap { newest[$0] }
        }
    }

    /// Bundles of the named contacts.
    public func contactBundles(_ ids: [MemberID]) throws -> [KeyBundle] {
        try store.read { tx in
            let contacts = try tx.contacts()
            return try ids.map { id in
                guard let contact = contacts.first(where: { $0.id == id }), let bundle = try? KeyBundle(wireBytes: contact.bundle) else {
                    throw DeviceError.unknownContact(id.raw.hex, candidates: [])
                }
                return bundle
            }
        }
    }

    /// Writes a sync file's bytes.
    public mutating func exportFile(
        groups: [GroupID]? = nil, for peers: [MemberID] = [], protection: SyncFile.Protection, progress: ((Int, Int) -> Void)? = nil
    ) throws -> (bytes: [UInt8], envelopes: Int) {
        let (me, _) = try self.me()
        var parts: [SyncFile.GroupPart] = []
        if peers.isEmpty {
            parts = try exportParts(groups: groups, progress: progress)
        } else {
            // Per group, what any of the peers may lack.
            var byGroup: [GroupID: SyncFile.GroupPart] = [:]
            var order: [GroupID] = []
            for peer in peers {
                for part in try exportParts(groups: groups, for: peer, progress: progress) {
                    if var known = byGroup[part.group] {
                        let have = Set(known.envelopes)
                        known.envelopes = known.envelopes + part.envelopes.filter { !have.contains($0) }
                        byGroup[part.group] = known
                    } else {
                        byGroup[part.group] = part
                        order.append(part.group)
                    }
                }
            }
            parts = order.compactMap { byGroup[$0] }
        }
        let bytes = try SyncFile.write(exporter: me, groups: parts, protection: protection, using: &random)
        return (bytes, parts.reduce(0) { $0 + $1.envelopes.count })
    }

    /// The opener for files sent to me.
    public func fileOpener(passphrase: String? = nil) throws -> SyncFile.Opener {
        try store.read { tx in
            guard let profile = try tx.profile() else { throw DeviceError.notInitialized }
            let keys = try Keys(profile)
            return SyncFile.Opener(me: keys.me, prekeys: keys.prekeys, passphrase: passphrase)
        }
    }

    /// Imports a file: every envelope through the same checks as over a link (NETWORK.md §14.4),
    /// then remembers what the exporter showed it holds, for a later `export --for`.
    public mutating func importFile(_ bytes: [UInt8], passphrase: String? = nil, progress: ((Int, Int) -> Void)? = nil) throws -> ReceiveReport {
        let contents = try SyncFile.read(bytes, opener: try fileOpener(passphrase: passphrase))
        var items: [ReceivedEnvelope] = []
        for part in contents.groups {
            for wire in part.envelopes { items.append(ReceivedEnvelope(group: part.group, wire: wire)) }
            // Evidence last: each half is checked like any envelope; the one that contradicts my
            // log becomes my evidence too (the other is a duplicate, or fills its place).
            for pair in part.evidence { for wire in pair { items.append(ReceivedEnvelope(group: part.group, wire: wire)) } }
        }
        let total = items.count
        let report = try receive(items) { progress?($0, total) }
        let me = try self.me().id
        if contents.exporter != me {
            try store.write { tx in
                for part in contents.groups where try tx.group(part.group) != nil {
                    try tx.savePeerVector(peer: contents.exporter, group: part.group, vector: part.vector.wireBytes)
                }
            }
        }
        return report
    }
}
