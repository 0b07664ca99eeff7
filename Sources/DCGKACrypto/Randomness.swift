public import DCGKAEncoding

/// Randomness is always passed in (`inout some RandomNumberGenerator`) so that protocol code
/// stays deterministic under test. Production code passes ``SystemRandom`` (the OS CSPRNG).
public typealias SystemRandom = SystemRandomNumberGenerator

/// A seeded generator for tests and the simulator. **Not** for production secrets: its whole
/// output follows from a 64-bit seed.
///
/// xoshiro256** seeded through SplitMix64: fast, well distributed, and reproducible across
/// platforms.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    public init(seed: UInt64) {
        var x = seed
        func splitMix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s0 = splitMix(); s1 = splitMix(); s2 = splitMix(); s3 = splitMix()
    }

    public mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = s3 << 45 | s3 >> 19
        return result
    }
}

extension RandomNumberGenerator {
    /// `count` random bytes.
    public mutating func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(count + 8)
        while out.count < count {
            var word = next()
            for _ in 0..<8 where out.count < count {
                out.append(UInt8(truncatingIfNeeded: word))
                word >>= 8
            }
        }
        return out
    }

    /// A 32-byte random value (seeds, group IDs).
    public mutating func bytes32() -> Bytes32 {
        Bytes32(bytes(32))!
    }
}

/// Comparison whose running time depends only on the lengths, never on where the inputs differ.
/// Inlinable, so that every caller gets a version specialized to its collection types: the
/// unspecialized generic walk cost several percent of a large simulation (small-order checks of
/// every received key, epoch confirmations).
public enum ConstantTime {
    @inlinable
    public static func equal<A: Collection, B: Collection>(_ a: A, _ b: B) -> Bool
    where A.Element == UInt8, B.Element == UInt8 {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for (x, y) in zip(a, b) { diff |= x ^ y }
        return diff == 0
    }

    @inlinable
    public static func isZero<A: Collection>(_ a: A) -> Bool where A.Element == UInt8 {
        var acc: UInt8 = 0
        for x in a { acc |= x }
        return acc == 0
    }
}
