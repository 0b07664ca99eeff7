@_spi(Simulation) import DCGKAGroup
import CausalBroadcast
import DCGKACrypto
import DCGKAEncoding
import KeyAgreement
import Testing

/// Issue 8, item 1 (in part): a control envelope whose direct message I cannot decrypt keeps its
/// membership effect at me; I acknowledge it without a secret (so my own ratchet stays in step
/// everywhere), and I know, by event and in my state, whose ratchet I can no longer follow.
@Suite struct LostSecretTests {
    @Test("a member whose prekey is gone still applies a remove, and the others still read it", arguments: [UInt64(1), 2, 3])
    func removeStillApplies(seed: UInt64) throws {
        var net = try ConcurrencyScenarioTests.network(seed: seed, names: ["A", "B", "C", "D"], members: ["A", "B", "C"])
        _ = try net.add(by: "A", "D")
        // D processes its welcome, then loses its prekey before B's and C's add-acks (their first
        // messages to D, on that prekey) arrive: the honest trigger of issue 8.
        let invitation = try #require(net.inFlight.first { $0.to == "D" }?.envelope)
        net.deliver(invitation, to: "D")
        net.people["D"]!.prekeys = PrekeyStore()
        net.settle()
        let d = net.group("D")
        #expect(d.members == net.ids(["A", "B", "C", "D"]))
        #expect(d.keyAgreement.lostRatchets == net.ids(["B", "C"]))
        let events = net.people["D"]!.events
        #expect(events.contains { if case .lostRatchet(of: net.id("B"), _, _) = $0 { true } else { false } })
        #expect(!events.contains { if case .processingFailed = $0 { true } else { false } }, "\(events)")

        // C removes A; its seed for D travels on a channel D never opened: D still removes A.
        _ = try net.remove(by: "C", "A")
        net.settle()
        for name in ["B", "C", "D"] { #expect(net.group(name).members == net.ids(["B", "C", "D"]), "\(name)") }
        #expect(!net.people["D"]!.events.contains { if case .processingFailed = $0 { true } else { false } })
        // D's own ratchet stayed in step everywhere: B and C read what D sends; B and C read each other.
        let fromD = try net.send(by: "D", "still here")
        let fromB = try net.send(by: "B", "hello")
        net.settle()
        #expect(net.readers(of: fromD) == ["B", "C"])
        #expect(net.readers(of: fromB).contains("C"))
        #expect(!net.readers(of: fromB).contains("D"), "D lost B's ratchet and knows it (RecoveryTests: it asks for it)")
    }
}

/// §2.3 retention against a clock that moves on: a member offline for weeks still opens the
/// channels opened on its prekey while it was away; past the hard limit it cannot, and knows it.
@Suite struct PrekeyRetentionClockTests {
    /// D joins as soon as it is added, then goes offline: its clock is `days` after its bundle's
    /// `notAfter` when it comes back and deletes what has expired, then it receives everything
    /// (the members' first messages to it among them, opened on its prekey).
    static func comeBack(afterDays days: UInt64, seed: UInt64) throws -> (lost: Set<MemberID>, net: TestNetwork) {
        var net = try ConcurrencyScenarioTests.network(seed: seed, names: ["A", "B", "C", "D"], members: ["A", "B", "C"])
        _ = try net.add(by: "A", "D")
        let invitation = try #require(net.inFlight.first { $0.to == "D" }?.envelope)
        net.deliver(invitation, to: "D")
        _ = try net.update(by: "B")
        let notAfter = net.people["D"]!.bundle.notAfter
        net.people["D"]!.prekeys.deleteExpired(now: notAfter + days * 86_400)
        net.settle()
        return (net.group("D").keyAgreement.lostRatchets, net)
    }

    @Test("offline for seven weeks past the bundle's expiry: nothing is lost", arguments: [UInt64(1), 2])
    func weeksOffline(seed: UInt64) throws {
        var (lost, net) = try Self.comeBack(afterDays: 49, seed: seed)
        #expect(lost.isEmpty)
        net.expectConverged(["A", "B", "C", "D"])
        try net.expectEveryoneReadsEveryone(["A", "B", "C", "D"])
    }

    @Test("past the 60-day hard limit: the prekey is gone, the membership holds, the loss is known, and recovery repairs it")
    func beyondTheHardLimit() throws {
        var (lost, net) = try Self.comeBack(afterDays: 61, seed: 1)
        #expect(!lost.isEmpty)
        for name in ["A", "B", "C", "D"] { #expect(net.group(name).members == net.ids(["A", "B", "C", "D"]), "\(name)") }
        let fromD = try net.send(by: "D", "back")
        net.settle()
        #expect(net.readers(of: fromD) == ["A", "B", "C"], "D's own ratchet stayed in step")
        // §5.7 recovery, with the clock 61 days on: the one-time key is D's own, not a prekey.
        try net.requestResync(by: "D")
        net.settle()
        #expect(net.group("D").keyAgreement.lostRatchets.isEmpty)
        net.expectConverged(["A", "B", "C", "D"])
        try net.expectEveryoneReadsEveryone(["A", "B", "C", "D"])
    }
}
