import DCGKACrypto
import DCGKAEncoding
import Testing

/// §8 for every type of DCGKACrypto: round trip, canonical bytes, truncation, random input.
@Suite("Crypto encodings")
struct CryptoCodecTests {
    @Test func cipherSuiteID() throws {
        try checkCodec(CipherSuiteID.suite1)
        #expect(CipherSuiteID.suite1.wireBytes == [1])
        #expect(CipherSuiteID.suite1.suite.id == .suite1)
        for raw in 0...255 where raw != 1 {
            #expect(throws: WireError.unsupportedSuite(UInt8(raw))) { try CipherSuiteID(wireBytes: [UInt8(raw)]) }
        }
    }

    @Test func keysAndSignatures() throws {
        var rng = SeededRandom(seed: 50)
        for _ in 0..<10 {
            let secret = PKESecretKey.generate(using: &rng)
            try checkCodec(secret)
            try checkCodec(secret.publicKey)
            #expect(secret.publicKey.wireBytes == secret.publicKey.bytes)
            #expect(secret.wireBytes.count == 32)
            #expect(try PKESecretKey(wireBytes: secret.wireBytes).publicKey == secret.publicKey)
            let identity = IdentityKey.generate(using: &rng)
            try checkCodec(identity)
            #expect(try IdentityKey(wireBytes: identity.wireBytes).id == identity.id)
            let signature = identity.sign(rng.bytes(10))
            try checkCodec(signature)
            #expect(signature.wireBytes == signature.bytes)
        }
    }

    /// X25519 secrets are stored as given (clamping happens inside X25519), so every 32-byte
    /// string is a canonical secret encoding and decodes to the key that re-encodes to it.
    @Test func unclampedSecretBytesAreKept() throws {
        let raw = [UInt8](repeating: 0xFF, count: 32)
        let key = try PKESecretKey(wireBytes: raw)
        #expect(key.wireBytes == raw)
        var clamped = raw
        clamped[0] &= 248; clamped[31] &= 127; clamped[31] |= 64
        let same = try PKESecretKey(wireBytes: clamped)
        #expect(same.publicKey == key.publicKey, "same scalar after clamping")
    }

    @Test func fuzzedCryptoTypes() throws {
        var rng = SeededRandom(seed: 51)
        let identity = IdentityKey.generate(using: &rng)
        fuzzDecode(CipherSuiteID.self, valid: [[1]], iterations: 500, using: &rng)
        let secrets = (0..<4).map { _ in PKESecretKey.generate(using: &rng) }
        fuzzDecode(PKEPublicKey.self, valid: secrets.map(\.publicKey.wireBytes), iterations: 2_000, using: &rng)
        fuzzDecode(PKESecretKey.self, valid: secrets.map(\.wireBytes), iterations: 2_000, using: &rng)
        fuzzDecode(IdentityKey.self, valid: [identity.wireBytes], iterations: 2_000, using: &rng)
        fuzzDecode(Signature.self, valid: [identity.sign([1]).wireBytes], iterations: 2_000, using: &rng)
        let bundles = (0..<4).map { i in
            KeyBundle(signing: secrets[i].publicKey, notAfter: rng.next() >> (16 * UInt64(i)), with: identity).wireBytes
        }
        let accepted = fuzzDecode(KeyBundle.self, valid: bundles, iterations: 3_000, using: &rng)
        #expect(accepted > 0)
        var stores: [[UInt8]] = [PrekeyStore().wireBytes]
        var store = PrekeyStore(gracePeriod: 77)
        for _ in 0..<3 {
            _ = store.generate(identity: identity, notAfter: rng.next(), using: &rng)
            stores.append(store.wireBytes)
        }
        fuzzDecode(PrekeyStore.self, valid: stores, iterations: 3_000, using: &rng)
    }
}
