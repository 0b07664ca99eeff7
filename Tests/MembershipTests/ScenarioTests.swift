import DCGKAEncoding
import Membership
import Testing

/// The cases of §4.2 and §5.5 that the strong-remove rule must get right, each also checked
/// against the oracle.
@Suite struct ScenarioTests {
    /// create(A, {B, C}) with B and C acknowledging it in their first envelopes.
    func founded() throws -> (MembershipState, OperationID) {
        var h = MembershipState()
        let create = try h.send(alice, 1, .create(members: [bob, carol]))
        try h.ack(create, by: bob, 1)
        try h.ack(create, by: carol, 1)
        return (h, create)
    }

    @Test func createMakesEveryoneAMember() throws {
        let (h, create) = try founded()
        #expect(h.checkedMembers() == [alice, bob, carol])
        #expect(h.operationCount == 1)
        #expect(h.create?.id == create)
        #expect(h.isKnownParticipant(carol) && !h.isKnownParticipant(dave))
        #expect(h.checkedView(bob, 1) == [alice, bob, carol])
        #expect(h.checkedView(dave, 10).isEmpty)
    }

    @Test func mutualRemovalRemovesBoth() throws {
        var (h, _) = try founded()
        try h.send(alice, 2, .remove(bob))
        try h.send(bob, 2, .remove(alice))
        #expect(h.checkedMembers() == [carol])
        // Each remover's own view at its remove still has itself.
        #expect(h.checkedView(alice, 2) == [alice, carol])
        #expect(h.checkedView(bob, 2) == [bob, carol])
        #expect(h.checkedView(alice, 1) == [alice, bob, carol])
        // Carol acknowledges A's remove first, then B's.
        try h.ack(OperationID(sender: alice, seq: 2), by: carol, 2)
        try h.ack(OperationID(sender: bob, seq: 2), by: carol, 3)
        #expect(h.checkedView(carol, 1) == [alice, bob, carol])
        #expect(h.checkedView(carol, 2) == [alice, carol])
        #expect(h.checkedView(carol, 3) == [carol])
        #expect(h.checkedView(carol, 99) == [carol])
    }

    @Test func removeConcurrentWithAddByRemovedMemberCancelsTheAdd() throws {
        var (h, _) = try founded()
        try h.send(alice, 2, .remove(bob))
        try h.send(bob, 2, .add(dave))
        #expect(h.checkedMembers() == [alice, carol])
        #expect(h.checkedView(bob, 2) == [alice, bob, carol, dave])
    }

    @Test func cancellationIsTransitive() throws {
        var (h, _) = try founded()
        let addCarolsFriend = try h.send(bob, 2, .add(dave))
        try h.recordWelcome(of: dave, add: addCarolsFriend, atSeq: 1)
        try h.send(dave, 2, .add(erin))
        #expect(h.checkedMembers() == [alice, bob, carol, dave, erin])  // control: nothing removed yet
        try h.send(alice, 2, .remove(bob))
        #expect(h.checkedMembers() == [alice, carol])
    }

    @Test func addConcurrentWithRemoveOfSameIDSurvives() throws {
        var (h, _) = try founded()
        try h.send(alice, 2, .remove(bob))
        let readd = try h.send(carol, 2, .add(bob))
        #expect(h.checkedMembers() == [alice, bob, carol])
        #expect(h.checkedView(alice, 2) == [alice, carol])
        #expect(h.checkedView(carol, 2) == [alice, bob, carol])
        // A remove that knows the re-add does remove again.
        try h.ack(readd, by: alice, 3)
        try h.send(alice, 4, .remove(bob))
        #expect(h.checkedMembers() == [alice, carol])
    }

    @Test func sequentialReAdd() throws {
        var (h, _) = try founded()
        let remove = try h.send(alice, 2, .remove(bob))
        #expect(h.checkedMembers() == [alice, carol])
        try h.ack(remove, by: carol, 2)
        try h.send(carol, 3, .add(bob))
        #expect(h.checkedMembers() == [alice, bob, carol])
    }

    @Test func removeConcurrentWithAnAlreadyAcknowledgedAdd() throws {
        var (h, _) = try founded()
        let add = try h.send(bob, 2, .add(dave))
        try h.ack(add, by: alice, 2)  // Alice knew the add before removing its author
        try h.send(alice, 3, .remove(bob))
        #expect(h.checkedMembers() == [alice, carol, dave])
        // Had the remove not known the add, Dave would be gone with Bob.
        var (g, _) = try founded()
        try g.send(bob, 2, .add(dave))
        try g.send(alice, 2, .remove(bob))
        #expect(g.checkedMembers() == [alice, carol])
        // An add that the removed member acknowledged (not sent) keeps its own authority.
        var (k, _) = try founded()
        let carolAdds = try k.send(carol, 2, .add(dave))
        try k.ack(carolAdds, by: bob, 2)
        try k.send(alice, 2, .remove(bob))
        #expect(k.checkedMembers() == [alice, carol, dave])
    }

    @Test func removedCreatorTakesNoInitialMemberWithIt() throws {
        var (h, _) = try founded()
        try h.send(bob, 2, .remove(alice))
        #expect(h.checkedMembers() == [bob, carol])
    }

    @Test func welcomeMakesAddedMembersOpsSucceedTheAddersPast() throws {
        var adder = MembershipState()
        let create = try adder.send(alice, 1, .create(members: [bob]))
        try adder.ack(create, by: bob, 1)
        let removeBob = try adder.send(alice, 2, .remove(bob))
        let addCarol = try adder.send(alice, 3, .add(carol))

        // Carol's welcome carries Alice's state; Carol acknowledges it in her envelope 1.
        var newcomer = try MembershipState(wireBytes: adder.wireBytes)
        #expect(newcomer == adder)
        try newcomer.recordWelcome(of: carol, add: addCarol, atSeq: 1)
        for op in [create, removeBob, addCarol] { #expect(newcomer.knownSeq(of: op, by: carol) == 1) }
        let carolAdds = try newcomer.send(carol, 2, .add(dave))
        #expect(newcomer.precedes(create, carolAdds))
        #expect(newcomer.precedes(removeBob, carolAdds))
        #expect(newcomer.precedes(addCarol, carolAdds))
        #expect(!newcomer.precedes(carolAdds, addCarol))
        #expect(newcomer.checkedView(carol, 1) == [alice, carol])
        #expect(newcomer.checkedView(carol, 2) == [alice, carol, dave])
        #expect(newcomer.checkedMembers() == [alice, carol, dave])

        // Without the welcome knowledge Carol's add would have no authority behind it.
        var forgetful = adder
        try forgetful.send(carol, 2, .add(dave))
        #expect(forgetful.checkedMembers() == [alice, carol])

        // Everybody processing Carol's welcome-ack ends with the same state as Carol.
        var other = adder
        try other.recordWelcome(of: carol, add: addCarol, atSeq: 1)
        try other.send(carol, 2, .add(dave))
        #expect(other == newcomer)
    }

    @Test func welcomeExcludesOperationsConcurrentWithTheAdd() throws {
        var h = MembershipState()
        let create = try h.send(alice, 1, .create(members: [bob]))
        try h.ack(create, by: bob, 1)
        let concurrent = try h.send(bob, 2, .add(erin))
        let addCarol = try h.send(alice, 2, .add(carol))
        try h.recordWelcome(of: carol, add: addCarol, atSeq: 1)
        #expect(h.knownSeq(of: concurrent, by: carol) == nil)
        #expect(h.checkedView(carol, 1) == [alice, bob, carol])
        #expect(h.checkedMembers() == [alice, bob, carol, erin])
    }

    @Test func mergeIsUnionKeepingSmallerSeqs() throws {
        var (base, create) = try founded()
        let addDave = try base.send(alice, 2, .add(dave))
        var left = base, right = base
        let a = try left.send(carol, 2, .add(erin))
        let b = try right.send(bob, 2, .remove(carol))
        try left.ack(create, by: dave, 7)
        try right.ack(create, by: dave, 5)
        try right.ack(addDave, by: dave, 5)
        var merged = left
        merged.merge(right)
        #expect(merged.contains(a) && merged.contains(b))
        #expect(merged.knownSeq(of: create, by: dave) == 5)
        #expect(merged.knownSeq(of: addDave, by: dave) == 5)
        var other = right
        other.merge(left)
        #expect(merged == other)
        #expect(merged.checkedMembers() == [alice, bob, dave])
        #expect(merged.checkedView(dave, 5) == [alice, bob, carol, dave])
        let snapshot = base
        base.merge(MembershipState())
        #expect(base == snapshot)
        var empty = MembershipState()
        empty.merge(snapshot)
        #expect(empty == snapshot && empty.members() == snapshot.members())
    }

    @Test func invalidInputsAreRejected() throws {
        var h = MembershipState()
        #expect(throws: MembershipError.noCreate) { try h.send(alice, 1, .add(bob)) }
        #expect(throws: MembershipError.invalidCreate(OperationID(sender: alice, seq: 1))) {
            try h.send(alice, 1, .create(members: [bob, bob]))
        }
        #expect(throws: MembershipError.invalidCreate(OperationID(sender: alice, seq: 1))) {
            try h.send(alice, 1, .create(members: [alice]))
        }
        let create = try h.send(alice, 1, .create(members: [bob]))
        #expect(throws: MembershipError.duplicateOperation(create)) { try h.send(alice, 1, .add(carol)) }
        #expect(throws: MembershipError.secondCreate(OperationID(sender: bob, seq: 1))) {
            try h.send(bob, 1, .create(members: []))
        }
        let unknown = OperationID(sender: bob, seq: 9)
        #expect(throws: MembershipError.unknownOperation(unknown)) { try h.ack(unknown, by: bob, 10) }
        #expect(throws: MembershipError.unknownParticipant(dave)) { try h.ack(create, by: dave, 1) }
        #expect(throws: MembershipError.invalidSequenceNumber(0)) { try h.ack(create, by: bob, 0) }
        #expect(throws: MembershipError.invalidWelcome(create)) {
            try h.recordWelcome(of: bob, add: create, atSeq: 1)
        }
        let add = try h.send(alice, 2, .add(carol))
        #expect(throws: MembershipError.invalidWelcome(add)) { try h.recordWelcome(of: bob, add: add, atSeq: 1) }

        var otherGroup = MembershipState()
        try otherGroup.send(bob, 1, .create(members: [alice]))
        let before = h
        #expect(throws: MembershipError.conflictingOperation(OperationID(sender: bob, seq: 1))) {
            try h.checkedMerge(otherGroup)
        }
        h.merge(otherGroup)
        #expect(h == before)
        var equivocation = MembershipState()
        try equivocation.send(alice, 1, .create(members: [bob]))
        try equivocation.send(alice, 2, .add(dave))
        #expect(throws: MembershipError.conflictingOperation(add)) { try h.checkedMerge(equivocation) }
    }

    /// A group created with 1,023 other members: the create, every member's acknowledgment and a
    /// view per acknowledgment must all be cheap (this is the common path of a large group).
    @Test func largeCreateStaysFast() throws {
        let others = (2...1024).map(member)
        var h = MembershipState()
        let create = try h.send(member(1), 1, .create(members: others))
        for m in others {
            try h.ack(create, by: m, 1)
            #expect(h.members(asSeenBy: m, atSeq: 1).count == 1024)
        }
        try h.send(member(1), 2, .remove(member(2)))
        for m in others.dropFirst().prefix(200) {
            try h.ack(OperationID(sender: member(1), seq: 2), by: m, 2)
            #expect(h.members(asSeenBy: m, atSeq: 2).count == 1023)
            #expect(h.members(asSeenBy: m, atSeq: 1).count == 1024)  // slow path: a subset
        }
        #expect(h.members().count == 1023)
        let decoded = try MembershipState(wireBytes: h.wireBytes)
        #expect(decoded == h && decoded.members() == h.members())
        // 32 bytes per ID, then about 2 bytes per create entry and per acknowledgment.
        #expect(h.wireBytes.count < 1024 * 32 + 1024 * 5 + 200 * 4 + 64)
    }
}
