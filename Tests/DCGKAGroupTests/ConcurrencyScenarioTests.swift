@_spi(Simulation) import DCGKAGroup
import CausalBroadcast
import DCGKACrypto
import DCGKAEncoding
import Testing

/// The concurrency cases of PROTOCOL.md §5.5, each over several delivery orders.
@Suite struct ConcurrencyScenarioTests {
    static let seeds: [UInt64] = [1, 2, 3, 4, 5, 6]

    /// A network where `creator` created a group with `others` and everything was delivered.
    static func network(seed: UInt64, names: [String], creator: String = "A", members: [String]) throws -> TestNetwork {
        var net = TestNetwork(seed: seed, names: names)
        try net.create(by: creator, with: members.filter { $0 != creator })
        net.settle()
        net.expectConverged(members)
        return net
    }

    // MARK: 1. Update concurrent with add

    @Test("§5.5.1 update concurrent with add", arguments: seeds)
    func updateConcurrentWithAdd(seed: UInt64) throws {
        var net = try Self.network(seed: seed, names: ["A", "B", "C", "D"], members: ["A", "B", "C"])
        let update = try net.update(by: "A")
        let add = try net.add(by: "C", "D")
        let fromA = try net.send(by: "A", "A after its update, before seeing the add")
        let fromC = try net.send(by: "C", "C after adding D, before seeing the update")
        if seed % 2 == 0 {
            // B processes the add before the update, so B must forward its member secret of the
            // update to D with its ack.
            net.deliver(add, to: ["B"])
            net.deliver(update, to: ["B"])
        }
        net.settle()
        net.expectConverged(["A", "B", "C", "D"])
        if seed % 2 == 0 {
            // D derived B's epoch of that ack from the forwarded member secret.
            let ack = net.acknowledgment(by: "B", of: update)
            #expect(ack != nil)
            if let ack {
                #expect(net.people["D"]!.secrets[EpochKey(member: net.id("B"), epoch: ack.seq)] != nil)
            }
        }
        #expect(net.readers(of: fromA) == ["B", "C"])
        #expect(net.readers(of: fromC) == ["A", "B", "D"])
        // D, unknown to A's update, got no secret from it.
        #expect(net.people["D"]!.secrets[EpochKey(member: net.id("A"), epoch: update.seq)] == nil)
        try net.expectEveryoneReadsEveryone(["A", "B", "C", "D"])
        net.expectConverged(["A", "B", "C", "D"])
    }

    // MARK: 2. Concurrent adds

    @Test("§5.5.2 concurrent adds", arguments: seeds)
    func concurrentAdds(seed: UInt64) throws {
        var net = try Self.network(seed: seed, names: ["A", "B", "C", "D"], members: ["A", "B"])
        try net.add(by: "A", "C")
        try net.add(by: "B", "D")
        let fromA = try net.send(by: "A", "A after adding C")
        let fromB = try net.send(by: "B", "B after adding D")
        net.settle()
        net.expectConverged(["A", "B", "C", "D"])
        #expect(net.readers(of: fromA) == ["B", "C"])
        #expect(net.readers(of: fromB) == ["A", "D"])
        try net.expectEveryoneReadsEveryone(["A", "B", "C", "D"])
        try net.update(by: "C")
        net.settle()
        try net.expectEveryoneReadsEveryone(["A", "B", "C", "D"])
        net.expectConverged(["A", "B", "C", "D"])
    }

    // MARK: 3. Mutual removal

    @Test("§5.5.3 mutual removal", arguments: seeds)
    func mutualRemoval(seed: UInt64) throws {
        var net = try Self.network(seed: seed, names: ["A", "B", "C", "D"], members: ["A", "B", "C", "D"])
        try net.remove(by: "A", "B")
        try net.remove(by: "B", "A")
        let fromA = try net.send(by: "A", "A after removing B")
        let fromB = try net.send(by: "B", "B after removing A")
        net.settle()
        net.expectConverged(["C", "D"])
        #expect(net.group("A").isMember == false)
        #expect(net.group("B").isMember == false)
        #expect(net.group("A").members == net.ids(["C", "D"]))
        #expect(net.group("B").members == net.ids(["C", "D"]))
        // Sent while each still saw itself as a member: the sender's view reads it.
        #expect(net.readers(of: fromA) == ["C", "D"])
        #expect(net.readers(of: fromB) == ["C", "D"])
        try net.expectEveryoneReadsEveryone(["C", "D"])
        try net.update(by: "D")
        net.settle()
        let after = try net.send(by: "C", "after both are gone")
        net.settle()
        #expect(net.readers(of: after) == ["D"])
        net.expectConverged(["C", "D"])
    }

    // MARK: 4. Remove concurrent with an add by the removed member

    @Test("§5.5.4 A removes B while B adds C", arguments: seeds)
    func removeConcurrentWithAddByRemoved(seed: UInt64) throws {
        var net = try Self.network(seed: seed, names: ["A", "B", "C", "D"], members: ["A", "B", "D"])
        let remove = try net.remove(by: "A", "B")
        let add = try net.add(by: "B", "C")
        let fromB = try net.send(by: "B", "B after adding C, before seeing its removal")
        let fromA = try net.send(by: "A", "A after removing B")
        Self.deliverToD(remove, add, removalFirst: seed % 2 == 0, in: &net)
        net.settle()
        net.expectConverged(["A", "D"])
        #expect(net.group("C").isMember == false)
        #expect(!net.group("A").members.contains(net.id("C")))
        #expect(net.readers(of: fromB) == ["A", "C", "D"])
        #expect(net.readers(of: fromA) == ["D"])
        try net.expectEveryoneReadsEveryone(["A", "D"])
    }

    /// D sees the removal and the removed member's add in the order the seed chooses.
    static func deliverToD(_ remove: Envelope, _ add: Envelope, removalFirst: Bool, in net: inout TestNetwork) {
        for envelope in removalFirst ? [remove, add] : [add, remove] { net.deliver(envelope, to: ["D"]) }
    }

    /// §5.5.4 "C gets no secret produced after the removal takes effect", against an outsider C
    /// that inspects its whole state (not only the events it reports). Even seeds make D process
    /// the removal before B's add; A always does.
    @Test("§5.5.4 C obtains no secret produced after B's removal took effect", arguments: seeds)
    func removedMembersInviteeLearnsNothingLater(seed: UInt64) throws {
        var net = try Self.network(seed: seed, names: ["A", "B", "C", "D"], members: ["A", "B", "D"])
        let remove = try net.remove(by: "A", "B")
        let add = try net.add(by: "B", "C")
        Self.deliverToD(remove, add, removalFirst: seed % 2 == 0, in: &net)
        net.settle()
        try net.expectEveryoneReadsEveryone(["A", "D"])
        net.expectConverged(["A", "D"])
        Self.expectNoSecretAfterRemoval(net, outsider: "C", removal: remove, members: ["A", "D"])
    }

    /// §5.5.4: "C gets no secret produced after the removal takes effect". For every member X, the
    /// secrets of X's epochs that start at or after X's removal (A) or its ack of it (D) must
    /// neither be derived by C nor be computable from what C's state holds for X (its ratchet
    /// state, from which the next "add" step is one HKDF away, or any member secret).
    static func expectNoSecretAfterRemoval(
        _ net: TestNetwork, outsider: String, removal: Envelope, members: [String],
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let state = net.group(outsider).keyAgreement
        let suite = CipherSuiteID.suite1.suite
        var known = Set(net.people[outsider]!.secrets.values).union(net.people[outsider]!.secretsWhileOut.values)
        known.formUnion(state.memberSecrets.values)
        known.formUnion(state.ratchets.values)
        for ratchet in state.ratchets.values {
            for input in ["add", "welcome"] {
                let out = suite.kdf(ikm: Array(input.utf8), salt: ratchet.bytes, info: Array("DCGKA ratchet".utf8), length: 64)
                known.insert(Bytes32(out[0..<32])!)
                known.insert(Bytes32(out[32..<64])!)
            }
        }
        for member in members {
            let effective = member == net.name(of: removal.sender)
                ? removal.seq : (net.acknowledgment(by: member, of: removal)?.seq ?? 0)
            #expect(effective > 0, "\(member) acknowledged the removal", sourceLocation: sourceLocation)
            for (key, secret) in net.people[member]!.secrets where key.member == net.id(member) && key.epoch >= effective {
                #expect(
                    !known.contains(secret),
                    "\(outsider) can obtain \(member)'s update secret of epoch \(key.epoch), produced after the removal (effective at \(effective))",
                    sourceLocation: sourceLocation)
            }
        }
    }

    // MARK: 5. Partition

    @Test("§5.5.5 partition: each side adds, removes and updates, then heals", arguments: seeds)
    func partitionHeals(seed: UInt64) throws {
        var net = try Self.network(
            seed: seed, names: ["A", "B", "C", "D", "E", "F", "G"], members: ["A", "B", "C", "D", "E"])
        net.partition([["A", "B", "C", "F"], ["D", "E", "G"]])
        try net.add(by: "A", "F")
        try net.update(by: "B")
        try net.remove(by: "C", "E")
        try net.update(by: "D")
        try net.add(by: "D", "G")
        try net.update(by: "E")
        net.settle()
        // Each side converged on its own.
        #expect(net.group("A").members == net.ids(["A", "B", "C", "D", "F"]))
        #expect(net.group("F").members == net.ids(["A", "B", "C", "D", "F"]))
        #expect(net.group("D").members == net.ids(["A", "B", "C", "D", "E", "G"]))
        #expect(net.group("G").members == net.ids(["A", "B", "C", "D", "E", "G"]))
        let side1 = try net.send(by: "A", "inside side 1")
        let side2 = try net.send(by: "D", "inside side 2")
        net.settle()
        #expect(net.readers(of: side1) == ["B", "C", "F"])
        #expect(net.readers(of: side2) == ["E", "G"])
        net.heal()
        net.settle()
        net.expectConverged(["A", "B", "C", "D", "F", "G"])
        #expect(net.group("E").isMember == false)
        // After healing, the readers are exactly the senders' views at sending time.
        #expect(net.readers(of: side1) == ["B", "C", "D", "F"])
        #expect(net.readers(of: side2) == ["A", "B", "C", "E", "G"])
        try net.expectEveryoneReadsEveryone(["A", "B", "C", "D", "F", "G"])
        try net.update(by: "G")
        try net.update(by: "F")
        net.settle()
        try net.expectEveryoneReadsEveryone(["A", "B", "C", "D", "F", "G"])
        net.expectConverged(["A", "B", "C", "D", "F", "G"])
    }

    // MARK: 6. Re-add

    @Test("§5.5.6 re-add: B reads exactly what is sent after its re-add", arguments: seeds)
    func readd(seed: UInt64) throws {
        var net = try Self.network(seed: seed, names: ["A", "B", "C"], members: ["A", "B", "C"])
        let before = try net.send(by: "C", "before the removal")
        net.settle()
        #expect(net.readers(of: before) == ["A", "B"])
        try net.remove(by: "A", "B")
        net.settle()
        net.expectConverged(["A", "C"])
        #expect(net.group("B").isMember == false)
        let whileOut = [try net.send(by: "A", "while B is out"), try net.send(by: "C", "still out")]
        net.settle()
        for message in whileOut { #expect(net.readers(of: message).contains("B") == false) }
        try net.update(by: "C")
        net.settle()
        try net.add(by: "C", "B")
        let afterAdd = try net.send(by: "C", "right after the re-add")
        let fromAConcurrent = try net.send(by: "A", "A, not yet aware of the re-add")
        net.settle()
        net.expectConverged(["A", "B", "C"])
        #expect(net.readers(of: afterAdd) == ["A", "B"])
        #expect(net.readers(of: fromAConcurrent) == ["C"])
        for message in whileOut { #expect(!net.readers(of: message).contains("B")) }
        try net.expectEveryoneReadsEveryone(["A", "B", "C"])
        try net.update(by: "B")
        net.settle()
        try net.expectEveryoneReadsEveryone(["A", "B", "C"])
        net.expectConverged(["A", "B", "C"])
    }

    @Test("§5.5.6 B added concurrently by two members", arguments: seeds)
    func concurrentDoubleAdd(seed: UInt64) throws {
        var net = try Self.network(seed: seed, names: ["A", "B", "C", "D"], members: ["A", "C", "D"])
        try net.add(by: "A", "B")
        try net.add(by: "C", "B")
        let fromA = try net.send(by: "A", "A after adding B")
        let fromC = try net.send(by: "C", "C after adding B")
        net.settle()
        net.expectConverged(["A", "B", "C", "D"])
        #expect(net.readers(of: fromA) == ["B", "C", "D"])
        #expect(net.readers(of: fromC) == ["A", "B", "D"])
        try net.expectEveryoneReadsEveryone(["A", "B", "C", "D"])
        try net.update(by: "B")
        try net.update(by: "D")
        net.settle()
        try net.expectEveryoneReadsEveryone(["A", "B", "C", "D"])
        net.expectConverged(["A", "B", "C", "D"])
    }

    @Test("§5.5.6 B removed, then re-added concurrently by two members", arguments: seeds)
    func readdByTwo(seed: UInt64) throws {
        var net = try Self.network(seed: seed, names: ["A", "B", "C", "D"], members: ["A", "B", "C", "D"])
        try net.remove(by: "D", "B")
        net.settle()
        let whileOut = try net.send(by: "A", "while B is out")
        net.settle()
        try net.add(by: "A", "B")
        try net.add(by: "C", "B")
        net.settle()
        net.expectConverged(["A", "B", "C", "D"])
        #expect(!net.readers(of: whileOut).contains("B"))
        try net.expectEveryoneReadsEveryone(["A", "B", "C", "D"])
        net.expectConverged(["A", "B", "C", "D"])
    }

    // MARK: 7. A just-added member receives control messages concurrent with its add

    @Test("§5.5.7 a new member acks concurrent control messages without secrets", arguments: seeds)
    func newMemberFollowsConcurrentControl(seed: UInt64) throws {
        var net = try Self.network(seed: seed, names: ["A", "B", "C", "D", "E"], members: ["A", "B", "C", "E"])
        let add = try net.add(by: "A", "D")
        let updateB = try net.update(by: "B")
        let updateC = try net.update(by: "C")
        let removeE = try net.remove(by: "C", "E")
        // D joins first, then gets the concurrent control messages.
        net.deliver(add, to: ["D"])
        #expect(net.group("D").isMember)
        // They were sent before D had any state: hand them to D directly, as a sync would.
        net.deliver(updateB, to: "D")
        net.deliver(updateC, to: "D")
        net.deliver(removeE, to: "D")
        for control in [updateB, updateC, removeE] {
            let ack = net.acknowledgment(by: "D", of: control)
            #expect(ack != nil, "D acknowledged \(net.name(of: control.sender))#\(control.seq)")
            #expect(ack?.kind == .ack)
            // Without a secret: no direct message, no new epoch for D, none for the sender's update.
            if let ack {
                #expect(net.people["D"]!.secrets[EpochKey(member: net.id("D"), epoch: ack.seq)] == nil)
            }
            #expect(net.people["D"]!.secrets[EpochKey(member: control.sender, epoch: control.seq)] == nil)
        }
        net.settle()
        net.expectConverged(["A", "B", "C", "D"])
        try net.expectEveryoneReadsEveryone(["A", "B", "C", "D"])
        for member in ["A", "B", "C", "D"] {
            try net.update(by: member)
            net.settle()
            try net.expectEveryoneReadsEveryone(["A", "B", "C", "D"])
        }
        net.expectConverged(["A", "B", "C", "D"])
    }
}
