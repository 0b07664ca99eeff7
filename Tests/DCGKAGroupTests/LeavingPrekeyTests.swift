@_spi(Simulation) import DCGKAGroup
#if DEBUG
@_spi(PlantedDefects) import DCGKAEncoding
#else
import DCGKAEncoding
#endif
import CausalBroadcast
import DCGKACrypto
@_spi(Simulation) import KeyAgreement
import TwoPartyMessaging
import Testing

/// PROTOCOL-NOTES.md, "Leaving the prekey": a channel opened on my prekey must not stay there, or
/// whoever holds my prekey (which I keep for the peers that have not opened theirs yet, §2.3) reads
/// everything that peer sends me later by following the keys its first message handed on.
@Suite struct LeavingPrekeyTests {
    /// A creates a group with B and C (its seeds reach them on their prekeys), everyone settles,
    /// then A updates. Returns A's seed message to B in the update, and what B's prekey opens.
    static func updateSeenByPrekeyHolder(seed: UInt64) throws -> (header: TwoPartyHeader, prekeyReadsIt: Bool) {
        var net = try ConcurrencyScenarioTests.network(seed: seed, names: ["A", "B", "C"], members: ["A", "B", "C"])
        let create = try #require(net.envelopesByID[OperationID(sender: net.id("A"), seq: 1)])
        let update = try net.update(by: "A")
        net.settle()
        let a = net.id("A"), b = net.id("B")
        let group = net.group("B")
        let binding = TwoPartyBinding(suite: group.suite, groupID: group.groupID)
        let view = net.ids(["A", "B", "C"])
        func messageToB(_ envelope: Envelope) throws -> TwoPartyMessage {
            let body = try ControlBody(kind: ControlKind(rawValue: envelope.kind.rawValue)!, payload: try #require(envelope.payload))
            return try #require(DCGKAState.messages(for: b, in: body, senderView: view).first)
        }
        // The attacker holds B's prekey: it opens A's first message and follows the key it hands on.
        let first = try messageToB(create)
        let prekey = try #require(first.header.prekey.flatMap { net.people["B"]!.prekeys.secret(for: $0) })
        let opened = try TwoPartyState.open(first, with: prekey, from: a, to: b, binding: binding)
        let second = try messageToB(update)
        let handedOn = PKESecretKey(secretBytes: opened.keyForMe)
        let reads = (try? TwoPartyState.open(second, with: handedOn, from: a, to: b, binding: binding)) != nil
        #expect(net.problems.isEmpty, "\(net.problems)")
        return (second.header, reads)
    }

    @Test("my acknowledgment moves a channel opened on my prekey onto a fresh key of mine", arguments: [UInt64(1), 2, 3])
    func movesOffThePrekey(seed: UInt64) throws {
        let (header, prekeyReadsIt) = try Self.updateSeenByPrekeyHolder(seed: seed)
        #expect(header.origin == .other && (header.index ?? 0) > 0, "A's next seed is encrypted to a key B made")
        #expect(!prekeyReadsIt, "B's prekey no longer opens what A sends B")
    }

    #if DEBUG
    @Test("planted: a channel left on the prekey lets the prekey read the peer's next seed")
    func plantedStayOnPrekey() throws {
        let (header, prekeyReadsIt) = try PlantedDefects.$active.withValue([.stayOnPrekey]) {
            try Self.updateSeenByPrekeyHolder(seed: 1)
        }
        #expect(header.origin == .me)
        #expect(prekeyReadsIt)
    }
    #endif
}
