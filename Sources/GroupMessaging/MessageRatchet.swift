public import DCGKAEncoding
public import DCGKACrypto

/// The §7 derivations.
///
/// ```
/// chain_0                       = HKDF(ikm: I, salt: -, info: "DCGKA message chain", length 32)
/// (key_i ‖ nonce_i ‖ chain_i+1) = HKDF(ikm: chain_i, salt: -, info: "DCGKA message key", length 32 + 12 + 32)
/// ```
public enum MessageRatchet {
    public static let chainLabel: [UInt8] = Array("DCGKA message chain".utf8)
    public static let keyLabel: [UInt8] = Array("DCGKA message key".utf8)
    public static let keyLength = 32
    public static let nonceLength = 12

    /// `chain_0` of the epoch that update secret `updateSecret` starts.
    public static func initialChain(updateSecret: Bytes32, suite: any CipherSuite) -> Bytes32 {
        Bytes32(suite.kdf(ikm: updateSecret.bytes, salt: [], info: chainLabel, length: 32))!
    }

    /// One step: `(key_i, nonce_i, chain_i+1)` from `chain_i`.
    public static func step(_ chain: Bytes32, suite: any CipherSuite) -> (key: MessageKey, next: Bytes32) {
        let out = suite.kdf(ikm: chain.bytes, salt: [], info: keyLabel, length: keyLength + nonceLength + 32)
        let key = MessageKey(
            key: Bytes32(out[0..<keyLength])!,
            nonce: Array(out[keyLength..<keyLength + nonceLength]))
        return (key, Bytes32(out[(keyLength + nonceLength)...])!)
    }
}

/// One message's AEAD key and nonce.
public struct MessageKey: Sendable, Equatable, Hashable {
    public var key: Bytes32
    public var nonce: [UInt8]

    public init(key: Bytes32, nonce: [UInt8]) {
        self.key = key
        self.nonce = nonce
    }
}

extension MessageKey: RedactedDescription {}
