internal import DCGKAEncoding
internal import Crypto

/// HPKE base mode (RFC 9180) for DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and ChaCha20-Poly1305,
/// single-shot (one message per context, sequence number 0).
///
/// Written over swift-crypto's primitives rather than its `HPKE` type because the protocol needs
/// the ephemeral key to come from the injected generator (deterministic tests) and must reject
/// an all-zero X25519 output, which swift-crypto's HPKE does not check. The known-answer test of
/// RFC 9180 §A.2.1 and an interoperability test against swift-crypto's `HPKE.Recipient` keep it
/// honest.
public enum HPKEBase {
    static let kemID: [UInt8] = [0x00, 0x20]
    static let kemSuiteID: [UInt8] = Array("KEM".utf8) + kemID
    static let hpkeSuiteID: [UInt8] = Array("HPKE".utf8) + kemID + [0x00, 0x01, 0x00, 0x03]
    static let version: [UInt8] = Array("HPKE-v1".utf8)
    /// LabeledExtract("", "psk_id_hash", "") never changes in base mode.
    static let pskIDHash: [UInt8] = labeledExtract(salt: [], label: "psk_id_hash", ikm: [], suite: hpkeSuiteID)

    /// Length of the encapsulated key that precedes the ciphertext.
    public static let encapsulatedKeyLength = 32
    /// Bytes HPKE adds to a plaintext: the encapsulated key and the AEAD tag.
    public static let overhead = 32 + 16

    static func labeledExtract(salt: [UInt8], label: String, ikm: [UInt8], suite: [UInt8]) -> [UInt8] {
        HKDFSHA256.hmac(key: salt, version, suite, Array(label.utf8), ikm)
    }

    static func labeledExpand(prk: [UInt8], label: String, info: [UInt8], length: Int, suite: [UInt8]) -> [UInt8] {
        let labeledInfo = [UInt8(length >> 8), UInt8(length & 0xFF)] + version + suite + Array(label.utf8) + info
        return HKDFSHA256.expand(prk: prk, info: labeledInfo, length: length)
    }

    /// DeriveKeyPair of RFC 9180 §7.1.3 for X25519 (used by the known-answer test).
    public static func deriveKeyPair(ikm: [UInt8]) -> PKESecretKey {
        let prk = labeledExtract(salt: [], label: "dkp_prk", ikm: ikm, suite: kemSuiteID)
        let sk = labeledExpand(prk: prk, label: "sk", info: [], length: 32, suite: kemSuiteID)
        return PKESecretKey(secretBytes: Bytes32(sk)!)
    }

    static func dh(_ secret: PKESecretKey, _ publicKey: PKEPublicKey) throws(CryptoError) -> [UInt8] {
        guard let peer = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: publicKey.bytes) else {
            throw .invalidPublicKey
        }
        guard let shared = try? secret.key.sharedSecretFromKeyAgreement(with: peer) else {
            throw .invalidPublicKey
        }
        let bytes = shared.withUnsafeBytes { Array($0) }
        guard !ConstantTime.isZero(bytes) else { throw .allZeroSharedSecret }
        return bytes
    }

    static func keySchedule(sharedSecret: [UInt8], info: [UInt8]) -> (key: SymmetricKey, nonce: ChaChaPoly.Nonce) {
        let infoHash = labeledExtract(salt: [], label: "info_hash", ikm: info, suite: hpkeSuiteID)
        let context = [0x00] + pskIDHash + infoHash
        let secret = labeledExtract(salt: sharedSecret, label: "secret", ikm: [], suite: hpkeSuiteID)
        let key = labeledExpand(prk: secret, label: "key", info: context, length: 32, suite: hpkeSuiteID)
        let nonce = labeledExpand(prk: secret, label: "base_nonce", info: context, length: 12, suite: hpkeSuiteID)
        return (SymmetricKey(data: key), try! ChaChaPoly.Nonce(data: nonce))
    }

    static func sharedSecret(dh: [UInt8], enc: [UInt8], recipient: PKEPublicKey) -> [UInt8] {
        let prk = labeledExtract(salt: [], label: "eae_prk", ikm: dh, suite: kemSuiteID)
        return labeledExpand(prk: prk, label: "shared_secret", info: enc + recipient.bytes, length: 32, suite: kemSuiteID)
    }

    /// Encrypts to `recipient` with the given ephemeral key; returns `enc ‖ ciphertext ‖ tag`.
    public static func seal(
        to recipient: PKEPublicKey, info: [UInt8], aad: [UInt8], plaintext: [UInt8], ephemeral: PKESecretKey
    ) throws(CryptoError) -> [UInt8] {
        let enc = ephemeral.publicKey.bytes
        let dhOutput = try dh(ephemeral, recipient)
        let (key, nonce) = keySchedule(sharedSecret: sharedSecret(dh: dhOutput, enc: enc, recipient: recipient), info: info)
        guard let box = try? ChaChaPoly.seal(plaintext, using: key, nonce: nonce, authenticating: aad) else {
            throw .decryptionFailed
        }
        return enc + Array(box.ciphertext) + Array(box.tag)
    }

    /// Decrypts `enc ‖ ciphertext ‖ tag` with the recipient's secret key.
    public static func open(
        with secret: PKESecretKey, info: [UInt8], aad: [UInt8], ciphertext: [UInt8]
    ) throws(CryptoError) -> [UInt8] {
        guard ciphertext.count >= overhead else { throw .ciphertextTooShort }
        let enc = Array(ciphertext[0..<32])
        let dhOutput = try dh(secret, PKEPublicKey(raw: Bytes32(enc)!))
        let (key, nonce) = keySchedule(
            sharedSecret: sharedSecret(dh: dhOutput, enc: enc, recipient: secret.publicKey), info: info)
        let body = ciphertext[32..<(ciphertext.count - 16)]
        let tag = ciphertext[(ciphertext.count - 16)...]
        guard let box = try? ChaChaPoly.SealedBox(nonce: nonce, ciphertext: body, tag: tag),
              let plaintext = try? ChaChaPoly.open(box, using: key, authenticating: aad)
        else { throw .decryptionFailed }
        return Array(plaintext)
    }
}
