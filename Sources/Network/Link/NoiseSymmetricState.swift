internal import DCGKAEncoding
internal import Crypto

/// A Noise SymmetricState (§5.2) with SHA-256: the chaining key `ck`, the handshake hash `h` and
/// the CipherState that MixKey keys.
struct NoiseSymmetricState: Sendable, RedactedDescription {
    private(set) var cipher = NoiseCipherState()
    private var chainingKey: [UInt8]
    /// `h`: every byte of the handshake so far, hashed; after the handshake, the channel binding.
    private(set) var hash: [UInt8]

    /// InitializeSymmetric: `h` is the protocol name padded with zeros to 32 bytes, or its hash
    /// when longer; `ck = h`.
    init(protocolName: [UInt8]) {
        if protocolName.count <= Noise.hashBytes {
            hash = protocolName + [UInt8](repeating: 0, count: Noise.hashBytes - protocolName.count)
        } else {
            hash = Self.sha256(protocolName)
        }
        chainingKey = hash
    }

    static func sha256(_ parts: [UInt8]...) -> [UInt8] {
        var hasher = SHA256()
        for part in parts { hasher.update(data: part) }
        return Array(hasher.finalize())
    }

    static func hmac(key: [UInt8], _ data: [UInt8]) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: data, using: SymmetricKey(data: key)))
    }

    /// Noise's HKDF (§4.3): `temp = HMAC(ck, ikm)`, `out1 = HMAC(temp, 0x01)`,
    /// `out(i) = HMAC(temp, out(i-1) ‖ i)`; two or three outputs of 32 bytes.
    static func hkdf(chainingKey: [UInt8], inputKeyMaterial: [UInt8], outputs: Int) -> [[UInt8]] {
        precondition(outputs == 2 || outputs == 3)
        let temp = hmac(key: chainingKey, inputKeyMaterial)
        var result: [[UInt8]] = []
        var previous: [UInt8] = []
        for i in 1...outputs {
            previous = hmac(key: temp, previous + [UInt8(i)])
            result.append(previous)
        }
        return result
    }

    /// MixKey: `ck, k = HKDF(ck, ikm)`; the CipherState gets `k` with nonce 0.
    mutating func mixKey(_ inputKeyMaterial: [UInt8]) {
        let out = Self.hkdf(chainingKey: chainingKey, inputKeyMaterial: inputKeyMaterial, outputs: 2)
        chainingKey = out[0]
        cipher = NoiseCipherState(key: out[1])  // HASHLEN is 32: no truncation needed.
    }

    /// MixHash: `h = SHA256(h ‖ data)`.
    mutating func mixHash(_ data: [UInt8]) {
        hash = Self.sha256(hash, data)
    }

    /// EncryptAndHash: encrypts with `h` as associated data (or copies while there is no key), then
    /// mixes the ciphertext into `h`.
    mutating func encryptAndHash(_ plaintext: [UInt8]) throws(LinkError) -> [UInt8] {
        let ciphertext = try cipher.encrypt(ad: hash, plaintext: plaintext[...])
        mixHash(ciphertext)
        return ciphertext
    }

    /// DecryptAndHash: the inverse of ``encryptAndHash(_:)``; `h` changes only if the tag verifies.
    mutating func decryptAndHash(_ ciphertext: ArraySlice<UInt8>) throws(LinkError) -> [UInt8] {
        let plaintext = try cipher.decrypt(ad: hash, ciphertext: ciphertext)
        mixHash(Array(ciphertext))
        return plaintext
    }

    /// Split: the two transport CipherStates, initiator → responder first.
    func split() -> (initiatorToResponder: NoiseCipherState, responderToInitiator: NoiseCipherState) {
        let out = Self.hkdf(chainingKey: chainingKey, inputKeyMaterial: [], outputs: 2)
        return (NoiseCipherState(key: out[0]), NoiseCipherState(key: out[1]))
    }
}
