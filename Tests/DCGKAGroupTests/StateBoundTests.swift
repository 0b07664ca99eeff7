@_spi(Simulation) import DCGKAGroup
import CausalBroadcast
import DCGKACrypto
import DCGKAEncoding
import GroupMessaging
@testable import KeyAgreement
import Membership
import Testing

/// Issue 8, item 7: every table an insider (or a silent member) can grow is bounded by design, and
/// every state that can be written can be read back.
@Suite struct StateBoundTests {
    @Test("a silent member costs at most 1,024 member secrets per holder; when it speaks again, the others lose and recover its ratchet")
    func silentMember() throws {
        var net = try ConcurrencyScenarioTests.network(seed: 11, names: ["A", "B", "S"], members: ["A", "B", "S"])
        let limit = DCGKAState.maximumMemberSecretsPerMember
        let s = net.id("S")
        // S hears nothing while A refreshes its keys limit + 20 times.
        for _ in 0..<(limit + 20) {
            _ = try net.update(by: "A")
            net.deliver { to, _ in to != "S" }
        }
        for name in ["A", "B"] {
            let secrets = net.group(name).keyAgreement.memberSecrets.keys.filter { $0.member == s }
            #expect(secrets.count == limit, "\(name)")
            // What is kept are the newest: the oldest of A's updates are gone.
            #expect(!secrets.contains { $0.operation.seq == 2 }, "\(name)")
            try net.restart(name)  // the state reads back
        }
        // S catches up: its acknowledgments of the forgotten updates cannot be followed, and are
        // found out by their epoch confirmation; A and B ask S for its ratchet, and all is well.
        net.settle()
        for name in ["A", "B"] {
            #expect(net.group(name).keyAgreement.lostRatchets == [s], "\(name)")
            try net.requestResync(by: name)
        }
        net.settle()
        for name in ["A", "B"] { #expect(net.group(name).keyAgreement.lostRatchets.isEmpty, "\(name)") }
        net.problems.removeAll()  // the loss itself was reported, as it must be
        net.expectConverged(["A", "B", "S"])
        try net.expectEveryoneReadsEveryone(["A", "B", "S"])
    }

    @Test("lost seeds are remembered up to a bound, and the state reads back")
    func lostSeedsBounded() throws {
        var state = DCGKAState(me: MemberID(Bytes32([UInt8](repeating: 1, count: 32))!), groupID: GroupID(.zero))
        let sender = MemberID(Bytes32([UInt8](repeating: 2, count: 32))!)
        for seq in 1...UInt64(DCGKAState.maximumLostSeeds + 10) { state.loseSeed(of: OperationID(sender: sender, seq: seq)) }
        #expect(state.lostSeeds.count == DCGKAState.maximumLostSeeds)
        #expect(!state.lostSeeds.contains(OperationID(sender: sender, seq: 1)))
        #expect(try DCGKAState(wireBytes: state.wireBytes) == state)
    }

    @Test("a broadcast configuration set outside the decoder's limits is clamped, so the state reads back")
    func configurationClamped() throws {
        var configuration = BroadcastConfiguration()
        configuration.recentHashesPerSender = 0
        configuration.maximumBufferedEnvelopes = -5
        configuration.maximumBufferedPayloadBytes = Int.max
        let state = BroadcastState(groupID: GroupID(.zero), suite: .suite1, me: MemberID(.zero), configuration: configuration)
        #expect(state.configuration.recentHashesPerSender == 1)
        #expect(state.configuration.maximumBufferedEnvelopes == 0)
        #expect(try BroadcastState(wireBytes: state.wireBytes) == state)
    }

    @Test("a create at the member limit decodes: the creator's own bundle leads the others")
    func createAtTheLimit() throws {
        var rng = SeededRandom(seed: 12)
        var prekeys = PrekeyStore()
        let bundle = prekeys.generate(identity: IdentityKey.generate(using: &rng), notAfter: 2_000_000_000, using: &rng)
        let full = ControlBody(
            fields: .create(Array(repeating: bundle, count: MembershipOperation.maxCreateMembers + 1)), directMessages: [],
            seedConfirmation: .zero, groupNonce: .zero)
        #expect(try ControlBody(kind: .create, payload: full.payload) == full)
        let over = ControlBody(
            fields: .create(Array(repeating: bundle, count: MembershipOperation.maxCreateMembers + 2)), directMessages: [],
            seedConfirmation: .zero, groupNonce: .zero)
        #expect(throws: WireError.self) { try ControlBody(kind: .create, payload: over.payload) }
    }

    @Test("a welcome's bundles and frontier heads of strangers are not kept; bundles are offered only for participants")
    func strangersAreNotKept() throws {
        var net = try ConcurrencyScenarioTests.network(seed: 13, names: ["A", "B", "C", "D", "X"], members: ["A", "B", "C"])
        var frontier = net.group("A").broadcast.frontier
        let x = net.id("X")
        frontier.heads[x] = Frontier.Head(seq: 5, hash: Bytes32([UInt8](repeating: 7, count: 32))!)
        let group = net.group("A")
        var state = group.keyAgreement
        let (seq, prev) = group.broadcast.nextOwnPosition()
        var context = WireWriter()
        context.write(frontier)
        context.writeArray((group.members.compactMap { group.bundles[$0] } + [net.people["X"]!.bundle]).sorted { $0.identity < $1.identity })
        let output = try state.add(
            net.people["D"]!.bundle, seq: seq, welcomeContext: context.bytes,
            keys: KeyMaterial(prekeys: net.people["A"]!.prekeys, peerBundles: group.bundles), using: &net.rng)
        var body = output.body
        body.viewHash = KeyDerivations.viewHash(of: state.members, suite: group.suite.suite)  // as the group layer signs it
        let invitation = Envelope.sign(
            identity: net.people["A"]!.identity, suite: group.suite, groupID: group.groupID, seq: seq, prev: prev,
            kind: .add, acked: nil, payload: body.payload)
        var (joined, _) = try Group.join(
            identity: net.people["D"]!.identity, invitation: invitation, prekeys: net.people["D"]!.prekeys,
            configuration: TestNetwork.configuration, using: &net.rng)
        #expect(joined.bundles[x] == nil)
        #expect(joined.broadcast.frontier.heads[x] == nil)
        #expect(joined.bundles[net.id("B")] != nil)
        #expect(throws: GroupError.invalidKeyBundle(x, "not a participant of this group")) {
            try joined.offerBundle(net.people["X"]!.bundle, now: TestNetwork.now)
        }
        #expect(try Group(wireBytes: joined.wireBytes).wireBytes == joined.wireBytes)
    }

    @Test("a member cannot make a stranger a sender by removing it")
    func removedStrangerCannotSend() throws {
        var net = try ConcurrencyScenarioTests.network(seed: 14, names: ["A", "B", "C", "X"], members: ["A", "B", "C"])
        let x = net.id("X")
        // A (an insider) removes X, who was never a member.
        let group = net.group("A")
        let (seq, prev) = group.broadcast.nextOwnPosition()
        let remove = Envelope.sign(
            identity: net.people["A"]!.identity, suite: group.suite, groupID: group.groupID, seq: seq, prev: prev,
            kind: .remove, acked: nil,
            payload: ControlBody(fields: .remove(x), directMessages: [], seedConfirmation: .zero).payload)
        var b = net.group("B")
        _ = b.receive(remove, prekeys: net.people["B"]!.prekeys, using: &net.rng)
        #expect(b.keyAgreement.history.isKnownParticipant(x))
        #expect(!b.keyAgreement.history.maySend(x))
        // X now acknowledges that remove: refused as a stranger, nothing of it is kept.
        let ack = Envelope.sign(
            identity: net.people["X"]!.identity, suite: group.suite, groupID: group.groupID, seq: 1, prev: nil,
            kind: .ack, acked: remove.reference, payload: ControlBody(fields: .ack(withoutSecret: false), directMessages: []).payload)
        let output = b.receive(ack, prekeys: net.people["B"]!.prekeys, using: &net.rng)
        #expect(output.events == [.rejected(.unknownSender(x))])
        #expect(b.keyAgreement.twoParty[x] == nil && b.keyAgreement.ratchets[x] == nil)
    }
}
