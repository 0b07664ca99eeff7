@_spi(Simulation) import DCGKAGroup
import CausalBroadcast
import DCGKACrypto
import DCGKAEncoding
import Testing

/// The self-update rule of PROTOCOL-NOTES.md: a member refreshes before its next message exactly
/// when somebody outside its view could compute its newest update secret.
@Suite struct RefreshTests {
    static let seeds: [UInt64] = [1, 2, 3, 4]

    @Test("a remove from a member that did not know me leaves my epoch readable by the removed member; I update before my next message", arguments: seeds)
    func removeByMemberThatDidNotKnowMe(seed: UInt64) throws {
        var net = try ConcurrencyScenarioTests.network(seed: seed, names: ["A", "B", "C", "D", "E"], members: ["A", "B", "C", "D"])
        _ = try net.add(by: "A", "E")
        _ = try net.remove(by: "B", "D")  // B has not seen E's add: B's seed does not reach E
        net.settle()
        net.expectConverged(["A", "B", "C", "E"])
        let e = net.id("E")
        // The danger is real: D still holds E's current epoch (from E's welcome-ack)...
        let epochOfE = net.group("E").messaging.currentEpoch(of: e)
        #expect(epochOfE != nil)
        #expect(net.group("D").messaging.currentEpoch(of: e) == epochOfE)
        #expect(net.group("E").needsRefresh)
        // ...and nobody else is exposed.
        for name in ["A", "B", "C"] { #expect(!net.group(name).needsRefresh, "\(name)") }
        // E's next message goes out after an update of E's, so D cannot read it; everyone else can.
        let seqBefore = net.group("E").broadcast.nextOwnPosition().seq
        let message = try net.send(by: "E", "after the removal of D")
        #expect(message.seq == seqBefore + 1)  // seqBefore was the refresh
        #expect(!net.group("E").needsRefresh)
        net.settle()
        #expect(net.readers(of: message) == ["A", "B", "C"])
        #expect(net.group("D").messaging.currentEpoch(of: e) == epochOfE)
        try net.expectEveryoneReadsEveryone(["A", "B", "C", "E"])
    }

    @Test("a seed whose sender still counted a removed member does not force a refresh once my ratchet holds a secret that member never saw", arguments: seeds)
    func seedFromWiderViewAfterTheRemove(seed: UInt64) throws {
        var net = try ConcurrencyScenarioTests.network(seed: seed, names: ["A", "B", "C", "D"], members: ["A", "B", "C", "D"])
        let remove = try net.remove(by: "B", "D")
        let update = try net.update(by: "C")  // C has not seen the remove: its seed also reaches D
        // A processes the remove first, then C's update.
        net.deliver(remove, to: ["A"])
        net.deliver(update, to: ["A"])
        #expect(net.group("A").members == net.ids(["A", "B", "C"]))
        #expect(!net.group("A").needsRefresh)
        net.settle()
        net.expectConverged(["A", "B", "C"])
        for name in ["A", "B", "C"] { #expect(!net.group(name).needsRefresh, "\(name)") }
        // D knows C's seed, hence A's member secret of the update, but not A's ratchet state: the
        // epoch D computes for A's acknowledgment is not A's.
        let a = net.id("A")
        let epoch = try #require(net.group("A").messaging.currentEpoch(of: a))
        let key = EpochKey(member: a, epoch: epoch)
        let mine = try #require(net.people["A"]!.secrets[key])
        let guessed = net.people["D"]!.secrets[key] ?? net.people["D"]!.secretsWhileOut[key]
        #expect(guessed != nil)
        #expect(guessed != mine)
        let seqBefore = net.group("A").broadcast.nextOwnPosition().seq
        let message = try net.send(by: "A", "no refresh needed")
        #expect(message.seq == seqBefore)
        net.settle()
        #expect(net.readers(of: message) == ["B", "C"])
    }

    @Test("an exposed member refreshes before it adds, so the newcomer's first secret is not known outside its view", arguments: seeds)
    func refreshBeforeAdd(seed: UInt64) throws {
        var net = try ConcurrencyScenarioTests.network(seed: seed, names: ["A", "B", "C", "D", "E", "F"], members: ["A", "B", "C", "D"])
        _ = try net.add(by: "A", "E")
        _ = try net.remove(by: "B", "D")
        net.settle()
        #expect(net.group("E").needsRefresh)
        let seqBefore = net.group("E").broadcast.nextOwnPosition().seq
        let add = try net.add(by: "E", "F")
        #expect(add.seq == seqBefore + 1)  // seqBefore was the refresh
        net.settle()
        net.expectConverged(["A", "B", "C", "E", "F"])
        #expect(!net.group("F").needsRefresh)
        let message = try net.send(by: "F", "hello from F")
        net.settle()
        #expect(net.readers(of: message) == ["A", "B", "C", "E"])
        try net.expectEveryoneReadsEveryone(["A", "B", "C", "E", "F"])
    }
}
