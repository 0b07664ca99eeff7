/// Thirty-two bytes held inline: identity keys, group IDs, hashes, seeds.
///
/// Stored as four big-endian words so that hashing and comparison are cheap and the
/// ordering of values equals the lexicographic ordering of their bytes (§6.3 sorts
/// recipients canonically by it).
public struct Bytes32: Hashable, Comparable, Sendable, CustomStringConvertible {
    @usableFromInline var w0: UInt64
    @usableFromInline var w1: UInt64
    @usableFromInline var w2: UInt64
    @usableFromInline var w3: UInt64

    public static let zero = Bytes32(w0: 0, w1: 0, w2: 0, w3: 0)

    @usableFromInline
    init(w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64) {
        self.w0 = w0; self.w1 = w1; self.w2 = w2; self.w3 = w3
    }

    /// Returns nil unless `bytes` holds exactly 32 bytes.
    @inlinable
    public init?<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        guard bytes.count == 32 else { return nil }
        var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        var i = 0
        for byte in bytes {
            let b = UInt64(byte)
            switch i >> 3 {
            case 0: words.0 = words.0 << 8 | b
            case 1: words.1 = words.1 << 8 | b
            case 2: words.2 = words.2 << 8 | b
            default: words.3 = words.3 << 8 | b
            }
            i += 1
        }
        self.init(w0: words.0, w1: words.1, w2: words.2, w3: words.3)
    }

    @inlinable
    public var bytes: [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        for (k, w) in [w0, w1, w2, w3].enumerated() {
            for j in 0..<8 { out[k * 8 + j] = UInt8(truncatingIfNeeded: w >> UInt64(56 - 8 * j)) }
        }
        return out
    }

    public var isZero: Bool { (w0 | w1 | w2 | w3) == 0 }

    /// The first eight bytes as a big-endian integer (for scanning byte strings for many values at once).
    @inlinable public var leadingWord: UInt64 { w0 }

    /// Constant time: the same work whichever bytes differ, because these values are often secrets
    /// (seeds, ratchet states, member secrets) and `==` must not leak where they differ (§2.1).
    @inlinable
    public static func == (lhs: Bytes32, rhs: Bytes32) -> Bool {
        ((lhs.w0 ^ rhs.w0) | (lhs.w1 ^ rhs.w1) | (lhs.w2 ^ rhs.w2) | (lhs.w3 ^ rhs.w3)) == 0
    }

    @inlinable
    public func hash(into hasher: inout Hasher) {
        hasher.combine(w0)
        hasher.combine(w1)
        hasher.combine(w2)
        hasher.combine(w3)
    }

    @inlinable
    public static func < (lhs: Bytes32, rhs: Bytes32) -> Bool {
        if lhs.w0 != rhs.w0 { return lhs.w0 < rhs.w0 }
        if lhs.w1 != rhs.w1 { return lhs.w1 < rhs.w1 }
        if lhs.w2 != rhs.w2 { return lhs.w2 < rhs.w2 }
        return lhs.w3 < rhs.w3
    }

    /// Short hex prefix, enough to tell values apart in logs and test output.
    public var description: String {
        String(w0 >> 32, radix: 16).leftPadded(to: 8)
    }

    /// Parses 64 hexadecimal digits (either case).
    public init?(hex: String) {
        let digits = Array(hex.utf8)
        guard digits.count == 64 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(32)
        for index in stride(from: 0, to: 64, by: 2) {
            guard let high = Self.nibble(digits[index]), let low = Self.nibble(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
        }
        self.init(bytes)
    }

    static func nibble(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    public var hex: String { bytes.map { String($0, radix: 16).leftPadded(to: 2) }.joined() }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

extension Bytes32: WireCodable {
    @inlinable
    public func encode(to writer: inout WireWriter) {
        writer.writeUInt64(w0); writer.writeUInt64(w1); writer.writeUInt64(w2); writer.writeUInt64(w3)
    }

    public static func decode(from reader: inout WireReader) throws(WireError) -> Bytes32 {
        Bytes32(w0: try reader.readUInt64(), w1: try reader.readUInt64(),
                w2: try reader.readUInt64(), w3: try reader.readUInt64())
    }
}

/// A member's ID: its 32-byte Ed25519 identity public key (§2.2).
public struct MemberID: Hashable, Comparable, Sendable, CustomStringConvertible, WireCodable {
    public var raw: Bytes32
    public init(_ raw: Bytes32) { self.raw = raw }
    public init?(bytes: [UInt8]) {
        guard let raw = Bytes32(bytes) else { return nil }
        self.raw = raw
    }
    public var bytes: [UInt8] { raw.bytes }
    public static func < (lhs: MemberID, rhs: MemberID) -> Bool { lhs.raw < rhs.raw }
    public var description: String { raw.description }
    public func encode(to writer: inout WireWriter) { raw.encode(to: &writer) }
    public static func decode(from reader: inout WireReader) throws(WireError) -> MemberID {
        MemberID(try Bytes32.decode(from: &reader))
    }
}

/// A group's ID: 32 random bytes chosen by its creator (§6.1).
public struct GroupID: Hashable, Comparable, Sendable, CustomStringConvertible, WireCodable {
    public var raw: Bytes32
    public init(_ raw: Bytes32) { self.raw = raw }
    public var bytes: [UInt8] { raw.bytes }
    public static func < (lhs: GroupID, rhs: GroupID) -> Bool { lhs.raw < rhs.raw }
    public var description: String { raw.description }
    public func encode(to writer: inout WireWriter) { raw.encode(to: &writer) }
    public static func decode(from reader: inout WireReader) throws(WireError) -> GroupID {
        GroupID(try Bytes32.decode(from: &reader))
    }
}

/// Names one envelope, and so one operation: its sender and the sender's seq (§4.1, §6.1).
public struct OperationID: Hashable, Comparable, Sendable, CustomStringConvertible, WireCodable {
    public var sender: MemberID
    public var seq: UInt64
    public init(sender: MemberID, seq: UInt64) { self.sender = sender; self.seq = seq }
    public static func < (lhs: OperationID, rhs: OperationID) -> Bool {
        lhs.sender != rhs.sender ? lhs.sender < rhs.sender : lhs.seq < rhs.seq
    }
    public var description: String { "\(sender)#\(seq)" }
    public func encode(to writer: inout WireWriter) { sender.encode(to: &writer); writer.writeVarint(seq) }
    public static func decode(from reader: inout WireReader) throws(WireError) -> OperationID {
        OperationID(sender: try MemberID.decode(from: &reader), seq: try reader.readVarint())
    }
}
