@_spi(Simulation) import DCGKAGroup
import CausalBroadcast
import DCGKACrypto
import DCGKAEncoding
import KeyAgreement
import Testing

extension TestNetwork {
    /// `name` signs two different control envelopes at its next seq, from two copies of its
    /// state (what a stolen key or a cloned device makes), shows the first to `left` and the
    /// second to `right`, and goes on with the first. Both stay in the relay log, so sync hands
    /// each side the other's later.
    mutating func fork(
        by name: String, left: [String], right: [String],
        _ operation: (inout Group, inout TestNetwork) throws -> Envelope
    ) throws -> (Envelope, Envelope) {
        equivocators.insert(name)
        var first = group(name), second = group(name)
        let a = try operation(&first, &self)
        let b = try operation(&second, &self)
        #expect(a.seq == b.seq && a.hash != b.hash)
        people[name]!.group = first
        broadcast(a, from: name)
        broadcast(b, from: name)
        deliver(a, to: left)
        deliver(b, to: right)
        return (a, b)
    }

    /// The equivocation rule's duty (PROTOCOL-NOTES.md, "Equivocation"): the one member that
    /// removes the equivocator at once does so. Returns who it was.
    mutating func removeEquivocatorAtOnce(_ equivocator: String) throws -> String? {
        for name in names where people[name]!.group?.isMember == true && !equivocators.contains(name) {
            let group = group(name)
            guard group.equivocatorsToRemove.contains(id(equivocator)), group.removesAtOnce(id(equivocator)) else { continue }
            _ = try remove(by: name, equivocator)
            return name
        }
        return nil
    }

    /// Every member that lost a ratchet asks for it again (§5.7), until nobody needs to.
    mutating func resyncUntilRepaired(rounds: Int = 4) throws {
        for _ in 0..<rounds {
            let needing = names.filter { people[$0]!.group?.needsResync == true }
            if needing.isEmpty { return }
            for name in needing {
                var group = group(name)
                let envelope = try group.requestResync(using: &rng)
                people[name]!.group = group
                broadcast(envelope, from: name)
            }
            settle()
        }
    }
}

/// §6.2's equivocation rule (issue 8, item 9; PROTOCOL-NOTES.md, "Equivocation").
@Suite struct EquivocationTests {
    static let seeds: [UInt64] = [1, 2, 3, 4]

    /// E shows one update to A and B and another, at the same seq, to C and D. Each side
    /// acknowledges its own; every member then learns of the fork (the other side arrives by
    /// sync), keeps the pair as evidence, and stops delivering E from the forked seq. Before the
    /// rule, the acknowledgments of the other side waited for ever at each member.
    @Test("a forked update: everyone holds the evidence, one member removes E, chains flow, resync repairs the ratchets", arguments: seeds)
    func forkedUpdate(seed: UInt64) throws {
        let honest = ["A", "B", "C", "D"]
        var net = try ConcurrencyScenarioTests.network(seed: seed, names: honest + ["E"], members: honest + ["E"])
        let prekeys = net.people["E"]!.prekeys
        let (u, u2) = try net.fork(by: "E", left: ["A", "B"], right: ["C", "D"]) { group, net in
            try group.update(prekeys: prekeys, using: &net.rng)
        }
        net.settle()
        let e = net.id("E")
        for name in honest {
            let group = net.group(name)
            #expect(group.forkEvidence[e] != nil, "\(name) holds the fork pair")
            #expect(group.forkEvidence[e]?.cutSeq == u.seq)
            #expect(Set([group.forkEvidence[e]?.first.hash, group.forkEvidence[e]?.second.hash]) == [u.hash, u2.hash])
            #expect(group.broadcast.bufferedCount == 0 && group.missing.isEmpty, "\(name): no honest chain waits")
            #expect(net.people[name]!.events.contains(.equivocation(e)), "\(name) was told")
        }
        // The evidence is kept across a restart.
        try net.restart("C")
        #expect(net.group("C").forkEvidence[e] != nil)

        // Exactly one member removes E at once, with the evidence in its remove.
        let removers = honest.filter { net.group($0).removesAtOnce(e) }
        #expect(removers.count == 1)
        let remover = try #require(try net.removeEquivocatorAtOnce("E"))
        #expect(removers == [remover])
        let removal = try #require(net.relayLog.last?.envelope)
        let body = try ControlBody(kind: .remove, payload: try #require(removal.payload))
        #expect(body.forkEvidence != nil)
        net.settle()
        for name in honest {
            #expect(!net.group(name).members.contains(e), "\(name) removed E")
            #expect(net.group(name).keyAgreement.history.cutOffs.map(\.target) == [e])
            #expect(net.group(name).equivocatorsToRemove.isEmpty)
        }
        try net.resyncUntilRepaired()
        net.expectConverged(honest)
        try net.expectEveryoneReadsEveryone(honest)
    }

    /// E adds X for A and B and Y for C and D at the same seq. The remove that carries the
    /// evidence cuts both adds off at every member alike: neither X nor Y is a member anywhere,
    /// however far each got, and the members' views agree.
    @Test("a forked add: the remove with the evidence cuts off both sides' adds everywhere", arguments: seeds)
    func forkedAdd(seed: UInt64) throws {
        let honest = ["A", "B", "C", "D"]
        var net = try ConcurrencyScenarioTests.network(seed: seed, names: honest + ["E", "X", "Y"], members: honest + ["E"])
        let prekeys = net.people["E"]!.prekeys
        let x = net.people["X"]!.bundle, y = net.people["Y"]!.bundle
        var turn = 0
        let (add1, add2) = try net.fork(by: "E", left: ["A", "B"], right: ["C", "D"]) { group, net in
            turn += 1
            return try group.add(turn == 1 ? x : y, prekeys: prekeys, now: TestNetwork.now, using: &net.rng).last!
        }
        net.deliver(add1, to: "X")
        net.deliver(add2, to: "Y")
        #expect(net.group("X").isMember && net.group("Y").isMember, "each newcomer joined its side")
        net.settle()
        #expect(try net.removeEquivocatorAtOnce("E") != nil)
        net.settle()
        try net.resyncUntilRepaired()
        for name in honest {
            #expect(net.group(name).members == net.ids(honest), "\(name) sees \(net.names(net.group(name).members))")
        }
        #expect(!net.group("X").isMember && !net.group("Y").isMember, "the cut adds count in no view")
        net.expectConverged(honest)
        try net.expectEveryoneReadsEveryone(honest)
    }

    /// The residue case of the rule, closed: P alone took one side of E's fork (a message), was
    /// removed, and C, who took the other side (an add of X), adds P back before the others know
    /// of the fork. P finds the fork on the way (C's chain acknowledges the add of X before its
    /// add of P), and its welcome-ack, which tells everyone that P knows what C knew, carries the
    /// evidence. B processes that welcome-ack before the remove of E: without the evidence the
    /// add of X would settle and fold there (every member that can send would know it) while A,
    /// who removed E with the evidence first, cuts it off.
    @Test("a participant of one side added back by the other side: its welcome-ack carries the evidence, so the other side's add never settles through it", arguments: seeds)
    func returningParticipantCarriesTheEvidence(seed: UInt64) throws {
        let honest = ["A", "B", "C", "P"]
        var net = try ConcurrencyScenarioTests.network(seed: seed, names: honest + ["E", "X"], members: honest + ["E"])
        let e = net.id("E")
        _ = try net.remove(by: "A", "P")
        net.settle()
        #expect(!net.group("P").isMember, "P is out, and keeps following the group")
        let prekeys = net.people["E"]!.prekeys
        let x = net.people["X"]!.bundle
        var turn = 0
        let (message, addX) = try net.fork(by: "E", left: ["P"], right: ["A", "B", "C"]) { group, net in
            turn += 1
            let envelopes = turn == 1
                ? try group.send(text: "for P only", prekeys: prekeys, now: TestNetwork.now, using: &net.rng)
                : try group.add(x, prekeys: prekeys, now: TestNetwork.now, using: &net.rng)
            #expect(envelopes.count == 1)
            return envelopes[0]
        }
        net.inFlight.removeAll { $0.envelope.hash == message.hash || $0.envelope.hash == addX.hash }
        // E says nothing more (its next envelope would show the fork to everyone).
        Self.deliverAll(&net, except: ["P", "E"])
        _ = try net.add(by: "C", "P")
        Self.deliverAll(&net, except: ["P", "E"])
        // P comes back online and fetches what it lacks.
        Self.catchUp(&net, "P")
        for name in ["A", "B", "C"] { #expect(net.group(name).forkEvidence.isEmpty, "\(name) does not know of the fork yet") }
        #expect(net.group("P").isMember)
        let evidence = try #require(net.group("P").forkEvidence[e], "P found the fork before processing its add")
        let welcomeAck = try #require(net.relayLog.last { $0.envelope.sender == net.id("P") && $0.envelope.kind == .welcomeAck }?.envelope)
        let body = try ControlBody(kind: .welcomeAck, payload: try #require(welcomeAck.payload))
        #expect(body.forkEvidence == evidence.wireBytes, "the welcome-ack carries the evidence")
        #expect(ForkEvidence.maximumEncodedBytes <= ControlBody.maximumForkEvidenceBytes, "any evidence fits the body's limit")
        // The evidence reaches A by sync, and A removes E with it; B gets P's welcome-ack first.
        var a = net.group("A")
        let noted = a.noteFork(evidence)
        #expect(noted)
        net.people["A"]!.group = a
        let removal = try net.remove(by: "A", "E")
        #expect(try ControlBody(kind: .remove, payload: try #require(removal.payload)).forkEvidence != nil)
        net.deliver(welcomeAck, to: ["B"])
        #expect(net.group("B").forkEvidence[e] != nil, "B learnt the fork from the welcome-ack")
        #expect(net.group("B").keyAgreement.history.operations.contains { $0.id == addX.operationID }, "the add of X is held back, not folded")
        net.deliver(removal, to: ["B"])
        #expect(net.group("B").members == net.group("A").members, "B decides the add of X as A does")
        #expect(!net.group("B").members.contains(net.id("X")))
        net.settle()
        try net.resyncUntilRepaired()
        for name in honest {
            #expect(net.group(name).members == net.ids(honest), "\(name) sees \(net.names(net.group(name).members))")
        }
        net.expectConverged(honest)
        try net.expectEveryoneReadsEveryone(honest)
    }

    /// Delivers everything in flight except to `excluded`, until nothing more is.
    static func deliverAll(_ net: inout TestNetwork, except excluded: Set<String>) {
        while net.inFlight.contains(where: { !excluded.contains($0.to) }) {
            net.deliver { to, _ in !excluded.contains(to) }
        }
    }

    /// Delivers to `name` what is in flight for it and what it asks for, from the relay log, until it asks for nothing more.
    static func catchUp(_ net: inout TestNetwork, _ name: String) {
        for _ in 0..<50 {
            net.deliver { to, _ in to == name }
            let group = net.group(name)
            var wanted: [Envelope] = []
            for request in group.missing {
                for entry in net.relayLog {
                    let envelope = entry.envelope
                    let asked: Bool = switch request {
                    case .hash(let hash): envelope.hash == hash
                    case .range(let sender, let from, let through): envelope.sender == sender && envelope.seq >= from && envelope.seq <= through
                    }
                    if asked, !group.broadcast.isBuffered(envelope.hash), !wanted.contains(where: { $0.hash == envelope.hash }) {
                        wanted.append(envelope)
                    }
                }
            }
            if wanted.isEmpty { return }
            for envelope in wanted { net.inFlight.append((name, envelope)) }
        }
    }

    /// Evidence is checked before it counts: the same envelope twice, envelopes of two senders,
    /// unrelated seqs, or a bad signature are not a fork, and a remove that carries such bytes
    /// removes without cutting anything off.
    @Test("fork evidence: only two validly signed, contradicting headers of one sender count; it round-trips bounded")
    func evidenceIsChecked() throws {
        var net = try ConcurrencyScenarioTests.network(seed: 9, names: ["A", "B", "C"], members: ["A", "B", "C"])
        let prekeys = net.people["C"]!.prekeys
        var one = net.group("C"), two = net.group("C")
        let a = try one.update(prekeys: prekeys, using: &net.rng)
        let b = try two.update(prekeys: prekeys, using: &net.rng)
        let evidence = try ForkEvidence(a, b)
        #expect(evidence.verify() && evidence.sender == net.id("C") && evidence.cutSeq == a.seq)
        #expect(try ForkEvidence(wire: evidence.wireBytes, groupID: a.groupID) == evidence)
        #expect(evidence.wireBytes.count <= ForkEvidence.maximumEncodedBytes)
        #expect(throws: ForkEvidence.Invalid.sameEnvelope) { try ForkEvidence(a, a) }
        let other = try net.update(by: "A")
        #expect(throws: ForkEvidence.Invalid.differentSenders) { try ForkEvidence(a, other) }
        let later = try one.update(prekeys: prekeys, using: &net.rng)
        #expect(throws: ForkEvidence.Invalid.notAFork) { try ForkEvidence(a, later) }
        // A flipped signature bit: the structure holds, the signature does not.
        var bytes = b.canonicalBytes
        bytes[bytes.count - 1 - 10 - b.payloadCount] ^= 1  // inside the signature, before the payload
        if let tampered = try? Envelope(canonical: bytes), tampered.hash != b.hash {
            #expect(!(try ForkEvidence(a, tampered)).verify())
            var group = net.group("A")
            #expect(!group.noteFork(try ForkEvidence(a, tampered)))
            #expect(group.forkEvidence.isEmpty)
        }
        // Truncated or padded evidence is a typed error.
        let wire = evidence.wireBytes
        for cut in [0, 1, wire.count / 2, wire.count - 1] {
            #expect(throws: WireError.self) { try ForkEvidence(wire: Array(wire.prefix(cut)), groupID: a.groupID) }
        }
        #expect(throws: WireError.self) { try ForkEvidence(wire: wire + [0], groupID: a.groupID) }
    }
}
