import DCGKAEncoding
import Membership
import Testing

/// Cuts (§6.2's equivocation rule; PROTOCOL-NOTES.md, "Equivocation") at the membership layer.
@Suite struct CutTests {
    /// Members 0…4 from a create by 0, where 3 is the equivocator; 3 adds 5 at its seq 2.
    static func forkedHistory() throws -> (MembershipState, [MemberID], OperationID, OperationID) {
        var (state, ids, _) = try FoldingTests.settledGroup(5)
        let extra = FoldingTests.id(5)
        let cutAdd = MembershipOperation(id: OperationID(sender: ids[3], seq: 2), kind: .add(extra))
        try state.apply(cutAdd)
        try state.recordAcknowledgment(of: cutAdd.id, by: ids[1], atSeq: 2)  // 1 took this side
        // 0 removes 3 with the evidence: 3's operations from seq 2 on are cut off.
        let remove = MembershipOperation(id: OperationID(sender: ids[0], seq: 2), kind: .remove(ids[3]))
        try state.apply(remove)
        try state.recordCut(of: ids[3], from: 2, by: remove.id)
        return (state, ids + [extra], cutAdd.id, remove.id)
    }

    @Test("a cut takes the equivocator's operations from the forked seq out of every view that knows the remove")
    func cutViews() throws {
        let (state, ids, _, remove) = try Self.forkedHistory()
        #expect(state.members() == Set([ids[0], ids[1], ids[2], ids[4]]), "neither 3 nor the member only its cut add made")
        // 1 does not know the remove yet: its view still has the side it took.
        #expect(state.members(asSeenBy: ids[1], atSeq: 2) == Set(ids))
        // The remover knows it from its own seq on.
        #expect(state.members(asSeenBy: ids[0], atSeq: remove.seq) == state.members())
        #expect(state.cutOffs.count == 1 && state.isCutOff(OperationID(sender: ids[3], seq: 2)))
        // The create is never cut off, whoever made it.
        var create = try FoldingTests.settledGroup(3).0
        let creator = FoldingTests.id(0)
        let removeCreator = MembershipOperation(id: OperationID(sender: FoldingTests.id(1), seq: 2), kind: .remove(creator))
        try create.apply(removeCreator)
        try create.recordCut(of: creator, from: 1, by: removeCreator.id)
        #expect(create.cutOffs.first?.from == 2)
        #expect(create.members() == Set([FoldingTests.id(1), FoldingTests.id(2)]))
    }

    /// Once the remove that carries the cut is settled, the cut is known to every view, becomes
    /// part of the base, and the cut operations are dropped; an acknowledgment of one that arrives
    /// later changes nothing and is no error (it used to fail as an unknown operation, seen in
    /// `dcgka simulate --members 6 --operations 150 --seed 27 --adversary`).
    @Test("a folded cut drops the cut operations, and late acknowledgments of them are harmless")
    func foldedCut() throws {
        var (state, ids, cutAdd, remove) = try Self.forkedHistory()
        for (m, seq) in [(1, UInt64(3)), (2, 2), (3, 3), (4, 2), (5, 1)] {
            try state.recordAcknowledgment(of: remove, by: ids[m], atSeq: seq)
        }
        let before = state.members()
        #expect(state.foldSettled() > 0)
        #expect(state.contains(remove) && !state.contains(cutAdd) && state.isDroppedByCut(cutAdd))
        #expect(state.cutOffs.allSatisfy { $0.by == nil })
        #expect(state.members() == before)
        try state.recordAcknowledgment(of: cutAdd, by: ids[2], atSeq: 3)
        #expect(state.members() == before)
        // Round trip with the universal cut.
        #expect(try MembershipState(wireBytes: state.wireBytes) == state)
    }

    /// A member that only the equivocator's cut-off add introduced acted while the cut was
    /// unknown on its side; the other side never delivers its envelopes (a stranger past the cut).
    /// So its operations count in no view that knows the cut, it holds no folding back, and its
    /// anchor (the cut add) stays while its operations are held. Before, its remove kept counting
    /// on one side only (`dcgka simulate --members 6 --operations 150 --adversary`, seeds 13, 22).
    @Test("operations of a member only a cut-off add introduced count in no view that knows the cut")
    func memberOfTheCutSide() throws {
        var (state, ids, _) = try FoldingTests.settledGroup(5)
        let newcomer = FoldingTests.id(5)
        let cutAdd = MembershipOperation(id: OperationID(sender: ids[3], seq: 2), kind: .add(newcomer))
        try state.apply(cutAdd)
        try state.recordAcknowledgment(of: cutAdd.id, by: ids[1], atSeq: 2)
        try state.recordWelcome(of: newcomer, add: cutAdd.id, atSeq: 1)
        let newcomersRemove = MembershipOperation(id: OperationID(sender: newcomer, seq: 2), kind: .remove(ids[2]))
        try state.apply(newcomersRemove)
        #expect(state.members() == Set([ids[0], ids[1], ids[3], ids[4], newcomer]), "the cut unknown: its remove counts")
        let remove = MembershipOperation(id: OperationID(sender: ids[0], seq: 2), kind: .remove(ids[3]))
        try state.apply(remove)
        try state.recordCut(of: ids[3], from: 2, by: remove.id)
        let honest = Set([ids[0], ids[1], ids[2], ids[4]])
        #expect(state.members() == honest, "the newcomer's remove counts nowhere once the cut is known")
        #expect(state.members(asSeenBy: ids[0], atSeq: 2) == honest)
        // A view that does not know the cut still has the side it took.
        #expect(state.members(asSeenBy: newcomer, atSeq: 2) == Set([ids[0], ids[1], ids[3], ids[4], newcomer]))
        #expect(try MembershipState(wireBytes: state.wireBytes) == state)

        // Every honest member acknowledges the remove; neither the equivocator nor the newcomer
        // ever does, and the remove still settles.
        for (m, seq) in [(1, UInt64(3)), (2, 2), (4, 2)] {
            try state.recordAcknowledgment(of: remove.id, by: ids[m], atSeq: seq)
        }
        #expect(state.foldSettled() > 0)
        #expect(state.isFoldedOperation(remove.id) && state.cutOffs.allSatisfy { $0.by == nil })
        #expect(state.members() == honest, "the newcomer's remove is still held, and counts nowhere")
        #expect(state.contains(newcomersRemove.id) && state.contains(cutAdd.id))
        #expect(try MembershipState(wireBytes: state.wireBytes) == state)
    }

    @Test("cuts round-trip, and a cut that names no remove of its target does not decode")
    func cutEncoding() throws {
        let (state, _, _, _) = try Self.forkedHistory()
        let bytes = state.wireBytes
        #expect(try MembershipState(wireBytes: bytes) == state)
        // The cut's remove is the last thing encoded: its seq varint is the last byte.
        var wrong = bytes
        wrong[wrong.count - 1] = 9
        #expect(throws: WireError.self) { try MembershipState(wireBytes: wrong) }
    }
}
