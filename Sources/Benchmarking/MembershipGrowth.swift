public import DCGKAEncoding
public import Membership

/// How the membership state a welcome carries grows with membership operations (issue 8, item 4),
/// measured at the Membership layer: `n` members, then `operations` removes and re-adds by random
/// members of their current view, each processed and acknowledged by every participant (removed
/// ones keep following, as devices do) before the next. The observer is the creator's history.
public struct MembershipGrowth: Sendable {
    public struct Sample: Sendable, Codable, Equatable {
        public var operations: Int
        public var bytesFolded: Int
        public var bytesUnfolded: Int
    }

    public var samples: [Sample] = []
    /// Largest encoded size seen with folding, over the whole run.
    public var maximumBytesFolded = 0
    /// Whether the folded and unfolded histories had the same members after every operation.
    public var membersAgree = true

    /// Runs the schedule, measuring every `every` operations (and at the end).
    public static func measure(members n: Int, operations: Int, seed: UInt64, every: Int) throws -> MembershipGrowth {
        precondition(n >= 2 && operations >= 0 && every >= 1, "MembershipGrowth needs n ≥ 2 and every ≥ 1")
        var rng = SplitMix(seed: seed)
        let ids = (0..<n).map { i in MemberID(bytes: (0..<32).map { UInt8(truncatingIfNeeded: $0 == 0 ? i >> 8 : $0 == 1 ? i : 7 &* $0) })! }
        var seqs = [UInt64](repeating: 0, count: n)
        var folded = MembershipState()
        var unfolded = MembershipState()
        unfolded.foldsSettledOperations = false
        var result = MembershipGrowth()

        func process(_ op: MembershipOperation, sender: Int) throws {
            for state in [0, 1] {
                if state == 0 { try folded.apply(op) } else { try unfolded.apply(op) }
            }
            for m in 0..<n where m != sender {
                seqs[m] += 1
                if case .add(let target) = op.kind, target == ids[m] {
                    try folded.recordWelcome(of: ids[m], add: op.id, atSeq: seqs[m])
                    try unfolded.recordWelcome(of: ids[m], add: op.id, atSeq: seqs[m])
                } else {
                    try folded.recordAcknowledgment(of: op.id, by: ids[m], atSeq: seqs[m])
                    try unfolded.recordAcknowledgment(of: op.id, by: ids[m], atSeq: seqs[m])
                }
            }
            folded.foldIfDue()
            if folded.members() != unfolded.members() { result.membersAgree = false }
        }

        seqs[0] = 1
        try process(MembershipOperation(id: OperationID(sender: ids[0], seq: 1), kind: .create(members: Array(ids.dropFirst()))), sender: 0)
        for done in 1...max(1, operations) where operations > 0 {
            let view = folded.members()
            let insiders = (0..<n).filter { view.contains(ids[$0]) }
            let outsiders = (0..<n).filter { !view.contains(ids[$0]) }
            let sender = insiders[Int(rng.next() % UInt64(insiders.count))]
            let kind: MembershipOperationKind
            if !outsiders.isEmpty && (insiders.count <= n / 2 || rng.next() % 2 == 0) {
                kind = .add(ids[outsiders[Int(rng.next() % UInt64(outsiders.count))]])
            } else {
                let others = insiders.filter { $0 != sender }
                kind = .remove(ids[others[Int(rng.next() % UInt64(others.count))]])
            }
            seqs[sender] += 1
            try process(MembershipOperation(id: OperationID(sender: ids[sender], seq: seqs[sender]), kind: kind), sender: sender)
            let size = folded.wireBytes.count
            result.maximumBytesFolded = max(result.maximumBytesFolded, size)
            if done % every == 0 || done == operations {
                result.samples.append(Sample(operations: done, bytesFolded: size, bytesUnfolded: unfolded.wireBytes.count))
            }
        }
        return result
    }
}

/// A tiny seeded generator, so the schedule is the same on every machine.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
