public import DCGKAEncoding

/// Canonical encoding of a membership state (§8), what a welcome carries (§5.6):
///
/// ```
/// version     u8 = 1
/// members     varint n (≤ 65,536), then n × 32-byte IDs, strictly increasing
/// operations  varint k (≤ 1,000,000), then k operations strictly increasing by (sender, seq):
///   sender    varint index into members
///   seq       varint ≥ 1
///   tag       u8: 0 create | 1 add | 2 remove
///   create:   varint count, then that many member indexes (the create's order)
///   add/rm:   varint member index
///   known     varint e (≥ 1: the sender's own entry is always there), then e entries in strictly
///             increasing member index: varint gap (index − previous index − 1; the first is the
///             index itself), varint seq ≥ 1
/// ```
///
/// The member table is exactly the set of IDs that appear in operations, so the size grows with
/// the number of operations, members and acknowledgments of membership operations only (at most one
/// entry per member and operation), never with application messages.
extension MembershipState: WireCodable {
    public func encode(to writer: inout WireWriter) {
        writer.writeUInt8(Self.encodingVersion)
        let order = memberIDs.indices.sorted { memberIDs[$0] < memberIDs[$1] }
        var rank = [Int](repeating: 0, count: memberIDs.count)
        for (position, m) in order.enumerated() { rank[m] = position }
        writer.writeVarint(memberIDs.count)
        for m in order { memberIDs[m].encode(to: &writer) }

        let opOrder = records.indices.sorted { records[$0].op.id < records[$1].op.id }
        writer.writeVarint(records.count)
        var entries: [(rank: Int, seq: UInt64)] = []
        for r in opOrder {
            let rec = records[r]
            writer.writeVarint(rank[Int(rec.sender)])
            writer.writeVarint(rec.op.id.seq)
            switch rec.op.kind {
            case .create:
                writer.writeUInt8(MembershipOperation.createTag)
                writer.writeVarint(rec.createMembers.count)
                for m in rec.createMembers { writer.writeVarint(rank[Int(m)]) }
            case .add:
                writer.writeUInt8(MembershipOperation.addTag)
                writer.writeVarint(rank[Int(rec.target)])
            case .remove:
                writer.writeUInt8(MembershipOperation.removeTag)
                writer.writeVarint(rank[Int(rec.target)])
            }
            entries.removeAll(keepingCapacity: true)
            for (m, seq) in knownOf[r] { entries.append((rank[Int(m)], seq)) }
            entries.sort { $0.rank < $1.rank }
            writer.writeVarint(entries.count)
            var previous = -1
            for entry in entries {
                writer.writeVarint(entry.rank - previous - 1)
                writer.writeVarint(entry.seq)
                previous = entry.rank
            }
        }
    }

    /// Total and bounded: every count is checked against its limit and the remaining input before
    /// anything is allocated, anything non-canonical is rejected, and the result is re-validated
    /// (exactly one create, nothing before it, the sender's own knowledge present, no unused IDs).
    public static func decode(from reader: inout WireReader) throws(WireError) -> MembershipState {
        let version = try reader.readUInt8()
        guard version == encodingVersion else { throw .unsupportedVersion(version) }

        let memberCount = try reader.readBoundedVarint(field: "membership.members", limit: maxMembers)
        guard memberCount <= reader.remaining / 32 else { throw .truncated }
        var state = MembershipState()
        var previousID: MemberID?
        for _ in 0..<memberCount {
            let id = try MemberID.decode(from: &reader)
            if let previousID, !(previousID < id) { throw .invalidValue(field: "membership.members order") }
            previousID = id
            _ = state.intern(id)
        }

        // The smallest operation is 7 bytes: sender, seq, tag, target, count, one entry (gap, seq).
        let opCount = try reader.readBoundedVarint(field: "membership.operations", limit: maxOperations)
        guard opCount <= reader.remaining / 7 else { throw .truncated }
        guard opCount > 0 || memberCount == 0 else { throw .invalidValue(field: "membership.members unused") }
        guard opCount == 0 || memberCount > 0 else { throw .invalidValue(field: "membership.members empty") }
        let lastIndex = memberCount - 1
        var used = [Bool](repeating: false, count: memberCount)
        var previousOp: OperationID?
        var lowered: [Int32] = []
        state.records.reserveCapacity(opCount)

        func readIndex(_ reader: inout WireReader, _ field: String) throws(WireError) -> Int {
            let index = try reader.readBoundedVarint(field: field, limit: lastIndex)
            used[index] = true
            return index
        }

        for _ in 0..<opCount {
            let sender = try readIndex(&reader, "membership.op.sender")
            let seq = try reader.readVarint()
            guard seq >= 1, seq < KnowledgeRow.unknown else { throw .invalidValue(field: "membership.op.seq") }
            let id = OperationID(sender: state.memberIDs[sender], seq: seq)
            if let previousOp, !(previousOp < id) { throw .invalidValue(field: "membership.operations order") }
            previousOp = id
            let kind: MembershipOperationKind
            switch try reader.readUInt8() {
            case MembershipOperation.createTag:
                guard state.createRecord < 0 else { throw .invalidValue(field: "membership.second create") }
                let count = try reader.readBoundedVarint(field: "membership.create.members", limit: lastIndex)
                guard count <= reader.remaining else { throw .truncated }
                var members: [MemberID] = []
                members.reserveCapacity(count)
                for _ in 0..<count { members.append(state.memberIDs[try readIndex(&reader, "membership.create.member")]) }
                kind = .create(members: members)
            case MembershipOperation.addTag:
                kind = .add(state.memberIDs[try readIndex(&reader, "membership.add.member")])
            case MembershipOperation.removeTag:
                kind = .remove(state.memberIDs[try readIndex(&reader, "membership.remove.member")])
            case let tag:
                throw .unknownTag(field: "membership.op", tag: tag)
            }
            let op = MembershipOperation(id: id, kind: kind)
            guard op.isWellFormed else { throw .invalidValue(field: "membership.create members") }

            let entryCount = try reader.readBoundedVarint(field: "membership.known", limit: memberCount)
            guard entryCount >= 1 else { throw .invalidValue(field: "membership.known empty") }
            guard entryCount <= reader.remaining / 2 else { throw .truncated }
            var known: [Int32: UInt64] = [:]
            known.reserveCapacity(entryCount)
            var previous = -1
            for _ in 0..<entryCount {
                let gap = try reader.readBoundedVarint(field: "membership.known.member", limit: lastIndex)
                let index = previous + 1 + gap
                guard index <= lastIndex else { throw .invalidValue(field: "membership.known.member") }
                let knownSeq = try reader.readVarint()
                guard knownSeq >= 1, knownSeq < KnowledgeRow.unknown else { throw .invalidValue(field: "membership.known.seq") }
                known[Int32(index)] = knownSeq
                previous = index
            }
            guard let own = known[Int32(sender)], own <= seq else { throw .invalidValue(field: "membership.known sender") }

            let r = state.insert(op, lowered: &lowered)
            for (m, knownSeq) in known { _ = state.setKnown(record: r, member: m, seq: knownSeq, lowered: &lowered) }
        }
        guard used.allSatisfy({ $0 }) else { throw .invalidValue(field: "membership.members unused") }

        if opCount > 0 {
            guard state.createRecord >= 0 else { throw .invalidValue(field: "membership.no create") }
            // Nothing may precede the create: the creator knows nothing from before its create.
            let create = state.records[Int(state.createRecord)]
            for known in state.knownOf {
                if let k = known[create.sender], k < create.op.id.seq {
                    throw .invalidValue(field: "membership.before create")
                }
            }
        }
        state.finishLowered(lowered)
        state.recomputeMembers()
        return state
    }
}
