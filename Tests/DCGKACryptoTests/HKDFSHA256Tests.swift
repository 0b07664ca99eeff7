import Testing
import Crypto
import DCGKACrypto

@Suite("HKDF-SHA256 without SymmetricKey")
struct HKDFSHA256Tests {
    @Test("agrees with swift-crypto's HKDF and HMAC on seeded random inputs")
    func agreesWithSwiftCrypto() {
        var rng = SeededRandom(seed: 5869)
        for round in 0..<300 {
            let ikm = rng.bytes(Int(rng.next() % 80))
            let salt = rng.bytes(round % 7 == 0 ? 0 : Int(rng.next() % 100))
            let info = rng.bytes(Int(rng.next() % 40))
            let length = 1 + Int(rng.next() % 120)
            let ours = HKDFSHA256.derive(ikm: ikm, salt: salt, info: info, length: length)
            let theirs = HKDF<SHA256>.deriveKey(
                inputKeyMaterial: SymmetricKey(data: ikm), salt: salt, info: info, outputByteCount: length
            ).withUnsafeBytes { Array($0) }
            #expect(ours == theirs)
            let mac = HKDFSHA256.hmac(key: salt, ikm, info)
            let reference = Array(HMAC<SHA256>.authenticationCode(for: ikm + info, using: SymmetricKey(data: salt)))
            #expect(mac == reference)
        }
    }
}
