import DCGKAEncoding
import Testing

/// A minimal composite, to exercise arrays and optionals the way protocol types use them.
private struct Pair: WireCodable, Equatable {
    var id: OperationID
    var note: [UInt8]
    static func decode(from reader: inout WireReader) throws(WireError) -> Pair {
        Pair(id: try reader.read(), note: try reader.readLengthPrefixed(field: "note", limit: 16))
    }
    func encode(to writer: inout WireWriter) {
        writer.write(id)
        writer.writeLengthPrefixed(note)
    }
}

@Suite("WireWriter and WireReader")
struct ReaderWriterTests {
    @Test func fixedWidthIntegersAreBigEndian() throws {
        var writer = WireWriter()
        writer.writeUInt8(0xAB)
        writer.writeUInt16(0x0102)
        writer.writeUInt64(0x0102_0304_0506_0708)
        writer.writeBool(true)
        writer.writeBool(false)
        #expect(writer.bytes == [0xAB, 0x01, 0x02, 1, 2, 3, 4, 5, 6, 7, 8, 1, 0])
        var reader = WireReader(writer.bytes)
        #expect(try reader.readUInt8() == 0xAB)
        #expect(try reader.readUInt16() == 0x0102)
        #expect(try reader.readUInt64() == 0x0102_0304_0506_0708)
        #expect(try reader.readBool(field: "b") == true)
        #expect(try reader.readBool(field: "b") == false)
        #expect(reader.isAtEnd)
        try reader.finish()
    }

    @Test func truncatedFixedWidthReads() throws {
        var r1 = WireReader([])
        #expect(throws: WireError.truncated) { try r1.readUInt8() }
        var r2 = WireReader([1])
        #expect(throws: WireError.truncated) { try r2.readUInt16() }
        var r3 = WireReader([1, 2, 3, 4, 5, 6, 7])
        #expect(throws: WireError.truncated) { try r3.readUInt64() }
        #expect(r3.offset == 0, "a failed read consumes nothing")
        var r4 = WireReader([1, 2, 3])
        #expect(throws: WireError.truncated) { try r4.readFixed(4) }
        #expect(throws: WireError.truncated) { try r4.readFixed(-1) }
        #expect(throws: WireError.truncated) { try r4.withFixed(4) { $0.count } }
        #expect(try r4.withFixed(3) { Array($0) } == [1, 2, 3])
    }

    @Test func onlyZeroAndOneAreBooleans() {
        for byte in 2...255 {
            var reader = WireReader([UInt8(byte)])
            #expect(throws: WireError.invalidValue(field: "flag")) { try reader.readBool(field: "flag") }
        }
    }

    @Test func lengthPrefixedBytes() throws {
        let payload: [UInt8] = Array(0..<200).map { UInt8($0) }
        var writer = WireWriter()
        writer.writeLengthPrefixed(payload)
        #expect(writer.bytes.prefix(2) == [0xC8, 0x01])
        var reader = WireReader(writer.bytes)
        #expect(try reader.readLengthPrefixed(field: "p", limit: 200) == payload)
        try reader.finish()

        var overLimit = WireReader(writer.bytes)
        #expect(throws: WireError.lengthExceedsLimit(field: "p", limit: 199, actual: 200)) {
            try overLimit.readLengthPrefixed(field: "p", limit: 199)
        }
        // A length larger than the input is truncation, caught before any allocation.
        var lying = WireReader([0xFF, 0xFF, 0xFF, 0x07, 1, 2, 3])
        #expect(throws: WireError.truncated) { try lying.readLengthPrefixed(field: "p", limit: Int.max) }
    }

    @Test func arraysAndOptionals() throws {
        var rng = TestRNG(seed: 1)
        let values = (0..<5).map { i in
            Pair(id: OperationID(sender: MemberID(rng.bytes32()), seq: UInt64(i) << 20), note: rng.bytes(i))
        }
        var writer = WireWriter()
        writer.writeArray(values)
        writer.writeOptional(values[0])
        writer.writeOptional(Optional<Pair>.none)
        writer.writeArray([Pair]())
        var reader = WireReader(writer.bytes)
        #expect(try reader.readArray(Pair.self, field: "a", limit: 5) == values)
        #expect(try reader.readOptional(Pair.self, field: "o") == values[0])
        #expect(try reader.readOptional(Pair.self, field: "o") == nil)
        #expect(try reader.readArray(Pair.self, field: "a", limit: 0) == [])
        try reader.finish()

        var limited = WireReader(writer.bytes)
        #expect(throws: WireError.lengthExceedsLimit(field: "a", limit: 4, actual: 5)) {
            try limited.readArray(Pair.self, field: "a", limit: 4)
        }
        var badFlag = WireReader([2])
        #expect(throws: WireError.invalidValue(field: "o")) { try badFlag.readOptional(Pair.self, field: "o") }
    }

    @Test func hugeCountDoesNotAllocate() {
        // Claims 2^40 elements with three bytes of input: rejected as truncated at once.
        var writer = WireWriter()
        writer.writeVarint(UInt64(1) << 40)
        writer.writeFixed([1, 2, 3])
        var reader = WireReader(writer.bytes)
        #expect(throws: WireError.truncated) { try reader.readArray(UInt64.self, field: "a", limit: Int.max) }
    }

    @Test func finishReportsTrailingBytes() throws {
        var reader = WireReader([1, 2, 3])
        _ = try reader.readUInt8()
        #expect(reader.remaining == 2)
        #expect(throws: WireError.trailingBytes(count: 2)) { try reader.finish() }
        #expect(throws: WireError.trailingBytes(count: 3)) { try UInt64(wireBytes: [0, 0, 0, 0]) }
    }

    @Test func compositeCodec() throws {
        var rng = TestRNG(seed: 2)
        let value = Pair(id: OperationID(sender: MemberID(rng.bytes32()), seq: 1 << 35), note: rng.bytes(16))
        try checkCodec(value)
        #expect(throws: WireError.lengthExceedsLimit(field: "note", limit: 16, actual: 17)) {
            var writer = WireWriter()
            writer.write(value.id)
            writer.writeLengthPrefixed(rng.bytes(17))
            return try Pair(wireBytes: writer.bytes)
        }
    }
}
