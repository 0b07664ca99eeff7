/// Appends the canonical encoding (§8) of values to a byte buffer.
///
/// Integers are either fixed-width big-endian or unsigned LEB128 in its shortest form;
/// byte strings and collections carry a varint length or count in front.
public struct WireWriter: Sendable {
    public var bytes: [UInt8]

    @inlinable
    public init(capacity: Int = 64) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    @inlinable
    public mutating func writeUInt8(_ value: UInt8) { bytes.append(value) }

    @inlinable
    public mutating func writeBool(_ value: Bool) { bytes.append(value ? 1 : 0) }

    @inlinable
    public mutating func writeUInt16(_ value: UInt16) {
        bytes.append(UInt8(truncatingIfNeeded: value >> 8))
        bytes.append(UInt8(truncatingIfNeeded: value))
    }

    @inlinable
    public mutating func writeUInt64(_ value: UInt64) {
        for shift in stride(from: 56, through: 0, by: -8) {
            bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift)))
        }
    }

    /// Unsigned LEB128, shortest form.
    @inlinable
    public mutating func writeVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    @inlinable
    public mutating func writeVarint(_ value: Int) { writeVarint(UInt64(value)) }

    /// Bytes of a length both sides know (keys, hashes): no length prefix.
    @inlinable
    public mutating func writeFixed<C: Collection>(_ value: C) where C.Element == UInt8 {
        bytes.append(contentsOf: value)
    }

    /// A varint length, then the bytes.
    @inlinable
    public mutating func writeLengthPrefixed<C: Collection>(_ value: C) where C.Element == UInt8 {
        writeVarint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    @inlinable
    public mutating func write<T: WireEncodable>(_ value: T) { value.encode(to: &self) }

    /// A varint count, then each element.
    @inlinable
    public mutating func writeArray<T: WireEncodable>(_ values: [T]) {
        writeVarint(UInt64(values.count))
        for value in values { value.encode(to: &self) }
    }

    /// A presence byte (0 or 1), then the value when present.
    @inlinable
    public mutating func writeOptional<T: WireEncodable>(_ value: T?) {
        if let value {
            writeUInt8(1)
            value.encode(to: &self)
        } else {
            writeUInt8(0)
        }
    }
}
