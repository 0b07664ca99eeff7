import Crypto
import DCGKACrypto
import DCGKAEncoding
import Foundation
import Testing

@Suite("HPKE base mode")
struct HPKETests {
    let suite = Suite1()

    @Test func roundTripThroughTheSuite() throws {
        var rng = SeededRandom(seed: 10)
        let recipient = PKESecretKey.generate(using: &rng)
        for length in [0, 1, 15, 16, 17, 64, 1000] {
            let plaintext = rng.bytes(length)
            let info = rng.bytes(length % 40), aad = rng.bytes(length % 23)
            let ct = try suite.pkeSeal(to: recipient.publicKey, info: info, aad: aad, plaintext: plaintext, using: &rng)
            #expect(ct.count == plaintext.count + suite.pkeOverhead)
            #expect(try suite.pkeOpen(with: recipient, info: info, aad: aad, ciphertext: ct) == plaintext)
        }
    }

    @Test func sealIsDeterministicGivenTheGeneratorAndFreshOtherwise() throws {
        var rng = SeededRandom(seed: 11)
        let recipient = PKESecretKey.generate(using: &rng).publicKey
        var r1 = SeededRandom(seed: 99), r2 = SeededRandom(seed: 99)
        let a = try suite.pkeSeal(to: recipient, info: [1], aad: [2], plaintext: [3], using: &r1)
        let b = try suite.pkeSeal(to: recipient, info: [1], aad: [2], plaintext: [3], using: &r2)
        #expect(a == b)
        let c = try suite.pkeSeal(to: recipient, info: [1], aad: [2], plaintext: [3], using: &r1)
        #expect(a != c, "a second ephemeral key is drawn")
        #expect(a.prefix(32) != c.prefix(32))
    }

    @Test("a ciphertext from HPKEBase.seal opens with swift-crypto's HPKE.Recipient")
    func interopOurSealTheirOpen() throws {
        var rng = SeededRandom(seed: 12)
        for _ in 0..<5 {
            let recipient = PKESecretKey.generate(using: &rng)
            let info = rng.bytes(20), aad = rng.bytes(7), plaintext = rng.bytes(50)
            let sealed = try HPKEBase.seal(
                to: recipient.publicKey, info: info, aad: aad, plaintext: plaintext,
                ephemeral: PKESecretKey.generate(using: &rng))
            let theirKey = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: recipient.wireBytes)
            #expect(Array(theirKey.publicKey.rawRepresentation) == recipient.publicKey.bytes)
            let ciphersuite = HPKE.Ciphersuite(kem: .Curve25519_HKDF_SHA256, kdf: .HKDF_SHA256, aead: .chaChaPoly)  // = .Curve25519_SHA256_ChachaPoly
            var receiver = try HPKE.Recipient(
                privateKey: theirKey, ciphersuite: ciphersuite, info: Data(info),
                encapsulatedKey: Data(sealed.prefix(HPKEBase.encapsulatedKeyLength)))
            let opened = try receiver.open(Data(sealed.dropFirst(HPKEBase.encapsulatedKeyLength)), authenticating: Data(aad))
            #expect(Array(opened) == plaintext)
        }
    }

    @Test("HPKEBase.open opens swift-crypto's HPKE.Sender output")
    func interopTheirSealOurOpen() throws {
        var rng = SeededRandom(seed: 13)
        for _ in 0..<5 {
            let recipient = PKESecretKey.generate(using: &rng)
            let info = rng.bytes(33), aad = rng.bytes(3), plaintext = rng.bytes(70)
            let theirPublic = try Curve25519.KeyAgreement.PublicKey(rawRepresentation: recipient.publicKey.bytes)
            var sender = try HPKE.Sender(
                recipientKey: theirPublic, ciphersuite: .Curve25519_SHA256_ChachaPoly, info: Data(info))
            let body = try sender.seal(plaintext, authenticating: aad)
            let ciphertext = Array(sender.encapsulatedKey) + Array(body)
            #expect(try HPKEBase.open(with: recipient, info: info, aad: aad, ciphertext: ciphertext) == plaintext)
            #expect(throws: DCGKACrypto.CryptoError.decryptionFailed) {
                try HPKEBase.open(with: recipient, info: info + [0], aad: aad, ciphertext: ciphertext)
            }
        }
    }

    @Test func everyByteFlipFails() throws {
        var rng = SeededRandom(seed: 14)
        let recipient = PKESecretKey.generate(using: &rng)
        let plaintext = rng.bytes(24)
        let ct = try suite.pkeSeal(to: recipient.publicKey, info: [9], aad: [8], plaintext: plaintext, using: &rng)
        for i in ct.indices {
            for bit: UInt8 in [0x01, 0x80] {
                var bad = ct
                bad[i] ^= bit
                do {
                    _ = try suite.pkeOpen(with: recipient, info: [9], aad: [8], ciphertext: bad)
                    // Flipping the top bit of the last byte of `enc` names the same X25519 point
                    // (X25519 ignores bit 255), which RFC 9180 nevertheless binds through kem_context.
                    Issue.record("byte \(i) bit \(bit) flipped and still opened")
                } catch {
                    #expect([DCGKACrypto.CryptoError.decryptionFailed, .allZeroSharedSecret].contains(error), "byte \(i): \(error)")
                }
            }
        }
    }

    @Test func truncationsFail() throws {
        var rng = SeededRandom(seed: 15)
        let recipient = PKESecretKey.generate(using: &rng)
        let ct = try suite.pkeSeal(to: recipient.publicKey, info: [], aad: [], plaintext: rng.bytes(10), using: &rng)
        for n in 0..<ct.count {
            #expect(throws: DCGKACrypto.CryptoError.self) {
                try suite.pkeOpen(with: recipient, info: [], aad: [], ciphertext: Array(ct.prefix(n)))
            }
            if n < HPKEBase.overhead {
                #expect(throws: DCGKACrypto.CryptoError.ciphertextTooShort) {
                    try suite.pkeOpen(with: recipient, info: [], aad: [], ciphertext: Array(ct.prefix(n)))
                }
            }
        }
        #expect(throws: DCGKACrypto.CryptoError.decryptionFailed) {
            try suite.pkeOpen(with: recipient, info: [], aad: [], ciphertext: ct + [0])
        }
    }

    @Test func wrongInfoAadOrKeyFails() throws {
        var rng = SeededRandom(seed: 16)
        let recipient = PKESecretKey.generate(using: &rng)
        let other = PKESecretKey.generate(using: &rng)
        let ct = try suite.pkeSeal(to: recipient.publicKey, info: [1, 2], aad: [3, 4], plaintext: [5], using: &rng)
        #expect(try suite.pkeOpen(with: recipient, info: [1, 2], aad: [3, 4], ciphertext: ct) == [5])
        #expect(throws: DCGKACrypto.CryptoError.decryptionFailed) { try suite.pkeOpen(with: recipient, info: [1], aad: [3, 4], ciphertext: ct) }
        #expect(throws: DCGKACrypto.CryptoError.decryptionFailed) { try suite.pkeOpen(with: recipient, info: [1, 2], aad: [3], ciphertext: ct) }
        #expect(throws: DCGKACrypto.CryptoError.decryptionFailed) { try suite.pkeOpen(with: recipient, info: [], aad: [], ciphertext: ct) }
        #expect(throws: DCGKACrypto.CryptoError.decryptionFailed) { try suite.pkeOpen(with: other, info: [1, 2], aad: [3, 4], ciphertext: ct) }
    }

    /// Points of small order on Curve25519 and its twist, and non-canonical encodings of them
    /// (libsodium's blocklist). X25519 of any clamped scalar with one of them is all zero.
    static let lowOrderPoints: [String] = [
        "0000000000000000000000000000000000000000000000000000000000000000",  // 0, order 2
        "0100000000000000000000000000000000000000000000000000000000000000",  // 1, order 4
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",  // order 8
        "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",  // order 8
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  // p - 1
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  // p (= 0)
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  // p + 1 (= 1)
        "0000000000000000000000000000000000000000000000000000000000000080",  // 0 with bit 255 set
        "0100000000000000000000000000000000000000000000000000000000000080",  // 1 with bit 255 set
    ]

    /// swift-crypto (BoringSSL backend) accepts these points and returns the all-zero secret
    /// without complaint; it is HPKEBase's own check that throws `.allZeroSharedSecret`.
    @Test("encrypting to a low-order X25519 point is rejected", arguments: lowOrderPoints)
    func sealToLowOrderPoint(point: String) throws {
        var rng = SeededRandom(seed: 17)
        let target = PKEPublicKey(raw: b32(point))
        #expect(throws: DCGKACrypto.CryptoError.allZeroSharedSecret) {
            try suite.pkeSeal(to: target, info: [], aad: [], plaintext: [1, 2, 3], using: &rng)
        }
        #expect(throws: DCGKACrypto.CryptoError.allZeroSharedSecret) {
            try HPKEBase.seal(to: target, info: [], aad: [], plaintext: [], ephemeral: PKESecretKey.generate(using: &rng))
        }
    }

    @Test("decrypting a ciphertext whose enc is a low-order point is rejected", arguments: lowOrderPoints)
    func openWithLowOrderEnc(point: String) throws {
        var rng = SeededRandom(seed: 18)
        let recipient = PKESecretKey.generate(using: &rng)
        let ciphertext = hex(point) + rng.bytes(16 + 5)
        #expect(throws: DCGKACrypto.CryptoError.allZeroSharedSecret) {
            try suite.pkeOpen(with: recipient, info: [], aad: [], ciphertext: ciphertext)
        }
    }

    @Test func ordinaryPointsAreNotRejected() throws {
        // The base point 9 and a random point are fine.
        var rng = SeededRandom(seed: 19)
        var nine = [UInt8](repeating: 0, count: 32)
        nine[0] = 9
        _ = try HPKEBase.seal(to: PKEPublicKey(raw: Bytes32(nine)!), info: [], aad: [], plaintext: [],
                              ephemeral: PKESecretKey.generate(using: &rng))
    }
}

@Suite("AEAD")
struct AEADTests {
    let suite = Suite1()

    @Test func roundTripAndTamper() throws {
        var rng = SeededRandom(seed: 20)
        let key = rng.bytes(32), nonce = rng.bytes(12), aad = rng.bytes(5)
        let plaintext = rng.bytes(40)
        let ct = suite.aeadSeal(key: key, nonce: nonce, aad: aad, plaintext: plaintext)
        #expect(ct.count == plaintext.count + suite.aeadOverhead)
        #expect(try suite.aeadOpen(key: key, nonce: nonce, aad: aad, ciphertext: ct) == plaintext)
        for i in ct.indices {
            var bad = ct
            bad[i] ^= 0x01
            #expect(throws: DCGKACrypto.CryptoError.decryptionFailed) { try suite.aeadOpen(key: key, nonce: nonce, aad: aad, ciphertext: bad) }
        }
        for n in 0..<ct.count {
            #expect(throws: DCGKACrypto.CryptoError.self) { try suite.aeadOpen(key: key, nonce: nonce, aad: aad, ciphertext: Array(ct.prefix(n))) }
        }
        #expect(throws: DCGKACrypto.CryptoError.ciphertextTooShort) { try suite.aeadOpen(key: key, nonce: nonce, aad: aad, ciphertext: Array(ct.prefix(15))) }
        var otherKey = key
        otherKey[0] ^= 1
        var otherNonce = nonce
        otherNonce[11] ^= 1
        #expect(throws: DCGKACrypto.CryptoError.decryptionFailed) { try suite.aeadOpen(key: otherKey, nonce: nonce, aad: aad, ciphertext: ct) }
        #expect(throws: DCGKACrypto.CryptoError.decryptionFailed) { try suite.aeadOpen(key: key, nonce: otherNonce, aad: aad, ciphertext: ct) }
        #expect(throws: DCGKACrypto.CryptoError.decryptionFailed) { try suite.aeadOpen(key: key, nonce: nonce, aad: aad + [0], ciphertext: ct) }
    }

    @Test func emptyPlaintext() throws {
        let key = [UInt8](repeating: 1, count: 32), nonce = [UInt8](repeating: 2, count: 12)
        let ct = suite.aeadSeal(key: key, nonce: nonce, aad: [], plaintext: [])
        #expect(ct.count == 16)
        #expect(try suite.aeadOpen(key: key, nonce: nonce, aad: [], ciphertext: ct) == [])
    }

    @Test func badKeyOrNonceLengthsThrowInsteadOfTrapping() {
        let ct = [UInt8](repeating: 0, count: 32)
        #expect(throws: DCGKACrypto.CryptoError.self) { try suite.aeadOpen(key: [1, 2], nonce: [UInt8](repeating: 0, count: 12), aad: [], ciphertext: ct) }
        #expect(throws: DCGKACrypto.CryptoError.self) { try suite.aeadOpen(key: [UInt8](repeating: 0, count: 32), nonce: [1], aad: [], ciphertext: ct) }
    }
}
