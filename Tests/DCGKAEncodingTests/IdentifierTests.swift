import DCGKAEncoding
import Testing

@Suite("Bytes32 and identifiers")
struct IdentifierTests {
    @Test func bytes32RoundTripsItsBytes() throws {
        var rng = TestRNG(seed: 3)
        for _ in 0..<200 {
            let raw = rng.bytes(32)
            let value = try #require(Bytes32(raw))
            #expect(value.bytes == raw)
            #expect(value.wireBytes == raw, "the encoding is the 32 bytes themselves")
            #expect(value.hex == raw.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined())
            #expect(Bytes32(raw[...]) == value, "any collection works")
        }
    }

    @Test func bytes32RejectsOtherLengths() {
        for n in [0, 1, 31, 33, 64] {
            #expect(Bytes32([UInt8](repeating: 7, count: n)) == nil)
            #expect(MemberID(bytes: [UInt8](repeating: 7, count: n)) == nil)
        }
    }

    @Test func zero() {
        #expect(Bytes32.zero.isZero)
        #expect(Bytes32.zero.bytes == [UInt8](repeating: 0, count: 32))
        var last = [UInt8](repeating: 0, count: 32)
        last[31] = 1
        #expect(!(Bytes32(last)!.isZero))
        #expect(Bytes32.zero < Bytes32(last)!)
    }

    @Test func orderingIsLexicographicByteOrder() {
        var rng = TestRNG(seed: 4)
        var values: [[UInt8]] = (0..<300).map { _ in rng.bytes(32) }
        // Near-equal pairs differing late, and in each word.
        for i in [0, 7, 8, 15, 16, 23, 24, 31] {
            var a = rng.bytes(32)
            values.append(a)
            a[i] &+= 1
            values.append(a)
        }
        for _ in 0..<2_000 {
            let a = values.randomElement(using: &rng)!, b = values.randomElement(using: &rng)!
            let x = Bytes32(a)!, y = Bytes32(b)!
            #expect((x < y) == a.lexicographicallyPrecedes(b))
            #expect((x == y) == (a == b))
            #expect((MemberID(x) < MemberID(y)) == (x < y))
            #expect((GroupID(x) < GroupID(y)) == (x < y))
        }
    }

    @Test func descriptionIsShortHexPrefix() {
        let value = Bytes32(hex("0a0b0c0d" + String(repeating: "ff", count: 28)))!
        #expect(value.description == "0a0b0c0d")
        #expect(Bytes32.zero.description == "00000000")
        #expect(MemberID(value).description == "0a0b0c0d")
    }

    @Test func identifierCodecs() throws {
        var rng = TestRNG(seed: 5)
        for _ in 0..<20 {
            let raw = rng.bytes32()
            try checkCodec(raw)
            try checkCodec(MemberID(raw))
            try checkCodec(GroupID(raw))
            #expect(MemberID(raw).wireBytes == raw.bytes)
            #expect(GroupID(raw).wireBytes == raw.bytes)
            #expect(MemberID(bytes: raw.bytes)?.bytes == raw.bytes)
        }
        try checkCodec(Bytes32.zero)
    }

    @Test(arguments: [0, 1, 127, 128, 1 << 32, 1 << 63, UInt64.max] as [UInt64])
    func operationIDCodec(seq: UInt64) throws {
        var rng = TestRNG(seed: seq)
        let id = OperationID(sender: MemberID(rng.bytes32()), seq: seq)
        try checkCodec(id)
        #expect(id.wireBytes == id.sender.bytes + seq.wireBytes)
    }

    @Test func operationIDOrdering() {
        let a = MemberID(Bytes32(hex("01" + String(repeating: "00", count: 31)))!)
        let b = MemberID(Bytes32(hex("02" + String(repeating: "00", count: 31)))!)
        #expect(OperationID(sender: a, seq: 100) < OperationID(sender: b, seq: 1))
        #expect(OperationID(sender: a, seq: 1) < OperationID(sender: a, seq: 2))
        #expect(!(OperationID(sender: a, seq: 2) < OperationID(sender: a, seq: 2)))
        #expect(OperationID(sender: a, seq: 3).description == "01000000#3")
    }

    @Test func fuzzedIdentifiers() {
        var rng = TestRNG(seed: 6)
        let valid = (0..<8).map { _ in rng.bytes32().wireBytes }
        // Only exactly 32 bytes decode; each decoded value re-encodes to its input.
        let accepted = fuzzDecode(Bytes32.self, valid: valid, iterations: 2_000, using: &rng)
        #expect(accepted > 0)
        fuzzDecode(MemberID.self, valid: valid, iterations: 2_000, using: &rng)
        fuzzDecode(GroupID.self, valid: valid, iterations: 2_000, using: &rng)
        let ops = (0..<8).map { i in
            OperationID(sender: MemberID(rng.bytes32()), seq: rng.next() >> (8 * UInt64(i))).wireBytes
        }
        fuzzDecode(OperationID.self, valid: ops, iterations: 3_000, using: &rng)
    }
}
