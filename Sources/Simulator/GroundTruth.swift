internal import DCGKAEncoding
internal import CausalBroadcast
internal import KeyAgreement
internal import Membership

/// A set of operation positions, one bit each.
struct OperationSet: Hashable {
    private(set) var words: [UInt64]

    init(capacity: Int) { words = [UInt64](repeating: 0, count: (capacity + 63) / 64) }

    func contains(_ i: Int) -> Bool { words[i >> 6] & (1 << UInt64(i & 63)) != 0 }
    mutating func insert(_ i: Int) { words[i >> 6] |= 1 << UInt64(i & 63) }
    mutating func remove(_ i: Int) { words[i >> 6] &= ~(1 << UInt64(i & 63)) }
    mutating func formUnion(_ other: OperationSet) {
        for k in words.indices { words[k] |= other.words[k] }
    }
    func intersection(_ other: OperationSet) -> OperationSet {
        var result = self
        for k in words.indices { result.words[k] &= other.words[k] }
        return result
    }
    var count: Int { words.reduce(0) { $0 + $1.nonzeroBitCount } }
    var members: [Int] {
        var out: [Int] = []
        for (k, word) in words.enumerated() where word != 0 {
            for bit in 0..<64 where word & (1 << UInt64(bit)) != 0 { out.append(k * 64 + bit) }
        }
        return out
    }
}

/// The order ≺ of §4.1 and what each member had processed, computed from the published envelopes
/// alone (every member acknowledges a create, add or remove when it processes it; a welcomed member
/// knows what its adder knew at the add), never from the members' own states; views then come
/// from the literal oracle of §4.2 (`MembershipOracle`). The simulator compares every member's view
/// with it and takes the expected readers of every message from it (§9).
final class GroundTruth {
    private(set) var operations: [MembershipOperation] = []
    private var indexByHash: [Bytes32: Int] = [:]
    /// Per operation: the operations its sender had processed before sending it.
    private var before: [OperationSet] = []
    /// The operations whose sender was a member in its own view just before them (§4.2: only
    /// those are in H; the others have no effect).
    private var authorized: OperationSet

    private struct Progress {
        var envelopes: [Envelope]
        var next = 0
        var known: OperationSet
        /// (seq, knowledge through that seq), at every seq where it grew.
        var points: [(seq: UInt64, known: OperationSet)] = []
    }
    private var progress: [MemberID: Progress] = [:]
    private var memo: [OperationSet: Set<MemberID>] = [:]
    private var emptySet: OperationSet
    /// The equivocation rule (PROTOCOL-NOTES.md, "Equivocation"): a remove that carries evidence
    /// of its target's fork cuts the target's operations from the forked seq off in every view
    /// that knows the remove.
    private var cuts: [(remove: Int, cutOff: [Int])] = []

    /// `forkSides`: second sides of forks (the first sides are in `storeBySender`); both are
    /// operations, each known to whoever delivered it.
    init(storeBySender: [MemberID: [UInt64: Envelope]], forkSides: [Envelope] = []) {
        var opSender: [(MemberID, UInt64)] = []
        var evidence: [(remove: Int, target: MemberID, from: UInt64)] = []
        var all: [Envelope] = []
        for (_, bySeq) in storeBySender {
            for seq in bySeq.keys.sorted() { all.append(bySeq[seq]!) }
        }
        var ops: [MembershipOperation] = []
        var index: [Bytes32: Int] = [:]
        for envelope in all + forkSides {
            guard let kind = Self.membershipKind(of: envelope) else { continue }
            if case .remove(let target) = kind, let from = Self.cut(in: envelope, removing: target) {
                evidence.append((ops.count, target, from))
            }
            index[envelope.hash] = ops.count
            ops.append(MembershipOperation(id: envelope.operationID, kind: kind))
            opSender.append((envelope.sender, envelope.seq))
        }
        operations = ops
        indexByHash = index
        emptySet = OperationSet(capacity: operations.count)
        authorized = emptySet
        for (sender, bySeq) in storeBySender {
            progress[sender] = Progress(envelopes: bySeq.keys.sorted().map { bySeq[$0]! }, known: emptySet)
        }
        before = opSender.map { known(by: $0.0, through: $0.1 - 1) }
        for cut in evidence {
            let cutOff = operations.indices.filter { i in
                if case .create = operations[i].kind { return false }  // the create is never cut off
                return operations[i].id.sender == cut.target && operations[i].id.seq >= cut.from
            }
            cuts.append((cut.remove, cutOff))
        }
        // Everything an operation's sender knew before it precedes it, so judging operations by
        // how much their senders knew judges every operation after all those it depends on.
        for op in operations.indices.sorted(by: { before[$0].count < before[$1].count }) {
            if case .create = operations[op].kind {
                authorized.insert(op)
            } else if members(knowing: before[op]).contains(operations[op].id.sender) {
                authorized.insert(op)
                cutOffMemo = [:]  // computed over the operations authorized so far
            }
        }
    }

    static func membershipKind(of envelope: Envelope) -> MembershipOperationKind? {
        guard envelope.kind == .create || envelope.kind == .add || envelope.kind == .remove,
              let kind = ControlKind(rawValue: envelope.kind.rawValue),
              let payload = envelope.payload, let body = try? ControlBody(kind: kind, payload: payload) else { return nil }
        switch body.fields {
        case .create(let bundles): return .create(members: bundles.map(\.identity).filter { $0 != envelope.sender })
        // An add whose bundle has keys of small order is refused by every member (§2.1): no operation.
        case .add(let bundle, _): return (try? bundle.checkKeys()) == nil ? nil : .add(bundle.identity)
        case .remove(let id): return .remove(id)
        default: return nil
        }
    }

    /// The membership operations `member` had sent or processed by its envelope `seq`.
    func known(by member: MemberID, through seq: UInt64) -> OperationSet {
        advance(member, through: seq)
        guard let points = progress[member]?.points else { return emptySet }
        var low = 0, high = points.count
        while low < high {
            let mid = (low + high) / 2
            if points[mid].seq <= seq { low = mid + 1 } else { high = mid }
        }
        return low == 0 ? emptySet : points[low - 1].known
    }

    private func advance(_ member: MemberID, through seq: UInt64) {
        while var state = progress[member], state.next < state.envelopes.count, state.envelopes[state.next].seq <= seq {
            let envelope = state.envelopes[state.next]
            state.next += 1
            progress[member] = state  // visible to the recursion below
            var grown = state.known
            if let own = indexByHash[envelope.hash] { grown.insert(own) }
            if let acked = envelope.acked, let op = indexByHash[acked.hash] {
                grown.insert(op)
                if envelope.kind == .welcomeAck {
                    // A welcomed member knows what its adder knew at the add (§4.1).
                    let add = operations[op].id
                    grown.formUnion(known(by: add.sender, through: add.seq - 1))
                }
            }
            state = progress[member]!
            if grown != state.known {
                state.known = grown
                state.points.append((envelope.seq, grown))
            }
            progress[member] = state
        }
    }

    /// The seq a remove's fork evidence cuts its target off from, if it carries valid evidence.
    static func cut(in envelope: Envelope, removing target: MemberID) -> UInt64? {
        guard let payload = envelope.payload, let body = try? ControlBody(kind: .remove, payload: payload),
              let bytes = body.forkEvidence, let evidence = try? ForkEvidence(wire: bytes, groupID: envelope.groupID),
              evidence.sender == target, evidence.verify() else { return nil }
        return evidence.cutSeq
    }

    /// Members(H) of §4.2 over the operations in `set`, by the literal oracle.
    func members(knowing known: OperationSet) -> Set<MemberID> {
        var set = known.intersection(authorized)
        let knownCuts = cuts.indices.filter { set.contains(cuts[$0].remove) }
        if !knownCuts.isEmpty {
            for op in cutOff(by: knownCuts).members { set.remove(op) }
        }
        return oracle(set)
    }

    private func oracle(_ set: OperationSet) -> Set<MemberID> {
        if let cached = memo[set] { return cached }
        let positions = set.members
        let subset = positions.map { operations[$0] }
        let result = MembershipOracle.members(operations: subset) { a, b in before[positions[b]].contains(positions[a]) }
        memo[set] = result
        return result
    }

    private var cutOffMemo: [[Int]: OperationSet] = [:]

    /// The operations that count in no view knowing the cuts `known`: the cut targets'
    /// operations from their forked seqs on, and then every operation whose sender is no member
    /// in its own view before it once those are taken out (a member only a cut-off add
    /// introduced), to a fixpoint (PROTOCOL-NOTES.md, "Equivocation").
    private func cutOff(by known: [Int]) -> OperationSet {
        if let cached = cutOffMemo[known] { return cached }
        var covered = emptySet
        var suspects = Set<MemberID>()
        for c in known {
            for op in cuts[c].cutOff where authorized.contains(op) {
                covered.insert(op)
                if case .add(let target) = operations[op].kind { suspects.insert(target) }
            }
        }
        var changed = !suspects.isEmpty
        while changed {
            changed = false
            for op in authorized.members where !covered.contains(op) && suspects.contains(operations[op].id.sender) {
                if case .create = operations[op].kind { continue }  // never cut off
                var view = before[op].intersection(authorized)
                for c in covered.members { view.remove(c) }
                guard !oracle(view).contains(operations[op].id.sender) else { continue }
                covered.insert(op)
                changed = true
                if case .add(let target) = operations[op].kind { suspects.insert(target) }
            }
        }
        cutOffMemo[known] = covered
        return covered
    }

    /// member-view(member) as it was when it sent its envelope `seq` (what it had processed before).
    func view(of member: MemberID, before seq: UInt64) -> Set<MemberID> {
        members(knowing: known(by: member, through: seq - 1))
    }

    /// member-view(member) after everything it had sent or processed by its envelope `seq`.
    func view(of member: MemberID, through seq: UInt64) -> Set<MemberID> {
        members(knowing: known(by: member, through: seq))
    }
}
