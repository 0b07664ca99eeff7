@_spi(Simulation) import DCGKAGroup
import CausalBroadcast
import DCGKACrypto
import DCGKAEncoding
import KeyAgreement
import Testing

/// Persisted group state (round trip, no deleted secret inside) and failed local operations.
@Suite struct StateTests {
    @Test("a group decoded mid-conversation encodes identically and keeps working", arguments: [UInt64(1), 2, 3])
    func roundTripMidConversation(seed: UInt64) throws {
        var net = TestNetwork(seed: seed, names: ["A", "B", "C", "D"])
        try net.create(by: "A", with: ["B", "C"])
        net.settle()
        try net.send(by: "A")
        try net.update(by: "C")
        try net.add(by: "B", "D")
        // Mid-conversation: some envelopes delivered, some buffered, some in flight.
        let early = try net.send(by: "C", "sent before the restart")
        net.deliver { to, _ in to == "A" }
        let outOfOrder = net.inFlight.filter { $0.to == "B" }.reversed()
        for (_, envelope) in outOfOrder { net.deliver(envelope, to: ["B"]) }

        for name in ["A", "B", "C"] {
            let group = net.group(name)
            let bytes = group.wireBytes
            let decoded = try Group(wireBytes: bytes)
            #expect(decoded.wireBytes == bytes, "\(name): decode then encode gives the same bytes")
            #expect(decoded.identity == group.identity)
            #expect(decoded.keyAgreement == group.keyAgreement)
            #expect(decoded.broadcast == group.broadcast)
            #expect(decoded.messaging == group.messaging)
            #expect(decoded.bundles == group.bundles)
            #expect(decoded.members == group.members)
            #expect(decoded.missing == group.missing)
        }
        try net.restart("A")
        try net.restart("B")
        net.settle()
        net.expectConverged(["A", "B", "C", "D"])
        #expect(net.readers(of: early) == ["A", "B"])
        try net.expectEveryoneReadsEveryone(["A", "B", "C", "D"])
        try net.update(by: "A")
        try net.remove(by: "B", "C")
        net.settle()
        try net.restart("D")
        try net.expectEveryoneReadsEveryone(["A", "B", "D"])
        net.expectConverged(["A", "B", "D"])
    }

    @Test("truncated or corrupted state is rejected")
    func corruptedState() throws {
        var net = TestNetwork(seed: 9, names: ["A", "B"])
        try net.create(by: "A", with: ["B"])
        net.settle()
        let bytes = net.group("A").wireBytes
        #expect(throws: (any Error).self) { try Group(wireBytes: Array(bytes.dropLast())) }
        #expect(throws: (any Error).self) { try Group(wireBytes: bytes + [0]) }
        var wrongVersion = bytes
        wrongVersion[0] = 99
        #expect(throws: (any Error).self) { try Group(wireBytes: wrongVersion) }
    }

    @Test("the encoded state holds no consumed member secret and no replaced ratchet state", arguments: [UInt64(1), 2, 3, 4])
    func deletedSecretsAreGone(seed: UInt64) throws {
        var net = TestNetwork(seed: seed, names: ["A", "B", "C"])
        try net.create(by: "A", with: ["B", "C"])
        net.settle()
        let update = try net.update(by: "A")
        // My own seed is consumed by my own operation.
        #expect(net.group("A").keyAgreement.nextSeed == nil)
        // C processes the update first: it holds B's member secret until B's ack arrives.
        net.deliver(update, to: ["C"])
        let key = MemberSecretKey(operation: update.operationID, member: net.id("B"))
        let secretOfB = try #require(net.group("C").keyAgreement.memberSecrets[key])
        #expect(net.group("C").keyAgreement.memberSecrets[MemberSecretKey(operation: update.operationID, member: net.id("C"))] == nil,
                "C's own member secret was consumed at once")
        #expect(net.group("C").wireBytes.containsBytes(secretOfB.bytes), "sanity: a live secret is found in the encoding")
        let ratchetOfB = try #require(net.group("C").keyAgreement.ratchets[net.id("B")])
        let ratchetOfA = try #require(net.group("C").keyAgreement.ratchets[net.id("A")])

        net.deliver(update, to: ["B"])
        let ack = try #require(net.acknowledgment(by: "B", of: update))
        net.deliver(ack, to: ["C"])
        let after = net.group("C")
        #expect(after.keyAgreement.memberSecrets[key] == nil, "B's member secret is consumed by B's ack")
        #expect(after.keyAgreement.ratchets[net.id("B")] != ratchetOfB)
        let encoding = after.wireBytes
        #expect(!encoding.containsBytes(secretOfB.bytes), "consumed member secret survives in the encoded state")
        #expect(!encoding.containsBytes(ratchetOfB.bytes), "replaced ratchet state of B survives in the encoded state")
        #expect(after.keyAgreement.ratchets[net.id("A")] == ratchetOfA)

        // The same holds for A's own ratchet after A processes the acks.
        let ratchetOfABefore = try #require(net.group("B").keyAgreement.ratchets[net.id("A")])
        net.settle()
        try net.update(by: "A")
        net.settle()
        for name in ["A", "B", "C"] {
            let encoding = net.group(name).wireBytes
            #expect(!encoding.containsBytes(ratchetOfABefore.bytes), "\(name) keeps an old ratchet state of A")
            #expect(!encoding.containsBytes(secretOfB.bytes))
            #expect(net.group(name).keyAgreement.memberSecrets.isEmpty, "\(name) keeps member secrets after every ack arrived")
        }
        net.expectConverged(["A", "B", "C"])
    }

    @Test("local operations that throw leave the group unchanged")
    func failedOperationsChangeNothing() throws {
        var net = TestNetwork(seed: 5, names: ["A", "B", "C", "D", "E"])
        try net.create(by: "A", with: ["B", "C"])
        net.settle()
        try net.send(by: "B")
        net.settle()
        let prekeys = net.people["A"]!.prekeys
        var rng = SeededRandom(seed: 77)
        var group = net.group("A")
        let before = group

        // Remove a non-member.
        #expect(throws: GroupError.self) { try group.remove(net.id("D"), prekeys: prekeys, using: &rng) }
        #expect(group == before)
        // Remove myself through remove(_:) is not an operation of the protocol.
        #expect(throws: GroupError.self) { try group.remove(net.id("A"), prekeys: prekeys, using: &rng) }
        #expect(group == before)
        // Add a current member.
        #expect(throws: GroupError.self) {
            try group.add(net.people["B"]!.bundle, prekeys: prekeys, now: TestNetwork.now, using: &rng)
        }
        #expect(group == before)
        // Add with an expired bundle.
        #expect(throws: GroupError.self) {
            try group.add(net.people["D"]!.bundle, prekeys: prekeys, now: TestNetwork.now + 86_400 * 365, using: &rng)
        }
        #expect(group == before)
        // A bundle whose signature does not verify (the prekey of another identity's bundle).
        let forged = KeyBundle(
            suite: .suite1, identity: net.id("E"), prekey: net.people["D"]!.bundle.prekey,
            notAfter: net.people["D"]!.bundle.notAfter, signature: net.people["D"]!.bundle.signature)
        #expect(throws: GroupError.self) { try group.add(forged, prekeys: prekeys, now: TestNetwork.now, using: &rng) }
        #expect(group == before)
        #expect(group.wireBytes == before.wireBytes)

        // A removed member can no longer operate or send.
        try net.remove(by: "A", "C")
        net.settle()
        var removed = net.group("C")
        let removedBefore = removed
        #expect(removed.isMember == false)
        #expect(throws: GroupError.notAMember) { try removed.update(prekeys: net.people["C"]!.prekeys, using: &rng) }
        #expect(throws: GroupError.notAMember) { try removed.send(text: "hello?", now: TestNetwork.now) }
        #expect(throws: GroupError.notAMember) { try removed.remove(net.id("A"), prekeys: net.people["C"]!.prekeys, using: &rng) }
        #expect(throws: GroupError.notAMember) {
            try removed.add(net.people["D"]!.bundle, prekeys: net.people["C"]!.prekeys, now: TestNetwork.now, using: &rng)
        }
        #expect(removed == removedBefore)

        // The group goes on after the failures.
        net.expectConverged(["A", "B"])
        try net.expectEveryoneReadsEveryone(["A", "B"])
    }

    @Test("join refuses an invitation that is not for me")
    func joinRefusesOthersInvitation() throws {
        var net = TestNetwork(seed: 6, names: ["A", "B", "C", "D"])
        try net.create(by: "A", with: ["B"])
        net.settle()
        let add = try net.add(by: "A", "C")
        var rng = SeededRandom(seed: 1)
        let d = net.people["D"]!
        #expect(throws: GroupError.self) {
            try Group.join(identity: d.identity, invitation: add, prekeys: d.prekeys, using: &rng)
        }
        let message = try net.send(by: "A")
        let envelope = try #require(net.relayLog.first { $0.envelope.hash == message.hash }?.envelope)
        #expect(throws: GroupError.self) {
            try Group.join(identity: net.people["C"]!.identity, invitation: envelope, prekeys: net.people["C"]!.prekeys, using: &rng)
        }
    }
}
