/// Reads canonical encodings (§8) back, checking every length against the input and a limit.
public struct WireReader: Sendable {
    public let bytes: [UInt8]
    public private(set) var offset: Int

    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
        self.offset = 0
    }

    public var remaining: Int { bytes.count - offset }
    public var isAtEnd: Bool { offset == bytes.count }

    public mutating func readUInt8() throws(WireError) -> UInt8 {
        guard offset < bytes.count else { throw .truncated }
        defer { offset += 1 }
        return bytes[offset]
    }

    /// Only 0 and 1 are canonical booleans.
    public mutating func readBool(field: String) throws(WireError) -> Bool {
        switch try readUInt8() {
        case 0: return false
        case 1: return true
        default: throw .invalidValue(field: field)
        }
    }

    public mutating func readUInt16() throws(WireError) -> UInt16 {
        guard remaining >= 2 else { throw .truncated }
        defer { offset += 2 }
        return UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
    }

    public mutating func readUInt64() throws(WireError) -> UInt64 {
        guard remaining >= 8 else { throw .truncated }
        var value: UInt64 = 0
        for i in 0..<8 { value = value << 8 | UInt64(bytes[offset + i]) }
        offset += 8
        return value
    }

    /// Unsigned LEB128; longer-than-needed forms and values beyond 64 bits are rejected.
    public mutating func readVarint() throws(WireError) -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        var count = 0
        while true {
            let byte = try readUInt8()
            count += 1
            let payload = UInt64(byte & 0x7F)
            if count == 10 && (payload > 1 || byte & 0x80 != 0) { throw .varintOverflow }
            value |= payload << shift
            if byte & 0x80 == 0 {
                if count > 1 && byte == 0 { throw .nonCanonicalVarint }
                return value
            }
            shift += 7
        }
    }

    /// A varint that must not exceed `limit` (a count, a length, an index).
    public mutating func readBoundedVarint(field: String, limit: Int) throws(WireError) -> Int {
        let value = try readVarint()
        guard value <= UInt64(limit) else {
            throw .lengthExceedsLimit(field: field, limit: limit, actual: value)
        }
        return Int(value)
    }

    public mutating func readFixed(_ count: Int) throws(WireError) -> [UInt8] {
        guard count >= 0, remaining >= count else { throw .truncated }
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }

    /// Reads `count` bytes into a caller-supplied closure without copying.
    public mutating func withFixed<R>(_ count: Int, _ body: (ArraySlice<UInt8>) -> R) throws(WireError) -> R {
        guard count >= 0, remaining >= count else { throw .truncated }
        defer { offset += count }
        return body(bytes[offset..<offset + count])
    }

    /// A varint length (at most `limit`, and never more than what is left), then that many bytes.
    public mutating func readLengthPrefixed(field: String, limit: Int) throws(WireError) -> [UInt8] {
        let length = try readBoundedVarint(field: field, limit: limit)
        guard length <= remaining else { throw .truncated }
        return try readFixed(length)
    }

    public mutating func read<T: WireDecodable>(_ type: T.Type = T.self) throws(WireError) -> T {
        try T.decode(from: &self)
    }

    /// A count (at most `limit`), then each element. Capacity is reserved only up to what the
    /// remaining input could hold, so a huge count cannot force a huge allocation.
    public mutating func readArray<T: WireDecodable>(
        _ type: T.Type = T.self, field: String, limit: Int
    ) throws(WireError) -> [T] {
        let count = try readBoundedVarint(field: field, limit: limit)
        guard count <= remaining else { throw .truncated }  // every element takes at least one byte
        var values: [T] = []
        values.reserveCapacity(count)
        for _ in 0..<count { values.append(try T.decode(from: &self)) }
        return values
    }

    public mutating func readOptional<T: WireDecodable>(_ type: T.Type = T.self, field: String) throws(WireError) -> T? {
        try readBool(field: field) ? try T.decode(from: &self) : nil
    }

    /// Fails unless every byte has been consumed.
    public func finish() throws(WireError) {
        guard isAtEnd else { throw .trailingBytes(count: remaining) }
    }
}
