@_spi(Simulation) import DCGKAGroup
import CausalBroadcast
import DCGKACrypto
import DCGKAEncoding
import KeyAgreement
import Testing

/// Members that come back: a removed member keeps following the group and is added again later.
@Suite struct ReturningMemberTests {
    /// The adder's welcome carries its membership state, which may have folded operations whose
    /// individual order the envelopes before the adder's frontier still need; a member that holds
    /// state therefore processes its welcome only once it has delivered everything the adder had
    /// (PROTOCOL-NOTES.md, "A returning member waits for its adder's frontier"). Before this rule
    /// `dcgka simulate --members 6 --operations 150 --seed 25` lost ratchets in an honest run.
    @Test("a returning member's welcome waits until it has delivered the adder's frontier", arguments: [UInt64(1), 2, 3])
    func welcomeWaitsForFrontier(seed: UInt64) throws {
        var net = try ConcurrencyScenarioTests.network(seed: seed, names: ["A", "B", "C", "D"], members: ["A", "B", "C", "D"])
        _ = try net.remove(by: "A", "D")
        net.settle()
        #expect(!net.group("D").isMember)
        // B writes; A and C read it, D (removed, still following) does not get it yet.
        let message = try net.send(by: "B", "while D is out")
        let envelope = try #require(net.envelopesByID[OperationID(sender: net.id("B"), seq: message.seq)])
        net.deliver(envelope, to: ["A", "C"])
        let readd = try net.add(by: "A", "D")
        net.deliver(readd, to: ["D"])
        #expect(!net.group("D").isMember, "the welcome waits for B's message, which A had delivered")
        #expect(net.group("D").broadcast.deliveredSeq(of: net.id("A")) < readd.seq)
        #expect(net.group("D").missing.contains(.range(sender: net.id("B"), from: message.seq, through: message.seq)),
                "what the welcome waits for is reported missing: \(net.group("D").missing)")
        net.deliver(envelope, to: ["D"])
        #expect(net.group("D").isMember, "once B's message is delivered the welcome is processed")
        net.settle()
        net.expectConverged(["A", "B", "C", "D"])
        #expect(net.problems.isEmpty, "\(net.problems)")
        try net.expectEveryoneReadsEveryone(["A", "B", "C", "D"])
    }

    /// D is removed; E is added while D is out (D's add-ack hands E D's ratchet state, but D's
    /// epoch stays the one it began before E came); D is re-added by B, whose welcome D cannot
    /// open (its prekey is gone and B's welcome is B's first message to D). D's welcome-ack then
    /// starts no epoch, and without the rule D would send in an epoch E cannot compute
    /// (`dcgka simulate --members 8 --operations 200 --prekey-losses 6 --seed 26`). D updates
    /// first instead (PROTOCOL-NOTES.md, "An epoch every member of my view can read").
    @Test("a member re-added without a new epoch updates before it sends, so members added while it was out read it",
          arguments: [UInt64(1), 2, 3])
    func epochEveryMemberCanRead(seed: UInt64) throws {
        var net = try ConcurrencyScenarioTests.network(seed: seed, names: ["A", "B", "C", "D", "E"], members: ["A", "B", "C", "D"])
        _ = try net.remove(by: "A", "D")
        net.settle()
        _ = try net.add(by: "A", "E")
        net.settle()
        #expect(net.group("D").members == net.ids(["A", "B", "C", "E"]), "D followed E's add while out")
        net.people["D"]!.prekeys = PrekeyStore()
        _ = try net.add(by: "B", "D")
        net.settle()
        let d = net.group("D")
        #expect(d.isMember)
        #expect(d.keyAgreement.lostRatchets.contains(net.id("B")), "B's welcome could not be opened")
        #expect(d.keyAgreement.myEpochMissesReaders, "E holds D's ratchet state but not D's current epoch")
        #expect(d.needsRefresh)
        let fromD = try net.send(by: "D", "back again")
        net.settle()
        #expect(net.readers(of: fromD).isSuperset(of: ["A", "C", "E"]), "\(net.readers(of: fromD))")
        #expect(!net.group("D").keyAgreement.myEpochMissesReaders)
    }
}
