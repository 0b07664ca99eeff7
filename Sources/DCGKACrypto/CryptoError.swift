/// Failures of cryptographic operations. None of them carries secret material.
public enum CryptoError: Error, Equatable, Hashable, Sendable {
    /// A public key has the wrong length or is not a valid point encoding.
    case invalidPublicKey
    /// A secret key has the wrong length.
    case invalidSecretKey
    /// A Diffie-Hellman output was all zero bytes (the peer used a low-order point, §2.1).
    case allZeroSharedSecret
    /// An AEAD or HPKE ciphertext failed to authenticate or was malformed.
    case decryptionFailed
    /// A ciphertext is shorter than the minimum for its construction.
    case ciphertextTooShort
    /// An Ed25519 signature did not verify.
    case invalidSignature
    /// The suite named in the input is not this one.
    case suiteMismatch
}
