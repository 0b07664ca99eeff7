import DCGKAEncoding
import Testing

@Suite("LEB128 varints")
struct VarintTests {
    static let boundaries: [(UInt64, [UInt8])] = [
        (0, [0x00]),
        (1, [0x01]),
        (127, [0x7F]),
        (128, [0x80, 0x01]),
        (300, [0xAC, 0x02]),
        (16_383, [0xFF, 0x7F]),
        (16_384, [0x80, 0x80, 0x01]),
        (UInt64(UInt32.max), [0xFF, 0xFF, 0xFF, 0xFF, 0x0F]),
        ((1 << 63) - 1, [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]),
        (1 << 63, [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]),
        (UInt64.max, [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]),
    ]

    @Test("boundary values encode to their shortest LEB128 form and round-trip",
          arguments: boundaries.map { $0.0 })
    func boundaryValues(value: UInt64) throws {
        let expected = Self.boundaries.first { $0.0 == value }!.1
        var writer = WireWriter()
        writer.writeVarint(value)
        #expect(writer.bytes == expected)
        #expect(value.wireBytes == expected)
        var reader = WireReader(expected)
        #expect(try reader.readVarint() == value)
        #expect(reader.isAtEnd)
        try checkCodec(value)
    }

    @Test func intOverloadMatchesUInt64() {
        var a = WireWriter(), b = WireWriter()
        a.writeVarint(Int(123_456))
        b.writeVarint(UInt64(123_456))
        #expect(a.bytes == b.bytes)
    }

    @Test("non-canonical (over-long) forms are rejected", arguments: [
        [0x80, 0x00], [0xFF, 0x00], [0x80, 0x80, 0x00], [0x81, 0x80, 0x00],
        [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00],
        [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x80, 0x00],
    ] as [[UInt8]])
    func nonCanonical(bytes: [UInt8]) {
        #expect(throws: WireError.nonCanonicalVarint) { try UInt64(wireBytes: bytes) }
    }

    @Test("values beyond 64 bits are rejected", arguments: [
        [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02],
        [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7F],
        [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x81, 0x00],
        [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
        [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80],
    ] as [[UInt8]])
    func overflow(bytes: [UInt8]) {
        #expect(throws: WireError.varintOverflow) { try UInt64(wireBytes: bytes) }
    }

    @Test func truncatedVarints() {
        for bytes: [UInt8] in [[], [0x80], [0xFF, 0xFF], Array(repeating: 0xFF, count: 9)] {
            #expect(throws: WireError.truncated) { try UInt64(wireBytes: bytes) }
        }
    }

    /// Every input of one and two bytes: a decoded value re-encodes to exactly the input.
    @Test func allShortInputsAreCanonicalOrRejected() {
        var accepted = 0
        for a in 0...255 {
            let one = [UInt8(a)]
            if let v = try? UInt64(wireBytes: one) { accepted += 1; #expect(v.wireBytes == one) }
            for b in 0...255 {
                let two = [UInt8(a), UInt8(b)]
                if let v = try? UInt64(wireBytes: two) {
                    accepted += 1
                    if v.wireBytes != two { Issue.record("\(two) accepted as \(v)") }
                }
            }
        }
        // 128 one-byte values and 128·127 two-byte values (continuation then non-zero final byte).
        #expect(accepted == 128 + 128 * 127)
    }

    @Test func randomValuesRoundTrip() throws {
        var rng = TestRNG(seed: 7)
        for _ in 0..<2_000 {
            // Spread over all lengths: shift a random word right by a random amount.
            let v = rng.next() >> UInt64.random(in: 0...63, using: &rng)
            var reader = WireReader(v.wireBytes)
            #expect(try reader.readVarint() == v)
            #expect(reader.isAtEnd)
            #expect(v.wireBytes.count == max(1, (64 - v.leadingZeroBitCount + 6) / 7))
        }
    }

    @Test func fuzzedVarints() {
        var rng = TestRNG(seed: 8)
        let valid = Self.boundaries.map(\.1)
        fuzzDecode(UInt64.self, valid: valid, iterations: 3_000, using: &rng)
    }

    @Test func boundedVarint() throws {
        var reader = WireReader([0x0A, 0x0B])
        #expect(try reader.readBoundedVarint(field: "n", limit: 10) == 10)
        #expect(throws: WireError.lengthExceedsLimit(field: "n", limit: 10, actual: 11)) {
            try reader.readBoundedVarint(field: "n", limit: 10)
        }
        var huge = WireReader(UInt64.max.wireBytes)
        #expect(throws: WireError.lengthExceedsLimit(field: "n", limit: Int.max, actual: UInt64.max)) {
            try huge.readBoundedVarint(field: "n", limit: Int.max)
        }
    }
}
