@_spi(Simulation) import DCGKAGroup
import CausalBroadcast
import DCGKACrypto
import DCGKAEncoding
import KeyAgreement
import Testing

extension TestNetwork {
    /// `name` asks for the ratchets it lost (§5.7).
    @discardableResult
    mutating func requestResync(by name: String) throws -> Envelope {
        var group = group(name)
        let envelope = try group.requestResync(using: &rng)
        people[name]!.group = group
        collectSecrets(name)
        broadcast(envelope, from: name)
        return envelope
    }

    /// D is added by A and joins, then loses its prekey before B's and C's first messages to it
    /// (their add-acks, opened on that prekey) arrive: it loses B's and C's ratchets.
    static func lostPrekey(seed: UInt64, names: [String] = ["A", "B", "C", "D"]) throws -> TestNetwork {
        var net = try ConcurrencyScenarioTests.network(seed: seed, names: names, members: ["A", "B", "C"])
        _ = try net.add(by: "A", "D")
        let invitation = try #require(net.inFlight.first { $0.to == "D" }?.envelope)
        net.deliver(invitation, to: "D")
        net.people["D"]!.prekeys = PrekeyStore()
        net.settle()
        #expect(net.group("D").keyAgreement.lostRatchets == net.ids(["B", "C"]))
        return net
    }
}

/// Issue 8, item 1: §5.7 recovery (PROTOCOL-NOTES.md, "Recovery"). A member that lost ratchets asks
/// for them with a resync; every member it asks answers once per generation with its ratchet state,
/// on a 2SM channel pointed at the request's one-time key, and steps its ratchet by a constant; the
/// requester reads everything sent after the answers. Membership never changes.
@Suite struct RecoveryTests {
    @Test("a member that lost ratchets asks for them and reads everyone again", arguments: [UInt64(1), 2, 3])
    func recoversAfterALostPrekey(seed: UInt64) throws {
        var net = try TestNetwork.lostPrekey(seed: seed)
        #expect(net.group("D").needsResync)
        let before = try net.send(by: "B", "before the recovery")
        net.settle()
        #expect(!net.readers(of: before).contains("D"))

        try net.requestResync(by: "D")
        #expect(!net.group("D").needsResync, "the request waits for its answers")
        #expect(throws: GroupError.self) { try net.requestResync(by: "D") }  // nothing new to ask
        net.settle()
        let d = net.group("D")
        #expect(d.keyAgreement.lostRatchets.isEmpty)
        #expect(d.keyAgreement.resync.requests.isEmpty)
        let events = net.people["D"]!.events
        for name in ["B", "C"] {
            #expect(events.contains { if case .recovered(net.id(name), _) = $0 { true } else { false } }, "\(name)")
        }
        for name in ["A", "B", "C"] {
            #expect(net.people[name]!.events.contains(.resyncRequested(by: net.id("D"), generation: 1)), "\(name)")
        }
        // Membership did not change, and everybody agrees on every ratchet again.
        net.expectConverged(["A", "B", "C", "D"])
        try net.expectEveryoneReadsEveryone(["A", "B", "C", "D"])
        // Later updates reach D on the repaired channels too.
        _ = try net.update(by: "B")
        _ = try net.update(by: "C")
        net.settle()
        #expect(net.group("D").keyAgreement.lostRatchets.isEmpty)
        try net.expectEveryoneReadsEveryone(["A", "B", "C", "D"])
        net.expectConverged(["A", "B", "C", "D"])
    }

    @Test("only the members asked answer, each once per generation; a replayed generation gets no answer")
    func answersOncePerGeneration() throws {
        var net = try TestNetwork.lostPrekey(seed: 4)
        let request = try net.requestResync(by: "D")
        let a = net.group("A").broadcast.nextOwnPosition().seq
        let b = net.group("B").broadcast.nextOwnPosition().seq
        net.deliver(request, to: ["A", "B"])
        #expect(net.group("A").broadcast.nextOwnPosition().seq == a, "A was not asked (D did not lose A)")
        #expect(net.group("B").broadcast.nextOwnPosition().seq == b + 1, "B answers")
        // D signs another resync of the same generation (a replay with new content): no answer.
        let body = try ControlBody(kind: .resync, payload: try #require(request.payload))
        let replay = Envelope.sign(
            identity: net.people["D"]!.identity, suite: request.suite, groupID: request.groupID, seq: request.seq + 1,
            prev: request.hash, kind: .resync, acked: nil, payload: body.payload)
        var group = net.group("B")
        let output = group.receive(replay, prekeys: net.people["B"]!.prekeys, using: &net.rng)
        #expect(output.envelopes.isEmpty)
        #expect(output.events == [.resyncRequested(by: net.id("D"), generation: 1)])
        // A newer generation is answered (once), a second copy of it is not.
        guard case .resync(_, let key, let lost) = body.fields else { Issue.record("not a resync"); return }
        func resync(_ generation: UInt64, seq: UInt64, prev: Bytes32) -> Envelope {
            Envelope.sign(
                identity: net.people["D"]!.identity, suite: request.suite, groupID: request.groupID, seq: seq, prev: prev,
                kind: .resync, acked: nil,
                payload: ControlBody(fields: .resync(generation: generation, key: key, lost: lost), directMessages: []).payload)
        }
        let second = resync(2, seq: replay.seq + 1, prev: replay.hash)
        #expect(group.receive(second, prekeys: net.people["B"]!.prekeys, using: &net.rng).envelopes.map(\.kind) == [.resyncAnswer])
        let third = resync(2, seq: second.seq + 1, prev: second.hash)
        #expect(group.receive(third, prekeys: net.people["B"]!.prekeys, using: &net.rng).envelopes.isEmpty)
    }

    @Test("a remove concurrent with a recovery still removes (recovery is not an add)", arguments: [UInt64(5), 6])
    func removeConcurrentWithRecovery(seed: UInt64) throws {
        var net = try TestNetwork.lostPrekey(seed: seed)
        try net.requestResync(by: "D")
        _ = try net.remove(by: "A", "D")  // A has not seen the request
        net.settle()
        for name in ["A", "B", "C"] { #expect(net.group(name).members == net.ids(["A", "B", "C"]), "\(name)") }
        #expect(!net.group("D").isMember)
        let after = try net.send(by: "B", "after D's removal")
        let fromC = try net.send(by: "C", "also after")
        net.settle()
        #expect(net.readers(of: after) == ["A", "C"])
        #expect(net.readers(of: fromC) == ["A", "B"])
        net.expectConverged(["A", "B", "C"])
    }

    @Test("two members recover at once; their requests do not disturb each other")
    func concurrentRequests() throws {
        var net = try ConcurrencyScenarioTests.network(seed: 7, names: ["A", "B", "C", "D", "E"], members: ["A", "B", "C"])
        _ = try net.add(by: "A", "D")
        _ = try net.add(by: "A", "E")
        for name in ["D", "E"] {
            let invitation = try #require(net.inFlight.first { $0.to == name && $0.envelope.kind == .add }?.envelope)
            net.deliver(invitation, to: name)
        }
        net.people["D"]!.prekeys = PrekeyStore()
        net.people["E"]!.prekeys = PrekeyStore()
        net.settle()
        #expect(!net.group("D").keyAgreement.lostRatchets.isEmpty && !net.group("E").keyAgreement.lostRatchets.isEmpty)
        try net.requestResync(by: "D")
        try net.requestResync(by: "E")
        net.settle()
        #expect(net.group("D").keyAgreement.lostRatchets.isEmpty)
        #expect(net.group("E").keyAgreement.lostRatchets.isEmpty)
        net.expectConverged(["A", "B", "C", "D", "E"])
        try net.expectEveryoneReadsEveryone(["A", "B", "C", "D", "E"])
    }
}
