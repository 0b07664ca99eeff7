internal import DCGKAEncoding
internal import Crypto

/// Constants of `Noise_XX_25519_ChaChaPoly_SHA256` (Noise Protocol Framework, revision 34).
enum Noise {
    /// The largest Noise message, handshake or transport (§3).
    static let maximumMessageBytes = 65535
    /// ChaChaPoly's authentication tag.
    static let tagBytes = 16
    /// DHLEN of 25519.
    static let dhBytes = 32
    /// HASHLEN of SHA256.
    static let hashBytes = 32
    /// The most plaintext one transport message carries.
    static let maximumPlaintextBytes = maximumMessageBytes - tagBytes
}

/// A Noise CipherState (§5.1) with ChaChaPoly: a key (or none yet) and a 64-bit nonce counter.
///
/// The nonce is 32 bits of zeros followed by the counter in little-endian (§12.3). Nonce
/// 2^64 − 1 is reserved, so a state that reaches it refuses to encrypt or decrypt
/// (``LinkError/nonceExhausted``). The counter advances only when an operation succeeds, as the
/// spec requires of DecryptWithAd.
struct NoiseCipherState: Sendable, RedactedDescription {
    private var key: SymmetricKey?
    private(set) var nonce: UInt64 = 0

    init(key: [UInt8]? = nil) {
        self.key = key.map { SymmetricKey(data: $0) }
    }

    var hasKey: Bool { key != nil }

    /// SetNonce (§5.1); only the tests use it, to reach the reserved nonce.
    mutating func setNonce(_ nonce: UInt64) { self.nonce = nonce }

    static func nonceBytes(_ n: UInt64) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 12)
        for i in 0..<8 { bytes[4 + i] = UInt8(truncatingIfNeeded: n >> UInt64(8 * i)) }
        return bytes
    }

    /// EncryptWithAd: the plaintext itself while there is no key.
    mutating func encrypt(ad: [UInt8], plaintext: ArraySlice<UInt8>) throws(LinkError) -> [UInt8] {
        guard let key else { return Array(plaintext) }
        guard nonce != UInt64.max else { throw .nonceExhausted }
        let box = try! ChaChaPoly.seal(
            plaintext, using: key, nonce: try! ChaChaPoly.Nonce(data: Self.nonceBytes(nonce)), authenticating: ad)
        nonce += 1
        var out = [UInt8]()
        out.reserveCapacity(plaintext.count + Noise.tagBytes)
        out.append(contentsOf: box.ciphertext)
        out.append(contentsOf: box.tag)
        return out
    }

    /// DecryptWithAd: the ciphertext itself while there is no key.
    mutating func decrypt(ad: [UInt8], ciphertext: ArraySlice<UInt8>) throws(LinkError) -> [UInt8] {
        guard let key else { return Array(ciphertext) }
        guard nonce != UInt64.max else { throw .nonceExhausted }
        guard ciphertext.count >= Noise.tagBytes else { throw .truncatedMessage }
        guard let box = try? ChaChaPoly.SealedBox(
                nonce: try! ChaChaPoly.Nonce(data: Self.nonceBytes(nonce)),
                ciphertext: ciphertext.dropLast(Noise.tagBytes), tag: ciphertext.suffix(Noise.tagBytes)),
              let plaintext = try? ChaChaPoly.open(box, using: key, authenticating: ad)
        else { throw .decryptionFailed }
        nonce += 1
        return Array(plaintext)
    }
}
