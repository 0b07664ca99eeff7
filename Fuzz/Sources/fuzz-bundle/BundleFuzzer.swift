import DCGKAEncoding
import DCGKACrypto
import DCGKAGroup
import FuzzSupport

// Target `bundle`: key bundles and prekey stores (§2.3). The first byte picks the decoder:
//   0  KeyBundle, then verify() at several times and for both the right and a wrong expectation
//   1  PrekeyStore, then lookups, expiry and a new prekey
//   2  IdentityKey (the first field of a persisted group)
// Whatever decodes must re-encode to its input.

@_cdecl("fuzz_bundle_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    fuzzMain(argc, argv, seeds: seeds) { data, size in fuzz(data ?? emptyInput, size) }
}

let decoders = 3

func seeds() -> [[UInt8]] {
    let fixtures = Fixtures.shared
    var out: [[UInt8]] = []
    for person in fixtures.people {
        out.append(selectorSeed(0, person.bundle.wireBytes))
        out.append(selectorSeed(1, person.prekeys.wireBytes))
        out.append(selectorSeed(2, person.identity.wireBytes))
    }
    var rng = SeededRandom(seed: 8)
    var store = PrekeyStore(gracePeriod: 60)
    for i in 0..<3 { _ = store.generate(identity: fixtures.a.identity, notAfter: Fixtures.now + UInt64(i) * 100, using: &rng) }
    out.append(selectorSeed(1, store.wireBytes))
    out.append(selectorSeed(1, PrekeyStore().wireBytes))
    return out
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    guard let selector = input.byte() else { return 0 }
    let bytes = input.rest()
    switch Int(selector) % decoders {
    case 0:
        guard let bundle = decodeCanonical(KeyBundle.self, bytes) else { return 0 }
        let valid = (try? bundle.verify(now: 0)) != nil
        for now in [0, Fixtures.now, bundle.notAfter, bundle.notAfter &+ 1, UInt64.max] {
            do {
                try bundle.verify(now: now)
                require(now <= bundle.notAfter, "an expired bundle verified")
            } catch .expired {
                require(now > bundle.notAfter, "a current bundle was called expired")
            } catch {
                require(!valid, "verify() disagrees with itself: \(error)")
            }
        }
        let known = Fixtures.shared.person(bundle.identity)?.bundle
        if let known, known != bundle, known.prekey == bundle.prekey, known.notAfter == bundle.notAfter,
           (try? bundle.verify(now: 0)) != nil {
            finding("a bundle with another signature than the real one verified")
        }
    case 1:
        guard let store = decodeCanonical(PrekeyStore.self, bytes) else { return 0 }
        for (key, entry) in store.entries {
            require(store.secret(for: key) == entry.secret, "secret(for:) returns another entry")
            require(entry.secret.publicKey == key, "a prekey entry is filed under another public key")
        }
        for now in [0, Fixtures.now, UInt64.max] {
            var copy = store
            let deleted = copy.deleteExpired(now: now)
            require(deleted == store.entries.count - copy.entries.count, "deleteExpired miscounts")
            checkRoundTrip(copy)
        }
        if store.entries.count < PrekeyStore.maximumEntries {
            var copy = store
            var rng = SeededRandom(seed: 5)
            let bundle = copy.generate(identity: Fixtures.shared.a.identity, notAfter: Fixtures.now, using: &rng)
            require((try? bundle.verify(now: Fixtures.now)) != nil, "a freshly generated bundle does not verify")
            require(copy.secret(for: bundle.prekey) != nil, "a generated prekey's secret is not kept")
            checkRoundTrip(copy)
        }
    default:
        guard let identity = decodeCanonical(IdentityKey.self, bytes) else { return 0 }
        let message: [UInt8] = [1, 2, 3]
        require(identity.id.isValidSignature(identity.sign(message), for: message), "an identity's signature does not verify")
    }
    return 0
}
