public import DCGKAEncoding

/// Canonical encoding of a membership state (§8), what a welcome carries (§5.6):
///
/// ```
/// version     u8 = 3 (only this one is read: decoding is canonical)
/// members     varint n (≤ 65,536), then n × 32-byte IDs, strictly increasing
/// base        u8: 0 (nothing folded) | 1, then (§4.3, "Folding" in PROTOCOL-NOTES.md):
///   create    varint member index, varint seq: the folded create
///   members   varint b, then b member indexes as increasing gaps: Members(folded operations)
///   through   varint t (≥ 1), then t entries in increasing member index: varint gap, varint
///             seq ≥ 1: each sender's folded prefix
///   introduced varint c, then c member indexes as increasing gaps: who could send operations
///             that count when the base was made
/// operations  varint k (≤ 1,000,000), then k operations strictly increasing by (sender, seq):
///   sender    varint index into members
///   seq       varint ≥ 1
///   tag       u8: 0 create | 1 add | 2 remove
///   create:   varint count, then that many member indexes (the create's order)
///   add/rm:   varint member index
///   known     varint e (≥ 1: the sender's own entry is always there), then e entries in strictly
///             increasing member index: varint gap (index − previous index − 1; the first is the
///             index itself), varint seq ≥ 1
/// cuts        varint c (≤ 4,096), then c cuts strictly increasing (PROTOCOL-NOTES.md,
///             "Equivocation"): target 32, from varint ≥ 1, u8 0 (known to every view) | 1, then
///             the remove that carried the evidence: sender 32, seq varint (an operation held one
///             by one, a remove of the target)
/// ```
///
/// The member table is exactly the set of IDs that appear in operations (folded ones included), so
/// the size grows with the members and with the operations not yet folded and their
/// acknowledgments (at most one entry per member and operation), never with application messages.
extension MembershipState: WireCodable {
    public func encode(to writer: inout WireWriter) {
        writer.writeUInt8(Self.encodingVersion)
        let order = memberIDs.indices.sorted { memberIDs[$0] < memberIDs[$1] }
        var rank = [Int](repeating: 0, count: memberIDs.count)
        for (position, m) in order.enumerated() { rank[m] = position }
        writer.writeVarint(memberIDs.count)
        for m in order { memberIDs[m].encode(to: &writer) }
        func writeIndexSet(_ members: [Int]) {
            writer.writeVarint(members.count)
            var previous = -1
            for m in members.sorted() {
                writer.writeVarint(m - previous - 1)
                previous = m
            }
        }
        if let base, let create = createID {
            writer.writeUInt8(1)
            writer.writeVarint(rank[Int(memberIndex[create.sender]!)])
            writer.writeVarint(create.seq)
            writeIndexSet(base.members.map { rank[Int($0)] })
            let through = base.through.map { (rank: rank[Int($0.key)], seq: $0.value) }.sorted { $0.rank < $1.rank }
            writer.writeVarint(through.count)
            var previous = -1
            for entry in through {
                writer.writeVarint(entry.rank - previous - 1)
                writer.writeVarint(entry.seq)
                previous = entry.rank
            }
            writeIndexSet(base.introduced.indices.filter { base.introduced[$0] }.map { rank[$0] })
        } else {
            writer.writeUInt8(0)
        }

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
        writer.writeVarint(cuts.count)
        for cut in cuts {
            cut.target.encode(to: &writer)
            writer.writeVarint(cut.from)
            if let by = cut.by {
                writer.writeUInt8(1)
                by.sender.encode(to: &writer)
                writer.writeVarint(by.seq)
            } else {
                writer.writeUInt8(0)
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
        var used = [Bool](repeating: false, count: memberCount)
        let lastIndex = memberCount - 1

        func readIndexSet(_ reader: inout WireReader, _ field: String) throws(WireError) -> [Int] {
            let count = try reader.readBoundedVarint(field: field, limit: memberCount)
            guard count <= reader.remaining else { throw .truncated }
            var indexes: [Int] = []
            indexes.reserveCapacity(count)
            var previous = -1
            for _ in 0..<count {
                let index = previous + 1 + (try reader.readBoundedVarint(field: field, limit: lastIndex))
                guard index <= lastIndex else { throw .invalidValue(field: field) }
                indexes.append(index)
                used[index] = true
                previous = index
            }
            return indexes
        }
        switch try reader.readUInt8() {
        case 0: break
        case 1:
            guard memberCount > 0 else { throw .invalidValue(field: "membership.base empty") }
            let creator = try reader.readBoundedVarint(field: "membership.base.create", limit: lastIndex)
            used[creator] = true
            let createSeq = try reader.readVarint()
            guard createSeq >= 1, createSeq < KnowledgeRow.unknown else { throw .invalidValue(field: "membership.base.create seq") }
            let create = OperationID(sender: state.memberIDs[creator], seq: createSeq)
            let members = try readIndexSet(&reader, "membership.base.members")
            let throughCount = try reader.readBoundedVarint(field: "membership.base.through", limit: memberCount)
            guard throughCount >= 1, throughCount <= reader.remaining / 2 else { throw .truncated }
            var through: [Int32: UInt64] = [:]
            through.reserveCapacity(throughCount)
            var previous = -1
            for _ in 0..<throughCount {
                let index = previous + 1 + (try reader.readBoundedVarint(field: "membership.base.through", limit: lastIndex))
                guard index <= lastIndex else { throw .invalidValue(field: "membership.base.through") }
                let seq = try reader.readVarint()
                guard seq >= 1, seq < KnowledgeRow.unknown else { throw .invalidValue(field: "membership.base.through seq") }
                through[Int32(index)] = seq
                used[index] = true
                previous = index
            }
            // The create is folded first: it precedes everything.
            guard let createThrough = through[Int32(creator)], createThrough >= createSeq else {
                throw .invalidValue(field: "membership.base.create")
            }
            var introduced = [Bool](repeating: false, count: memberCount)
            for m in try readIndexSet(&reader, "membership.base.introduced") { introduced[m] = true }
            // Members of the base were introduced in it.
            guard members.allSatisfy({ introduced[$0] }) else { throw .invalidValue(field: "membership.base.members") }
            state.createID = create
            state.base = FoldedBase(members: members.map { Int32($0) }, through: through, introduced: introduced)
            for (m, flag) in introduced.enumerated() where flag { state.mayOperate[m] = true }
        case let tag:
            throw .unknownTag(field: "membership.base", tag: tag)
        }

        // The smallest operation is 7 bytes: sender, seq, tag, target, count, one entry (gap, seq).
        let opCount = try reader.readBoundedVarint(field: "membership.operations", limit: maxOperations)
        guard opCount <= reader.remaining / 7 else { throw .truncated }
        guard opCount > 0 || memberCount == 0 || state.base != nil else { throw .invalidValue(field: "membership.members unused") }
        guard opCount == 0 || memberCount > 0 else { throw .invalidValue(field: "membership.members empty") }
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
            // Nothing held one by one may be covered by the folded prefix of its sender.
            guard !state.isFoldedOperation(id) else { throw .invalidValue(field: "membership.op folded") }
            previousOp = id
            let kind: MembershipOperationKind
            switch try reader.readUInt8() {
            case MembershipOperation.createTag:
                guard state.createRecord < 0, state.base == nil else { throw .invalidValue(field: "membership.second create") }
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
            if let create = state.createID, op.id.sender == create.sender, op.id.seq < create.seq {
                throw .invalidValue(field: "membership.before create")
            }

            let r = state.insert(op, lowered: &lowered)
            for (m, knownSeq) in known { _ = state.setKnown(record: r, member: m, seq: knownSeq, lowered: &lowered) }
        }
        guard used.allSatisfy({ $0 }) else { throw .invalidValue(field: "membership.members unused") }

        if let create = state.createID {
            // Nothing may precede the create: the creator knows nothing from before its create.
            let creator = state.memberIndex[create.sender]!
            for known in state.knownOf {
                if let k = known[creator], k < create.seq { throw .invalidValue(field: "membership.before create") }
            }
        } else if opCount > 0 {
            throw .invalidValue(field: "membership.no create")
        }
        try decodeCuts(&reader, into: &state)
        state.finishLowered(lowered)
        state.recomputeMembers()
        return state
    }
}

extension MembershipState {
    static func decodeCuts(_ reader: inout WireReader, into state: inout MembershipState) throws(WireError) {
        let count = try reader.readBoundedVarint(field: "membership.cuts", limit: maxCuts)
        guard count <= reader.remaining / 34 else { throw .truncated }
        var cuts: [Cut] = []
        cuts.reserveCapacity(count)
        let heldSenders = count == 0 ? [] : Set(state.records.map(\.op.id.sender))
        for _ in 0..<count {
            let target = try MemberID.decode(from: &reader)
            let from = try reader.readVarint()
            guard from >= 1, from < KnowledgeRow.unknown else { throw .invalidValue(field: "membership.cut.from") }
            if let create = state.createID, create.sender == target, from <= create.seq {
                throw .invalidValue(field: "membership.cut of the create")
            }
            var cut = Cut(target: target, from: from, by: nil)
            switch try reader.readUInt8() {
            case 0:
                // Known to every view: the operations it covers are dropped, never held, but for
                // an add whose target's own operations are held (``MembershipState/cutMask(_:)``).
                for rec in state.records where rec.op.id.sender == target && rec.op.id.seq >= from {
                    if case .add(let added) = rec.op.kind, heldSenders.contains(added) { continue }
                    throw .invalidValue(field: "membership.cut covers a held operation")
                }
            case 1:
                let by = OperationID(sender: try MemberID.decode(from: &reader), seq: try reader.readVarint())
                guard let r = state.recordIndex[by], case .remove(let removed) = state.records[Int(r)].op.kind, removed == target
                else { throw .invalidValue(field: "membership.cut.by") }
                cut.by = by
            case let tag:
                throw .unknownTag(field: "membership.cut.by", tag: tag)
            }
            if let last = cuts.last, !(last < cut) { throw .invalidValue(field: "membership.cuts order") }
            if cut.by != nil, cuts.contains(where: { $0.by == cut.by }) { throw .invalidValue(field: "membership.cuts duplicate") }
            cuts.append(cut)
        }
        state.cuts = cuts
    }
}
