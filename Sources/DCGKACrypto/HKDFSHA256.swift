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
        bytes(of: hmacDigest(key: key) { inner in
            for part in parts where !part.isEmpty { part.withUnsafeBytes { inner.update(bufferPointer: $0) } }
        })
    }

    /// HMAC with the message fed by `message` into the inner hash; the padded keys live on the
    /// stack (this runs for every ratchet step and message key, so allocations matter).
    @inline(__always)
    static func hmacDigest(key: [UInt8], message: (inout SHA256) -> Void) -> SHA256Digest {
        let key = key.count > blockSize ? bytes(of: SHA256.hash(data: key)) : key
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 2 * blockSize) { pads in
            for i in 0..<blockSize {
                pads[i] = 0x36
                pads[blockSize + i] = 0x5C
            }
            for (i, byte) in key.enumerated() {
                pads[i] ^= byte
                pads[blockSize + i] ^= byte
            }
            let all = UnsafeRawBufferPointer(pads)
            var inner = SHA256()
            inner.update(bufferPointer: UnsafeRawBufferPointer(rebasing: all[0..<blockSize]))
            message(&inner)
            let innerDigest = inner.finalize()
            var outer = SHA256()
            outer.update(bufferPointer: UnsafeRawBufferPointer(rebasing: all[blockSize..<(2 * blockSize)]))
            innerDigest.withUnsafeBytes { outer.update(bufferPointer: $0) }
            return outer.finalize()
        }
    }

    @inline(__always)
    static func bytes(of digest: SHA256Digest) -> [UInt8] {
        digest.withUnsafeBytes { [UInt8]($0) }
    }

    /// HKDF-Extract(salt, ikm); an empty salt means 32 zero bytes (same HMAC result).
    public static func extract(salt: [UInt8], ikm: [UInt8]) -> [UInt8] {
        bytes(of: hmacDigest(key: salt) { inner in ikm.withUnsafeBytes { inner.update(bufferPointer: $0) } })
    }

    /// HKDF-Expand(prk, info, length), length ≤ 255 × 32.
    public static func expand(prk: [UInt8], info: [UInt8], length: Int) -> [UInt8] {
        precondition(length >= 0 && length <= 255 * 32, "HKDF-SHA256 output too long")
        var output: [UInt8] = []
        output.reserveCapacity(length + 32)
        var previous: SHA256Digest?
        var counter: UInt8 = 1
        while output.count < length {
            let block = hmacDigest(key: prk) { inner in
                previous?.withUnsafeBytes { inner.update(bufferPointer: $0) }
                info.withUnsafeBytes { inner.update(bufferPointer: $0) }
                withUnsafeBytes(of: counter) { inner.update(bufferPointer: $0) }
            }
            block.withUnsafeBytes { output.append(contentsOf: $0) }
            previous = block
            counter &+= 1
        }
        if output.count > length { output.removeLast(output.count - length) }
        return output
    }

    public static func derive(ikm: [UInt8], salt: [UInt8], info: [UInt8], length: Int) -> [UInt8] {
        expand(prk: extract(salt: salt, ikm: ikm), info: info, length: length)
    }
}
