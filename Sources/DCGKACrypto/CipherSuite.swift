public import DCGKAEncoding
internal import Crypto

/// The primitives one cipher suite provides (§2.1). Protocol layers call these and nothing else,
/// so adding a suite means adding a conformance and a ``CipherSuiteID`` case.
public protocol CipherSuite: Sendable {
    var id: CipherSuiteID { get }

    /// PKE encryption to `recipient`; `info` binds context, `aad` is authenticated but not encrypted.
    func pkeSeal<R: RandomNumberGenerator>(
        to recipient: PKEPublicKey, info: [UInt8], aad: [UInt8], plaintext: [UInt8], using rng: inout R
    ) throws(CryptoError) -> [UInt8]

    func pkeOpen(with secret: PKESecretKey, info: [UInt8], aad: [UInt8], ciphertext: [UInt8]) throws(CryptoError) -> [UInt8]

    /// Bytes a PKE ciphertext adds to its plaintext.
    var pkeOverhead: Int { get }

    /// HKDF (extract then expand). An empty salt means the hash-length zero string.
    func kdf(ikm: [UInt8], salt: [UInt8], info: [UInt8], length: Int) -> [UInt8]
    /// The two halves of ``kdf(ikm:salt:info:length:)``, for deriving many keys from one input
    /// (one extract, then one expand per key: the same outputs as separate `kdf` calls).
    func kdfExtract(ikm: [UInt8], salt: [UInt8]) -> [UInt8]
    func kdfExpand(prk: [UInt8], info: [UInt8], length: Int) -> [UInt8]

    /// AEAD encryption with a 32-byte key and a 12-byte nonce.
    func aeadSeal(key: [UInt8], nonce: [UInt8], aad: [UInt8], plaintext: [UInt8]) -> [UInt8]
    func aeadOpen(key: [UInt8], nonce: [UInt8], aad: [UInt8], ciphertext: [UInt8]) throws(CryptoError) -> [UInt8]
    var aeadOverhead: Int { get }

    func hash(_ bytes: [UInt8]) -> Bytes32
}

/// Suite 1: Ed25519, HPKE base mode with DHKEM(X25519, HKDF-SHA256)/HKDF-SHA256/ChaCha20-Poly1305,
/// HKDF-SHA256, ChaCha20-Poly1305 and SHA-256, all from swift-crypto.
public struct Suite1: CipherSuite {
    public init() {}
    public var id: CipherSuiteID { .suite1 }
    public var pkeOverhead: Int { HPKEBase.overhead }
    public var aeadOverhead: Int { 16 }

    public func pkeSeal<R: RandomNumberGenerator>(
        to recipient: PKEPublicKey, info: [UInt8], aad: [UInt8], plaintext: [UInt8], using rng: inout R
    ) throws(CryptoError) -> [UInt8] {
        try HPKEBase.seal(to: recipient, info: info, aad: aad, plaintext: plaintext,
                          ephemeral: PKESecretKey.generate(using: &rng))
    }

    public func pkeOpen(with secret: PKESecretKey, info: [UInt8], aad: [UInt8], ciphertext: [UInt8]) throws(CryptoError) -> [UInt8] {
        try HPKEBase.open(with: secret, info: info, aad: aad, ciphertext: ciphertext)
    }

    public func kdf(ikm: [UInt8], salt: [UInt8], info: [UInt8], length: Int) -> [UInt8] {
        HKDFSHA256.derive(ikm: ikm, salt: salt, info: info, length: length)
    }

    public func kdfExtract(ikm: [UInt8], salt: [UInt8]) -> [UInt8] { HKDFSHA256.extract(salt: salt, ikm: ikm) }

    public func kdfExpand(prk: [UInt8], info: [UInt8], length: Int) -> [UInt8] {
        HKDFSHA256.expand(prk: prk, info: info, length: length)
    }

    public func aeadSeal(key: [UInt8], nonce: [UInt8], aad: [UInt8], plaintext: [UInt8]) -> [UInt8] {
        let box = try! ChaChaPoly.seal(
            plaintext, using: SymmetricKey(data: key), nonce: try! ChaChaPoly.Nonce(data: nonce), authenticating: aad)
        return Array(box.ciphertext) + Array(box.tag)
    }

    public func aeadOpen(key: [UInt8], nonce: [UInt8], aad: [UInt8], ciphertext: [UInt8]) throws(CryptoError) -> [UInt8] {
        guard ciphertext.count >= 16, key.count == 32, nonce.count == 12 else { throw .ciphertextTooShort }
        guard let nonceValue = try? ChaChaPoly.Nonce(data: nonce),
              let box = try? ChaChaPoly.SealedBox(
                nonce: nonceValue, ciphertext: ciphertext.dropLast(16), tag: ciphertext.suffix(16)),
              let plaintext = try? ChaChaPoly.open(box, using: SymmetricKey(data: key), authenticating: aad)
        else { throw .decryptionFailed }
        return Array(plaintext)
    }

    public func hash(_ bytes: [UInt8]) -> Bytes32 {
        SHA256.hash(data: bytes).withUnsafeBytes { Bytes32($0)! }
    }
}
