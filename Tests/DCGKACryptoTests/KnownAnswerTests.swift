import DCGKACrypto
import DCGKAEncoding
import Testing

/// Published test vectors, run through the suite's own entry points.
@Suite("Known-answer tests")
struct KnownAnswerTests {
    let suite = Suite1()

    @Test("HKDF-SHA256, RFC 5869 test case 1")
    func hkdfCase1() {
        let okm = suite.kdf(
            ikm: [UInt8](repeating: 0x0B, count: 22), salt: hex("000102030405060708090a0b0c"),
            info: hex("f0f1f2f3f4f5f6f7f8f9"), length: 42)
        #expect(hexString(okm) == "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
    }

    @Test("HKDF-SHA256, RFC 5869 test case 3 (empty salt and info)")
    func hkdfCase3() {
        let okm = suite.kdf(ikm: [UInt8](repeating: 0x0B, count: 22), salt: [], info: [], length: 42)
        #expect(hexString(okm) == "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8")
        // "An empty salt means the hash-length zero string."
        #expect(okm == suite.kdf(ikm: [UInt8](repeating: 0x0B, count: 22), salt: [UInt8](repeating: 0, count: 32), info: [], length: 42))
    }

    @Test("Ed25519, RFC 8032 §7.1 test 1")
    func ed25519Test1() throws {
        let key = IdentityKey(seed: b32("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"))
        #expect(key.id.raw.hex == "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
        let signature = key.sign([])
        #expect(hexString(signature.bytes) == "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b")
        #expect(key.id.isValidSignature(signature, for: []))
        #expect(!key.id.isValidSignature(signature, for: [0]))
        #expect(key.wireBytes == hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"),
                "an identity key encodes as its RFC 8032 seed")
    }

    @Test("Ed25519, RFC 8032 §7.1 test 2 (one-byte message)")
    func ed25519Test2() {
        let key = IdentityKey(seed: b32("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb"))
        #expect(key.id.raw.hex == "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")
        #expect(hexString(key.sign([0x72].map { UInt8($0) }).bytes) == "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00")
    }

    @Test("SHA-256")
    func sha256() {
        #expect(suite.hash([]).hex == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(suite.hash(Array("abc".utf8)).hex == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test("ChaCha20-Poly1305, RFC 8439 §2.8.2")
    func chachaPoly() throws {
        let key = (0x80...0x9F).map { UInt8($0) }
        let nonce = hex("070000004041424344454647")
        let aad = hex("50515253c0c1c2c3c4c5c6c7")
        let plaintext = Array("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.".utf8)
        let sealed = suite.aeadSeal(key: key, nonce: nonce, aad: aad, plaintext: plaintext)
        #expect(hexString(sealed) == "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116" + "1ae10b594f09e26a7e902ecbd0600691")
        #expect(try suite.aeadOpen(key: key, nonce: nonce, aad: aad, ciphertext: sealed) == plaintext)
        #expect(suite.aeadOverhead == 16)
    }

    // RFC 9180 Appendix A.2.1: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305, base mode.
    static let info = hex("4f6465206f6e2061204772656369616e2055726e")
    static let ikmE = hex("909a9b35d3dc4713a5e72a4da274b55d3d3821a37e5d099e74a647db583a904b")
    static let ikmR = hex("1ac01f181fdf9f352797655161c58b75c656a6cc2716dcb66372da835542e1df")
    static let skEm = "f4ec9b33b792c372c1d2c2063507b684ef925b8c75a42dbcbf57d63ccd381600"
    static let pkEm = "1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a"
    static let skRm = "8057991eef8f1f1af18f4a9491d16a1ce333f695d4db8e38da75975c4478e0fb"
    static let pkRm = "4310ee97d88cc1f088a5576c77ab0cf5c3ac797f3d95139c6c84b5429c59662a"
    static let aad0 = hex("436f756e742d30")
    static let pt = hex("4265617574792069732074727574682c20747275746820626561757479")
    static let ct0 = "1c5250d8034ec2b784ba2cfd69dbdb8af406cfe3ff938e131f0def8c8b60b4db21993c62ce81883d2dd1b51a28"

    @Test("HPKE DeriveKeyPair, RFC 9180 A.2.1")
    func hpkeDeriveKeyPair() {
        let ephemeral = HPKEBase.deriveKeyPair(ikm: Self.ikmE)
        #expect(hexString(ephemeral.wireBytes) == Self.skEm)
        #expect(ephemeral.publicKey.raw.hex == Self.pkEm)
        let recipient = HPKEBase.deriveKeyPair(ikm: Self.ikmR)
        #expect(hexString(recipient.wireBytes) == Self.skRm)
        #expect(recipient.publicKey.raw.hex == Self.pkRm)
    }

    @Test("HPKE base mode seal/open, RFC 9180 A.2.1 sequence 0")
    func hpkeBaseMode() throws {
        let ephemeral = HPKEBase.deriveKeyPair(ikm: Self.ikmE)
        let recipient = PKESecretKey(secretBytes: b32(Self.skRm))
        #expect(recipient.publicKey.raw.hex == Self.pkRm)
        let sealed = try HPKEBase.seal(
            to: recipient.publicKey, info: Self.info, aad: Self.aad0, plaintext: Self.pt, ephemeral: ephemeral)
        #expect(hexString(sealed) == Self.pkEm + Self.ct0, "enc ‖ ciphertext ‖ tag")
        #expect(sealed.count == Self.pt.count + HPKEBase.overhead)
        let opened = try HPKEBase.open(with: recipient, info: Self.info, aad: Self.aad0, ciphertext: sealed)
        #expect(opened == Self.pt)
    }
}
