import DCGKAEncoding
import Testing

/// SplitMix64: a tiny reproducible generator, so this target needs nothing but DCGKAEncoding.
struct TestRNG: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func bytes(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in UInt8.random(in: 0...255, using: &self) }
    }
    mutating func bytes32() -> Bytes32 { Bytes32(bytes(32))! }
}

// Hex literals, codec checks and decoder fuzzing live in the shared test-support target.
@_exported import DCGKATestSupport
