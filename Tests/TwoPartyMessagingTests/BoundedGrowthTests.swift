import DCGKACrypto
import DCGKAEncoding
import Testing
import TwoPartyMessaging

/// Issue 8, item 7 (in part): what a peer or an insider can make my state grow by is bounded by
/// design, below what the decoder accepts, so a state can always be read back.
@Suite struct BoundedGrowthTests {
    @Test("keys for a peer that never answers stay bounded; its late answer fails, typed, a recent one works")
    func silentPeer() throws {
        var duo = Duo(seed: 31)
        let first = try duo.send(0, [1])
        var messages: [TwoPartyMessage] = []
        for i in 0..<(TwoPartyState.maximumOutstandingKeys + 10) { messages.append(try duo.send(0, [UInt8(i % 256)])) }
        #expect(duo.states[0].mySecretKeys.count == TwoPartyState.maximumOutstandingKeys)
        #expect(try TwoPartyState(wireBytes: duo.states[0].wireBytes) == duo.states[0], "the state reads back")
        // Bob answers after reading only the first message: that key is gone.
        var late = duo
        _ = try late.receive(1, first)
        let answer = try late.send(1, [9])
        #expect(late.rejects(0, answer) == .unknownKeyIndex(1))
        // Bob answers after reading everything: the newest key is there.
        _ = try duo.receive(1, first)
        for message in messages { _ = try duo.receive(1, message) }
        let reply = try duo.send(1, [7])
        #expect(try duo.receive(0, reply) == [7])
        #expect(duo.states[0].mySecretKeys.isEmpty)
    }

    @Test("the prekey store never holds more than its decoder accepts: the prekey that expires first goes")
    func prekeyStoreBounded() throws {
        var rng = SeededRandom(seed: 32)
        let identity = IdentityKey.generate(using: &rng)
        var store = PrekeyStore()
        var bundles: [KeyBundle] = []
        for i in 0..<(PrekeyStore.maximumEntries + 3) {
            bundles.append(store.generate(identity: identity, notAfter: 1_000_000 + UInt64(i), using: &rng))
        }
        #expect(store.entries.count == PrekeyStore.maximumEntries)
        #expect(store.secret(for: bundles[0].prekey) == nil && store.secret(for: bundles[2].prekey) == nil)
        #expect(store.secret(for: bundles[3].prekey) != nil && store.secret(for: bundles.last!.prekey) != nil)
        #expect(try PrekeyStore(wireBytes: store.wireBytes) == store)
    }
}
