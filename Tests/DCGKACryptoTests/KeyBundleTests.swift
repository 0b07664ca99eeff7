import DCGKACrypto
import DCGKAEncoding
import Testing

@Suite("Key bundles")
struct KeyBundleTests {
    func makeBundle(seed: UInt64 = 30, notAfter: UInt64 = 1_000) -> (IdentityKey, PKESecretKey, KeyBundle) {
        var rng = SeededRandom(seed: seed)
        let identity = IdentityKey.generate(using: &rng)
        let prekey = PKESecretKey.generate(using: &rng)
        return (identity, prekey, KeyBundle(signing: prekey.publicKey, notAfter: notAfter, with: identity))
    }

    @Test func validBundleVerifies() throws {
        let (identity, prekey, bundle) = makeBundle()
        #expect(bundle.identity == identity.id)
        #expect(bundle.prekey == prekey.publicKey)
        #expect(bundle.suite == .suite1)
        try bundle.verify(now: 0)
        try bundle.verify(now: 1_000)  // notAfter itself is still valid
        try bundle.verify(now: 999, expectedSuite: .suite1)
        // The signature covers exactly "DCGKA prekey" ‖ suite ‖ prekey ‖ notAfter (big-endian).
        let signed = KeyBundle.signedBytes(suite: .suite1, prekey: prekey.publicKey, notAfter: 1_000)
        #expect(signed == Array("DCGKA prekey".utf8) + [1] + prekey.publicKey.bytes + [0, 0, 0, 0, 0, 0, 0x03, 0xE8])
        #expect(identity.id.isValidSignature(bundle.signature, for: signed))
    }

    @Test func expiredBundleIsRejected() {
        let (_, _, bundle) = makeBundle()
        #expect(throws: KeyBundleError.expired(notAfter: 1_000)) { try bundle.verify(now: 1_001) }
        #expect(throws: KeyBundleError.expired(notAfter: 1_000)) { try bundle.verify(now: .max) }
    }

    @Test func everySignatureBitMatters() {
        let (_, _, bundle) = makeBundle()
        for i in 0..<Signature.byteCount {
            for bit in [0, 3, 7] {
                var bytes = bundle.signature.bytes
                bytes[i] ^= 1 << UInt8(bit)
                let bad = KeyBundle(suite: bundle.suite, identity: bundle.identity, prekey: bundle.prekey,
                                    notAfter: bundle.notAfter, signature: Signature(bytes: bytes))
                #expect(throws: KeyBundleError.badSignature) { try bad.verify(now: 0) }
            }
        }
    }

    @Test func prekeyNotAfterAndIdentityAreSigned() {
        let (_, _, bundle) = makeBundle()
        let (other, _, _) = makeBundle(seed: 31)
        for i in [0, 15, 31] {
            var prekey = bundle.prekey.bytes
            prekey[i] ^= 0x10
            let bad = KeyBundle(suite: .suite1, identity: bundle.identity, prekey: PKEPublicKey(raw: Bytes32(prekey)!),
                                notAfter: bundle.notAfter, signature: bundle.signature)
            #expect(throws: KeyBundleError.badSignature) { try bad.verify(now: 0) }
        }
        for notAfter: UInt64 in [bundle.notAfter ^ 1, bundle.notAfter ^ (1 << 40), .max] {
            let bad = KeyBundle(suite: .suite1, identity: bundle.identity, prekey: bundle.prekey,
                                notAfter: notAfter, signature: bundle.signature)
            #expect(throws: KeyBundleError.badSignature) { try bad.verify(now: 0) }
        }
        let stolen = KeyBundle(suite: .suite1, identity: other.id, prekey: bundle.prekey,
                               notAfter: bundle.notAfter, signature: bundle.signature)
        #expect(throws: KeyBundleError.badSignature) { try stolen.verify(now: 0) }
        // The signature is checked before expiry: a forged, expired bundle is a bad signature.
        let forgedExpired = KeyBundle(suite: .suite1, identity: bundle.identity, prekey: bundle.prekey,
                                      notAfter: 0, signature: bundle.signature)
        #expect(throws: KeyBundleError.badSignature) { try forgedExpired.verify(now: 5) }
    }

    /// Suite 1 is the only suite, so a bundle of another suite cannot even be represented:
    /// its suite byte is rejected while decoding, before `verify` could report `.wrongSuite`.
    @Test func otherSuiteBytesAreRejectedWhenDecoding() throws {
        let (_, _, bundle) = makeBundle()
        var bytes = bundle.wireBytes
        #expect(bytes[0] == CipherSuiteID.suite1.rawValue)
        for suite: UInt8 in [0, 2, 3, 0xFF] {
            bytes[0] = suite
            #expect(throws: WireError.unsupportedSuite(suite)) { try KeyBundle(wireBytes: bytes) }
        }
    }

    @Test func bundleCodec() throws {
        let (_, _, bundle) = makeBundle()
        try checkCodec(bundle)
        #expect(bundle.wireBytes.count == 1 + 32 + 32 + 8 + 64)
        let decoded = try KeyBundle(wireBytes: bundle.wireBytes)
        try decoded.verify(now: 10)
    }
}

@Suite("Prekey store")
struct PrekeyStoreTests {
    @Test func keepsRecentPrekeysAndDeletesExactlyTheExpired() throws {
        var rng = SeededRandom(seed: 40)
        let identity = IdentityKey.generate(using: &rng)
        var store = PrekeyStore(gracePeriod: 50)
        let b100 = store.generate(identity: identity, notAfter: 100, using: &rng)
        let b200 = store.generate(identity: identity, notAfter: 200, using: &rng)
        let b300 = store.generate(identity: identity, notAfter: 300, using: &rng)
        for bundle in [b100, b200, b300] {
            try bundle.verify(now: 0)
            #expect(bundle.identity == identity.id)
            let secret = try #require(store.secret(for: bundle.prekey))
            #expect(secret.publicKey == bundle.prekey)
        }
        #expect(store.entries.count == 3)
        #expect(store.secret(for: PKESecretKey.generate(using: &rng).publicKey) == nil)

        let secret100 = store.secret(for: b100.prekey)!.wireBytes
        let secret200 = store.secret(for: b200.prekey)!.wireBytes
        #expect(containsRun(store.wireBytes, secret100))

        #expect(store.deleteExpired(now: 150) == 0, "100 + 50 has not passed at 150")
        #expect(store.entries.count == 3)
        #expect(store.deleteExpired(now: 151) == 1)
        #expect(store.secret(for: b100.prekey) == nil)
        #expect(store.secret(for: b200.prekey) != nil)
        #expect(store.secret(for: b300.prekey) != nil)
        let encoded = store.wireBytes
        #expect(!containsRun(encoded, secret100), "the deleted secret is gone from the stored form")
        #expect(containsRun(encoded, secret200))

        #expect(store.deleteExpired(now: 250) == 0)
        #expect(store.deleteExpired(now: 1_000) == 2)
        #expect(store.entries.isEmpty)
        #expect(!containsRun(store.wireBytes, secret200))
        #expect(store.wireBytes == [50, 0])
    }

    /// `notAfter + gracePeriod` must not wrap around: a prekey that never expires
    /// (`notAfter == .max`) or an unbounded grace period keeps the prekey.
    @Test func deadlineDoesNotOverflow() {
        var rng = SeededRandom(seed: 41)
        let identity = IdentityKey.generate(using: &rng)
        var forever = PrekeyStore()
        let bundle = forever.generate(identity: identity, notAfter: .max, using: &rng)
        #expect(forever.deleteExpired(now: 1_700_000_000) == 0)
        #expect(forever.deleteExpired(now: .max) == 0)
        #expect(forever.secret(for: bundle.prekey) != nil)

        var unbounded = PrekeyStore(gracePeriod: .max)
        let b = unbounded.generate(identity: identity, notAfter: 100, using: &rng)
        #expect(unbounded.deleteExpired(now: .max) == 0)
        #expect(unbounded.secret(for: b.prekey) != nil)
    }

    @Test func storeCodec() throws {
        var rng = SeededRandom(seed: 42)
        let identity = IdentityKey.generate(using: &rng)
        try checkCodec(PrekeyStore())
        try checkCodec(PrekeyStore(gracePeriod: 0))
        var store = PrekeyStore(gracePeriod: 3600)
        for i in 0..<5 {
            _ = store.generate(identity: identity, notAfter: UInt64(i) << 33, using: &rng)
            try checkCodec(store)
        }
        let decoded = try PrekeyStore(wireBytes: store.wireBytes)
        for (publicKey, entry) in store.entries {
            #expect(decoded.secret(for: publicKey) == entry.secret)
        }
    }

    @Test func unsortedOrDuplicatePrekeysAreRejected() throws {
        var rng = SeededRandom(seed: 43)
        let keys = (0..<2).map { _ in PKESecretKey.generate(using: &rng) }.sorted { $0.publicKey.raw < $1.publicKey.raw }
        func encode(_ secrets: [PKESecretKey]) -> [UInt8] {
            var writer = WireWriter()
            writer.writeVarint(UInt64(10))
            writer.writeVarint(secrets.count)
            for secret in secrets {
                writer.write(secret)
                writer.writeUInt64(7)
            }
            return writer.bytes
        }
        #expect(try PrekeyStore(wireBytes: encode(keys)).entries.count == 2)
        #expect(throws: WireError.invalidValue(field: "prekeys order")) { try PrekeyStore(wireBytes: encode(keys.reversed())) }
        #expect(throws: WireError.invalidValue(field: "prekeys order")) { try PrekeyStore(wireBytes: encode([keys[0], keys[0]])) }
        var tooMany = WireWriter()
        tooMany.writeVarint(UInt64(0))
        tooMany.writeVarint(PrekeyStore.maximumEntries + 1)
        #expect(throws: WireError.lengthExceedsLimit(field: "prekeys", limit: PrekeyStore.maximumEntries, actual: 1025)) {
            try PrekeyStore(wireBytes: tooMany.bytes)
        }
    }
}
