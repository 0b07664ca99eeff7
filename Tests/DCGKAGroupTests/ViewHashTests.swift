@_spi(Simulation) import DCGKAGroup
import CausalBroadcast
import DCGKACrypto
import DCGKAEncoding
import KeyAgreement
import Membership
import Testing

/// Issue 8, item 3 (§5.6): every control envelope carries the hash of its sender's view, every
/// receiver checks it, and a new member catches an adder whose welcome's history differs from
/// what the members hold at the first control envelope of another member that the difference
/// touches (PROTOCOL-NOTES.md, "View hashes").
@Suite struct ViewHashTests {
    enum Lie { case none, welcomeOnly, welcomeAndViewHash }

    /// A makes its add of D (any refresh before it is broadcast); returns the add, unsent.
    static func addOfD(_ net: inout TestNetwork) throws -> Envelope {
        var a = net.group("A")
        let envelopes = try a.add(net.people["D"]!.bundle, prekeys: net.people["A"]!.prekeys, now: TestNetwork.now, using: &net.rng)
        net.people["A"]!.group = a
        for refresh in envelopes.dropLast() { net.broadcast(refresh, from: "A") }
        return try #require(envelopes.last)
    }

    /// `honest` with its welcome's history replaced by `history` (and, if given, its view hash),
    /// signed again by its sender's identity at the same position.
    static func forged(_ honest: Envelope, history: MembershipState, viewHash: Bytes32? = nil, signer: IdentityKey) throws -> Envelope {
        var body = try ControlBody(kind: .add, payload: try #require(honest.payload))
        guard case .add(let bundle, let encoded) = body.fields else { throw WireError.invalidValue(field: "not an add") }
        let welcome = try encoded.decode()
        body.fields = .add(bundle, EncodedWelcome(Welcome(history: history, ratchetCiphertext: welcome.ratchetCiphertext, context: welcome.context)))
        if let viewHash { body.viewHash = viewHash }
        return Envelope.sign(
            identity: signer, suite: honest.suite, groupID: honest.groupID, seq: honest.seq,
            prev: honest.prev, kind: .add, acked: nil, payload: body.payload)
    }

    /// A, B and C; B removes C; then A adds D. When A lies, its welcome carries A's history from
    /// before the remove (with the add), so D would believe C is still a member; the add's own
    /// view hash is A's true view, or (`welcomeAndViewHash`) the lying one.
    static func addD(seed: UInt64, lie: Lie) throws -> TestNetwork {
        var net = try ConcurrencyScenarioTests.network(seed: seed, names: ["A", "B", "C", "D"], members: ["A", "B", "C"])
        let before = net.group("A").keyAgreement.history
        _ = try net.remove(by: "B", "C")
        net.settle()
        #expect(net.group("A").members == net.ids(["A", "B"]))
        let honest = try Self.addOfD(&net)
        var add = honest
        if lie != .none {
            var history = before
            try history.apply(MembershipOperation(id: honest.operationID, kind: .add(net.id("D"))))
            let lyingHash = lie == .welcomeAndViewHash ? KeyDerivations.viewHash(of: history.members(), suite: honest.suite.suite) : nil
            add = try Self.forged(honest, history: history, viewHash: lyingHash, signer: net.people["A"]!.identity)
        }
        net.broadcast(add, from: "A", alsoTo: ["D"])
        // D joins first, then B processes the add and acknowledges it; A is left out (it holds
        // the honest add at that position, so a lie would show it as an equivocator).
        net.deliver(where: { to, _ in to == "D" })
        if lie == .welcomeOnly { return net }
        #expect(net.group("D").unconfirmedWelcome == net.id("A"))
        net.deliver(where: { to, _ in to == "B" })
        net.deliver(where: { to, _ in to == "D" })
        return net
    }

    @Test("an add whose view hash contradicts its own welcome is refused at the join", arguments: [UInt64(1), 2, 3])
    func contradictoryAddIsRefused(seed: UInt64) throws {
        let net = try Self.addD(seed: seed, lie: .welcomeOnly)
        #expect(net.people["D"]!.group == nil)
        #expect(net.problems.contains { $0.contains("join failed") && $0.contains("welcomeRefuted") }, "\(net.problems)")
    }

    @Test("an adder whose welcome hides a remove is caught by the new member at the next member's acknowledgment; the others catch the adder", arguments: [UInt64(1), 2, 3])
    func lyingAdderIsCaught(seed: UInt64) throws {
        var net = try Self.addD(seed: seed, lie: .welcomeAndViewHash)
        #expect(net.people["B"]!.events.contains { if case .viewMismatch(sender: net.id("A"), _) = $0 { true } else { false } },
                "B computes A's true view, not the one A signed")
        let d = net.group("D")
        let events = net.people["D"]!.events
        #expect(events.contains(.welcomeRefuted(adder: net.id("A"))), "\(events)")
        #expect(events.contains { if case .viewMismatch(sender: net.id("B"), _) = $0 { true } else { false } })
        #expect(d.refutedWelcome == net.id("A"))
        #expect(!d.isMember)
        #expect(throws: GroupError.welcomeRefuted(adder: net.id("A"))) { _ = try net.send(by: "D", "with a history nobody else holds") }
        // A refuted group takes nothing more, and its state says so after a restart.
        let restarted = try Group(wireBytes: net.group("D").wireBytes)
        #expect(restarted.refutedWelcome == net.id("A"))
        var copy = restarted
        let anything = try #require(net.envelopesByID.values.first { $0.sender == net.id("B") })
        var rng = SeededRandom(seed: seed)
        #expect(copy.receive(anything, prekeys: net.people["D"]!.prekeys, using: &rng).events.isEmpty)
        #expect(copy == restarted)
    }

    @Test("the same add with an honest welcome is confirmed by the next member's acknowledgment", arguments: [UInt64(1), 2, 3])
    func honestWelcomeIsConfirmed(seed: UInt64) throws {
        var net = try Self.addD(seed: seed, lie: .none)
        #expect(net.group("D").unconfirmedWelcome == nil, "B's acknowledgment counts D and matches")
        #expect(net.group("D").refutedWelcome == nil)
        net.settle()
        net.expectConverged(["A", "B", "D"])
        #expect(!net.people.values.flatMap(\.events).contains { if case .viewMismatch = $0 { true } else { false } })
        #expect(net.problems.isEmpty, "\(net.problems)")
        try net.expectEveryoneReadsEveryone(["A", "B", "D"])
    }

    @Test("a welcome joiner checks the group's create when it arrives: an honest one passes")
    func honestCreateIsChecked() throws {
        var net = try Self.addD(seed: 5, lie: .none)
        let creator = net.id("A")
        #expect(net.group("D").uncheckedCreate?.create == OperationID(sender: creator, seq: 1))
        #expect(net.group("D").missing.contains(.range(sender: creator, from: 1, through: 1)))
        let create = try #require(net.envelopesByID[OperationID(sender: creator, seq: 1)])
        net.inFlight.append((to: "D", envelope: create))
        net.deliver(create, to: ["D"])
        #expect(net.group("D").uncheckedCreate == nil)
        #expect(net.group("D").refutedWelcome == nil)
        #expect(!net.group("D").missing.contains(.range(sender: creator, from: 1, through: 1)))
    }

    /// A's welcome names B as the creator (listing A and C): every view is the same as the true
    /// history's, so no view hash differs; the envelope at B's seq 1 (B's acknowledgment of the
    /// real create) refutes it.
    @Test("a welcome that names another creator is refuted when the create's position arrives")
    func inventedCreatorIsRefuted() throws {
        var net = try ConcurrencyScenarioTests.network(seed: 6, names: ["A", "B", "C", "D"], members: ["A", "B", "C"])
        let honest = try Self.addOfD(&net)
        let invented = OperationID(sender: net.id("B"), seq: 1)
        var history = MembershipState()
        try history.apply(MembershipOperation(id: invented, kind: .create(members: [net.id("A"), net.id("C")])))
        _ = try history.recordAcknowledgment(of: invented, by: net.id("A"), atSeq: 1)
        _ = try history.recordAcknowledgment(of: invented, by: net.id("C"), atSeq: 1)
        try history.apply(MembershipOperation(id: honest.operationID, kind: .add(net.id("D"))))
        #expect(history.members() == net.group("A").members, "the invented history gives the same views")
        let add = try Self.forged(honest, history: history, signer: net.people["A"]!.identity)
        net.broadcast(add, from: "A", alsoTo: ["D"])
        net.deliver(where: { to, _ in to == "D" })
        #expect(net.group("D").uncheckedCreate?.create == invented)
        #expect(net.group("D").refutedWelcome == nil, "no view differs")
        let atInvented = try #require(net.envelopesByID[invented])
        #expect(atInvented.kind != .create)
        net.inFlight.append((to: "D", envelope: atInvented))
        net.deliver(atInvented, to: ["D"])
        #expect(net.people["D"]!.events.contains(.welcomeRefuted(adder: net.id("A"))), "\(net.people["D"]!.events)")
        #expect(net.group("D").refutedWelcome == net.id("A"))
    }

    @Test("a member whose envelope carries another view hash than its view is reported by every receiver")
    func lyingSenderIsReported() throws {
        var net = try ConcurrencyScenarioTests.network(seed: 4, names: ["A", "B", "C"], members: ["A", "B", "C"])
        var b = net.group("B")
        let honest = try b.update(prekeys: net.people["B"]!.prekeys, using: &net.rng)
        var body = try ControlBody(kind: .update, payload: try #require(honest.payload))
        #expect(body.viewHash == KeyDerivations.viewHash(of: net.ids(["A", "B", "C"]), suite: honest.suite.suite))
        body.viewHash = KeyDerivations.viewHash(of: net.ids(["A", "B"]), suite: honest.suite.suite)
        let forged = Envelope.sign(
            identity: net.people["B"]!.identity, suite: honest.suite, groupID: honest.groupID, seq: honest.seq,
            prev: honest.prev, kind: .update, acked: nil, payload: body.payload)
        net.broadcast(forged, from: "B")
        net.deliver(where: { to, _ in to != "B" })
        for name in ["A", "C"] {
            #expect(net.people[name]!.events.contains(.viewMismatch(sender: net.id("B"), seq: honest.seq)), "\(name)")
            #expect(net.group(name).refutedWelcome == nil, "members of the create have no welcome to refute")
            #expect(net.group(name).isMember)
        }
    }
}
