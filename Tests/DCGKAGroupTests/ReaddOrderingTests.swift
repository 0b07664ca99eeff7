@_spi(Simulation) import DCGKAGroup
import CausalBroadcast
import DCGKACrypto
import DCGKAEncoding
import Testing

/// Issue 8, item 10: B is removed by A; concurrently C removes D with a seed that still reaches B;
/// E, who processed both, re-adds B; B receives the re-add before anything else. B must end in
/// step with everyone: the relaxed causal order (§6.2) holds E's add back at B until B has
/// delivered E's earlier envelopes, which include E's acknowledgments of both removes, and an
/// acknowledgment is delivered only after what it acknowledges (PROTOCOL-NOTES.md, "re-add order").
@Suite struct ReaddOrderingTests {
    @Test("a re-added member that receives its re-add first still processes the concurrent removes first",
          arguments: [UInt64(1), 2, 3, 4])
    func readdArrivesFirst(seed: UInt64) throws {
        var net = try ConcurrencyScenarioTests.network(seed: seed, names: ["A", "B", "C", "D", "E"], members: ["A", "B", "C", "D", "E"])
        let removeB = try net.remove(by: "A", "B")
        let removeD = try net.remove(by: "C", "D")  // C has not seen A's remove: its seed goes to B too
        net.deliver(removeB, to: ["E"])
        net.deliver(removeD, to: ["E"])
        #expect(net.group("E").members == net.ids(["A", "C", "E"]))
        let readd = try net.add(by: "E", "B")
        // B gets the re-add before anything else: it must wait for E's acknowledgments, and they
        // for the removes they acknowledge.
        net.deliver(readd, to: ["B"])
        #expect(net.group("B").broadcast.deliveredSeq(of: net.id("E")) < readd.seq, "the re-add waits for E's earlier envelopes")
        #expect(net.group("B").members == net.ids(["A", "B", "C", "D", "E"]), "nothing was processed out of order")
        net.settle()
        net.expectConverged(["A", "B", "C", "E"])
        #expect(net.problems.isEmpty, "\(net.problems)")
        try net.expectEveryoneReadsEveryone(["A", "B", "C", "E"])
    }
}
