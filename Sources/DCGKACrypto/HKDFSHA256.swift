internal import Crypto

/// HMAC-SHA256 and HKDF-SHA256 (RFC 2104, RFC 5869) over swift-crypto's incremental SHA-256.
///
/// The protocol derives many short keys (member secrets, ratchet steps, message chains, HPKE's
/// labeled extract/expand); swift-crypto's `HKDF`/`HMAC` allocate a `SymmetricKey` per call, which
/// made key derivation the largest non-curve cost in profiles. Same results, checked by the
/// RFC 5869 known-answer tests and against swift-crypto's `HKDF` in the test suite.
public enum HKDFSHA256 {
    static let blockSize = 64

    /// HMAC-SHA256(key, message parts concatenated).
    public static func hmac(key: [UInt8], _ parts: [UInt8]...) -> [UInt8] {
        hmac(key: key, parts: parts)
    }

    static func hmac(key: [UInt8], parts: [[UInt8]]) -> [UInt8] {
        let key = key.count > blockSize ? Array(SHA256.hash(data: key)) : key
        var innerPad = [UInt8](repeating: 0x36, count: blockSize)
        var outerPad = [UInt8](repeating: 0x5C, count: blockSize)
        for i in 0..<key.count {
            innerPad[i] ^= key[i]
            outerPad[i] ^= key[i]
        }
        var inner = SHA256()
        inner.update(data: innerPad)
        for part in parts where !part.isEmpty { inner.update(data: part) }
        var outer = SHA256()
        outer.update(data: outerPad)
        inner.finalize().withUnsafeBytes { outer.update(bufferPointer: $0) }
        return Array(outer.finalize())
    }

    /// HKDF-Extract(salt, ikm); an empty salt means 32 zero bytes (same HMAC result).
    public static func extract(salt: [UInt8], ikm: [UInt8]) -> [UInt8] {
        hmac(key: salt, parts: [ikm])
    }

    /// HKDF-Expand(prk, info, length), length ≤ 255 × 32.
    public static func expand(prk: [UInt8], info: [UInt8], length: Int) -> [UInt8] {
        precondition(length >= 0 && length <= 255 * 32, "HKDF-SHA256 output too long")
        var output: [UInt8] = []
        output.reserveCapacity(length + 32)
        var previous: [UInt8] = []
        var counter: UInt8 = 1
        while output.count < length {
            previous = hmac(key: prk, parts: [previous, info, [counter]])
            output += previous
            counter &+= 1
        }
        return Array(output.prefix(length))
    }

    public static func derive(ikm: [UInt8], salt: [UInt8], info: [UInt8], length: Int) -> [UInt8] {
        expand(prk: extract(salt: salt, ikm: ikm), info: info, length: length)
    }
}
