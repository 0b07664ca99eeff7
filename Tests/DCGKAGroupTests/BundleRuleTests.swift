@_spi(Simulation) import DCGKAGroup
import CausalBroadcast
import DCGKACrypto
import DCGKAEncoding
import Testing

/// Issue 8, item 5: the newest-valid-bundle rule of §2.3 (by `notAfter`, never downgraded), an
/// API to offer fresh bundles, and a member's own new bundle carried to its groups by its next update.
@Suite struct BundleRuleTests {
    /// B rotates its prekey: a fresh bundle valid for longer, announced with its next message.
    static func rotate(_ net: inout TestNetwork, _ name: String) throws -> KeyBundle {
        var prekeys = net.people[name]!.prekeys
        let fresh = prekeys.generate(identity: net.people[name]!.identity, notAfter: TestNetwork.now + 86_400 * 90, using: &net.rng)
        net.people[name]!.prekeys = prekeys
        var group = net.group(name)
        try group.adoptOwnBundle(fresh, now: TestNetwork.now)
        net.people[name]!.group = group
        return fresh
    }

    @Test("a rotated bundle reaches every member with my next message, and a later member opens its channel on it", arguments: [UInt64(1), 2])
    func rotationIsAnnounced(seed: UInt64) throws {
        var net = try ConcurrencyScenarioTests.network(seed: seed, names: ["A", "B", "C", "D"], members: ["A", "B", "C"])
        let fresh = try Self.rotate(&net, "B")
        let seqBefore = net.group("B").broadcast.nextOwnPosition().seq
        let message = try net.send(by: "B", "with my new prekey")
        #expect(message.seq == seqBefore + 1, "an update carrying the bundle went first")
        net.settle()
        for name in ["A", "B", "C"] { #expect(net.group(name).bundles[net.id("B")] == fresh, "\(name)") }
        #expect(net.group("B").bundleToAnnounce == nil)
        // D, added later, learns the fresh bundle from its welcome.
        _ = try net.add(by: "A", "D")
        net.settle()
        #expect(net.group("D").bundles[net.id("B")] == fresh)
        _ = try net.update(by: "D")
        net.settle()
        net.expectConverged(["A", "B", "C", "D"])
        try net.expectEveryoneReadsEveryone(["A", "B", "C", "D"])
    }

    @Test("an old, genuinely signed bundle replayed in an add does not replace the newer one")
    func noDowngrade() throws {
        var net = try ConcurrencyScenarioTests.network(seed: 3, names: ["A", "B", "C"], members: ["A", "B", "C"])
        let old = net.people["B"]!.bundle
        let fresh = try Self.rotate(&net, "B")
        _ = try net.update(by: "B")
        net.settle()
        _ = try net.remove(by: "A", "B")
        net.settle()
        // C re-adds B with the old bundle (as a stale contact entry would).
        var group = net.group("C")
        let envelopes = try group.add(old, prekeys: net.people["C"]!.prekeys, now: TestNetwork.now, using: &net.rng)
        net.people["C"]!.group = group
        for envelope in envelopes { net.broadcast(envelope, from: "C", alsoTo: ["B"]) }
        net.settle()
        for name in ["A", "C"] { #expect(net.group(name).bundles[net.id("B")] == fresh, "\(name) kept B's newest bundle") }
        net.expectConverged(["A", "B", "C"])
    }

    @Test("offered bundles: a newer valid one is kept, an older one is not, a forged one is an error")
    func offered() throws {
        var net = try ConcurrencyScenarioTests.network(seed: 4, names: ["A", "B", "C"], members: ["A", "B", "C"])
        var prekeys = net.people["B"]!.prekeys
        let identity = net.people["B"]!.identity
        let newer = prekeys.generate(identity: identity, notAfter: TestNetwork.now + 86_400 * 60, using: &net.rng)
        let older = prekeys.generate(identity: identity, notAfter: TestNetwork.now + 86_400, using: &net.rng)
        var group = net.group("A")
        #expect(try group.offerBundle(newer, now: TestNetwork.now))
        #expect(try !group.offerBundle(older, now: TestNetwork.now))
        #expect(group.bundles[net.id("B")] == newer)
        let forged = KeyBundle(suite: newer.suite, identity: newer.identity, prekey: older.prekey,
                               notAfter: newer.notAfter + 1, signature: newer.signature)
        #expect(throws: GroupError.self) { try group.offerBundle(forged, now: TestNetwork.now) }
        #expect(group.bundles[net.id("B")] == newer)
        // An expired one is refused when offered (expiry limits where a bundle is offered).
        #expect(throws: GroupError.self) { try group.offerBundle(newer, now: newer.notAfter + 1) }
    }

    @Test("a prekey secret is kept until notAfter plus 60 days by default, then deleted")
    func prekeyRetention() {
        var rng = SeededRandom(seed: 5)
        var store = PrekeyStore()
        let bundle = store.generate(identity: IdentityKey.generate(using: &rng), notAfter: 1_000_000, using: &rng)
        #expect(store.deleteExpired(now: 1_000_000 + 59 * 86_400) == 0)
        #expect(store.secret(for: bundle.prekey) != nil)
        #expect(store.deleteExpired(now: 1_000_000 + 61 * 86_400) == 1)
        #expect(store.secret(for: bundle.prekey) == nil)
    }
}
