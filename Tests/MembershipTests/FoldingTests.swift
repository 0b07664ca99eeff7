import DCGKAEncoding
import Membership
import Testing

/// Folding (§4.3) and the decoder's memory bound (issue 8, item 4).
@Suite struct FoldingTests {
    static func id(_ i: Int) -> MemberID {
        MemberID(bytes: (0..<32).map { UInt8(truncatingIfNeeded: $0 == 0 ? i >> 8 : $0 == 1 ? i : 0x5A) })!
    }

    /// A history of `n` create members where every member acknowledges every operation.
    static func settledGroup(_ n: Int) throws -> (MembershipState, [MemberID], [UInt64]) {
        let ids = (0..<n).map(id)
        var state = MembershipState()
        var seqs = [UInt64](repeating: 1, count: n)
        try state.apply(MembershipOperation(id: OperationID(sender: ids[0], seq: 1), kind: .create(members: Array(ids.dropFirst()))))
        for m in 1..<n { try state.recordAcknowledgment(of: OperationID(sender: ids[0], seq: 1), by: ids[m], atSeq: 1) }
        return (state, ids, seqs)
    }

    @Test func settledOperationsFoldAndLaterOperationsStillFollowTheRule() throws {
        var (state, ids, seqs) = try Self.settledGroup(4)
        var unfolded = state
        unfolded.foldsSettledOperations = false
        // 1 removes 3, everyone acknowledges: settled.
        seqs[1] += 1
        let remove = MembershipOperation(id: OperationID(sender: ids[1], seq: seqs[1]), kind: .remove(ids[3]))
        for s in [0, 1] { if s == 0 { try state.apply(remove) } else { try unfolded.apply(remove) } }
        for m in [0, 2, 3] {
            seqs[m] += 1
            try state.recordAcknowledgment(of: remove.id, by: ids[m], atSeq: seqs[m])
            try unfolded.recordAcknowledgment(of: remove.id, by: ids[m], atSeq: seqs[m])
        }
        #expect(state.foldSettled() == 2)
        #expect(state.isFolded && state.operationCount == 0 && state.contains(remove.id))
        #expect(state.members() == unfolded.members())
        #expect(state.members() == Set([ids[0], ids[1], ids[2]]))
        // Now 0 and 2 remove each other concurrently: both go, in both histories.
        for (a, b) in [(0, 2), (2, 0)] {
            seqs[a] += 1
            let op = MembershipOperation(id: OperationID(sender: ids[a], seq: seqs[a]), kind: .remove(ids[b]))
            try state.apply(op)
            try unfolded.apply(op)
        }
        #expect(state.members() == unfolded.members())
        #expect(state.members() == [ids[1]])
        #expect(state.foldSettled() == 0, "nobody acknowledged the concurrent removes yet")
        // The folded state survives encoding, canonically.
        let decoded = try MembershipState(wireBytes: state.wireBytes)
        #expect(decoded == state && decoded.wireBytes == state.wireBytes && decoded.members() == state.members())
    }

    /// An invitee that never joins could still send operations concurrent with anything after
    /// its welcome, so only what precedes its add folds (exactness, not a horizon).
    @Test func aSilentInviteeHoldsBackOnlyWhatFollowsItsAdd() throws {
        var (state, ids, seqs) = try Self.settledGroup(3)
        let invitee = Self.id(99)
        seqs[0] += 1
        let add = MembershipOperation(id: OperationID(sender: ids[0], seq: seqs[0]), kind: .add(invitee))
        try state.apply(add)
        for m in [1, 2] { seqs[m] += 1; try state.recordAcknowledgment(of: add.id, by: ids[m], atSeq: seqs[m]) }
        #expect(state.foldSettled() == 2, "the create and the add: the invitee learns both from its welcome")
        seqs[1] += 1
        let remove = MembershipOperation(id: OperationID(sender: ids[1], seq: seqs[1]), kind: .remove(ids[2]))
        try state.apply(remove)
        for m in [0, 2] { seqs[m] += 1; try state.recordAcknowledgment(of: remove.id, by: ids[m], atSeq: seqs[m]) }
        #expect(state.foldSettled() == 0, "the invitee has not acknowledged the remove")
        try state.recordWelcome(of: invitee, add: add.id, atSeq: 1)
        #expect(state.foldSettled() == 0)
        try state.recordAcknowledgment(of: remove.id, by: invitee, atSeq: 2)
        #expect(state.foldSettled() == 1)
        #expect(state.members() == Set([ids[0], ids[1], invitee]))
    }

    /// Decoding L bytes allocates at most 64·L bytes, for the input that amplified most before
    /// sparse knowledge rows: many member IDs and operations whose sender has the highest index.
    @Test func decodingAllocatesAtMost64BytesPerInputByte() throws {
        let n = 4_096, k = 20_000
        let ids = (0..<n).map(Self.id).sorted()
        var writer = WireWriter()
        writer.writeUInt8(3)
        writer.writeVarint(n)
        for id in ids { id.encode(to: &writer) }
        writer.writeUInt8(0)  // nothing folded
        writer.writeVarint(1 + k)
        let top = n - 1
        // The create by the highest index, listing everyone else; then k adds by it.
        writer.writeVarint(top); writer.writeVarint(1); writer.writeUInt8(0)
        writer.writeVarint(n - 1)
        for i in 0..<(n - 1) { writer.writeVarint(i) }
        writer.writeVarint(1); writer.writeVarint(top); writer.writeVarint(1)
        for j in 0..<k {
            writer.writeVarint(top); writer.writeVarint(2 + j); writer.writeUInt8(1); writer.writeVarint(j % (n - 1))
            writer.writeVarint(1); writer.writeVarint(top); writer.writeVarint(2 + j)
        }
        writer.writeVarint(0)  // no cuts
        let bytes = writer.bytes
        let state = try MembershipState(wireBytes: bytes)
        #expect(state.operationCount == 1 + k)
        let allocated = state.estimatedMemoryBytes
        #expect(allocated <= 64 * bytes.count, "\(allocated) bytes for \(bytes.count) input bytes")
        // Dense rows sized by the highest index would have taken 8 bytes per member per operation.
        #expect(allocated < (1 + k) * n * 8 / 100)
    }
}
