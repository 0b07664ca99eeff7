@_spi(PlantedDefects) public import DCGKAEncoding
public import DCGKACrypto

/// What an envelope carries (§6.1). The tag is one byte on the wire; unknown tags are rejected.
public enum EnvelopeKind: UInt8, Sendable, Hashable, CaseIterable {
    case application = 0
    case create = 1
    case add = 2
    case remove = 3
    case update = 4
    case ack = 5
    case addAck = 6
    case welcomeAck = 7

    /// Ack, add-ack and welcome-ack: they carry the `acked` hash and are delivered only after the
    /// envelope it names.
    public var isAcknowledgment: Bool {
        switch self {
        case .ack, .addAck, .welcomeAck: return true
        default: return false
        }
    }

    /// Create, add, remove and update: the only kinds an acknowledgment can reference.
    public var isAcknowledgeable: Bool {
        switch self {
        case .create, .add, .remove, .update: return true
        default: return false
        }
    }
}

/// A signed, hash-chained unit of broadcast (§6.1).
///
/// Canonical encoding (what is hashed and stored):
///
/// ```
/// version    u8 = 1
/// suite      u8
/// groupID    32 bytes              (left out of the wire form, §6.1)
/// sender     32 bytes
/// seq        varint, 1 ... 2^63-1
/// prev       32 bytes              present iff seq > 1
/// kind       u8 (EnvelopeKind)
/// acked      32 bytes              present iff kind is an acknowledgment
/// payload    varint length (≤ 64 MiB), then the bytes
/// signature  64 bytes              Ed25519 over "DCGKA envelope" ‖ all of the above
/// ```
///
/// `hash` is SHA-256 of the canonical encoding (signature included). Values are created only by
/// ``sign(identity:suite:groupID:seq:prev:kind:acked:payload:)`` or by decoding, so `hash` always
/// matches the fields; equality and hashing therefore compare `hash` alone.
public struct Envelope: Hashable, Sendable, CustomStringConvertible {
    /// The only version spoken here.
    public static let currentVersion: UInt8 = 1
    /// Hard limit on the payload length (64 MiB).
    public static let maximumPayloadBytes = 64 << 20
    /// Hard limit on `seq`, so that `seq + 1` never overflows anywhere.
    public static let maximumSeq = UInt64(Int64.max)
    /// Domain separation of the signature (§6.1).
    public static let signatureLabel: [UInt8] = Array("DCGKA envelope".utf8)
    /// The longest canonical encoding any envelope can have.
    public static let maximumCanonicalBytes = 1 + 1 + 32 + 32 + 10 + 32 + 1 + 32 + 10 + maximumPayloadBytes + 64

    public let version: UInt8
    public let suite: CipherSuiteID
    public let groupID: GroupID
    public let sender: MemberID
    public let seq: UInt64
    /// Hash of the sender's envelope `seq - 1`; present iff `seq > 1`.
    public let prev: Bytes32?
    public let kind: EnvelopeKind
    /// Hash of the acknowledged envelope; present iff `kind.isAcknowledgment`.
    public let acked: Bytes32?
    /// Opaque to this layer: a DCGKA control body or an application ciphertext.
    public let payload: [UInt8]
    public let signature: Signature
    /// SHA-256 of ``canonicalBytes``, computed once.
    public let hash: Bytes32

    private init(
        suite: CipherSuiteID, groupID: GroupID, sender: MemberID, seq: UInt64, prev: Bytes32?,
        kind: EnvelopeKind, acked: Bytes32?, payload: [UInt8], signature: Signature, hash: Bytes32
    ) {
        self.version = Envelope.currentVersion
        self.suite = suite; self.groupID = groupID; self.sender = sender; self.seq = seq
        self.prev = prev; self.kind = kind; self.acked = acked; self.payload = payload
        self.signature = signature; self.hash = hash
    }

    /// The operation this envelope is: `(sender, seq)` (§4.1).
    public var operationID: OperationID { OperationID(sender: sender, seq: seq) }

    /// Signs a new envelope. The caller passes a consistent position (``BroadcastState/nextOwnPosition()``):
    /// `seq ≥ 1`, `prev` present iff `seq > 1`, `acked` present iff `kind.isAcknowledgment`, and a
    /// payload within ``maximumPayloadBytes``; anything else is a programming error and traps.
    public static func sign(
        identity: IdentityKey, suite: CipherSuiteID, groupID: GroupID, seq: UInt64, prev: Bytes32?,
        kind: EnvelopeKind, acked: Bytes32?, payload: [UInt8]
    ) -> Envelope {
        precondition(seq >= 1 && seq <= maximumSeq, "envelope seq out of range")
        precondition((prev != nil) == (seq > 1), "prev must be present exactly when seq > 1")
        precondition((acked != nil) == kind.isAcknowledgment, "acked must be present exactly for acknowledgments")
        precondition(payload.count <= maximumPayloadBytes, "envelope payload too large")
        var writer = WireWriter(capacity: signatureLabel.count + 200 + payload.count)
        writer.writeFixed(signatureLabel)
        encodeUnsigned(
            to: &writer, suite: suite, groupID: groupID, includeGroup: true, sender: identity.id, seq: seq,
            prev: prev, kind: kind, acked: acked, payload: payload)
        let signature = identity.sign(writer.bytes)
        writer.writeFixed(signature.bytes)
        let hash = suite.suite.hash(Array(writer.bytes[signatureLabel.count...]))
        return Envelope(
            suite: suite, groupID: groupID, sender: identity.id, seq: seq, prev: prev, kind: kind,
            acked: acked, payload: payload, signature: signature, hash: hash)
    }

    /// Whether `signature` is the sender's Ed25519 signature over the other fields.
    public func hasValidSignature() -> Bool {
        #if DEBUG
        if PlantedDefects.isActive(.acceptBadSignature) { return true }
        #endif
        var writer = WireWriter(capacity: Envelope.signatureLabel.count + 200 + payload.count)
        writer.writeFixed(Envelope.signatureLabel)
        encodeFields(to: &writer, includeGroup: true)
        return sender.isValidSignature(signature, for: writer.bytes)
    }

    /// The full canonical encoding (groupID included): what is hashed and stored.
    public var canonicalBytes: [UInt8] {
        var writer = WireWriter(capacity: canonicalByteCount)
        encode(to: &writer, includeGroup: true)
        return writer.bytes
    }

    /// The wire form: the canonical encoding without groupID (the transport names the group, §6.1).
    public var wireBytes: [UInt8] {
        var writer = WireWriter(capacity: wireByteCount)
        encode(to: &writer, includeGroup: false)
        return writer.bytes
    }

    /// `canonicalBytes.count`, computed without encoding.
    public var canonicalByteCount: Int { wireByteCount + 32 }

    /// `wireBytes.count`, computed without encoding.
    public var wireByteCount: Int {
        1 + 1 + 32 + Envelope.varintSize(seq) + (prev == nil ? 0 : 32) + 1 + (acked == nil ? 0 : 32)
            + Envelope.varintSize(UInt64(payload.count)) + payload.count + Signature.byteCount
    }

    /// Bytes a payload of `payloadCount` bytes costs on the wire in an envelope of this shape.
    public static func wireOverhead(seq: UInt64, kind: EnvelopeKind, payloadCount: Int) -> Int {
        1 + 1 + 32 + varintSize(seq) + (seq > 1 ? 32 : 0) + 1 + (kind.isAcknowledgment ? 32 : 0)
            + varintSize(UInt64(payloadCount)) + Signature.byteCount
    }

    static func varintSize(_ value: UInt64) -> Int {
        var v = value, n = 1
        while v >= 0x80 { v >>= 7; n += 1 }
        return n
    }

    /// Decodes the wire form and puts `groupID` back (§6.1). Bounded and total; the signature is
    /// not checked here (``BroadcastState/receive(_:isKnownSender:)`` does, before anything else).
    public init(wire: [UInt8], groupID: GroupID) throws(WireError) {
        var reader = WireReader(wire)
        try self.init(reader: &reader, groupID: groupID)
    }

    /// Decodes the full canonical encoding.
    public init(canonical: [UInt8]) throws(WireError) {
        var reader = WireReader(canonical)
        try self.init(reader: &reader, groupID: nil)
    }

    /// `groupID == nil`: it is read from the input (canonical form); otherwise the input is the wire form.
    private init(reader: inout WireReader, groupID: GroupID?) throws(WireError) {
        let start = reader.offset
        let version = try reader.readUInt8()
        guard version == Envelope.currentVersion else { throw .unsupportedVersion(version) }
        let suite = try CipherSuiteID.decode(from: &reader)
        let group: GroupID
        if let groupID { group = groupID } else { group = try GroupID.decode(from: &reader) }
        let sender = try MemberID.decode(from: &reader)
        let seq = try reader.readVarint()
        guard seq >= 1, seq <= Envelope.maximumSeq else { throw .invalidValue(field: "envelope.seq") }
        let prev: Bytes32? = seq > 1 ? try Bytes32.decode(from: &reader) : nil
        let tag = try reader.readUInt8()
        guard let kind = EnvelopeKind(rawValue: tag) else { throw .unknownTag(field: "envelope.kind", tag: tag) }
        let acked: Bytes32? = kind.isAcknowledgment ? try Bytes32.decode(from: &reader) : nil
        let payload = try reader.readLengthPrefixed(field: "envelope.payload", limit: Envelope.maximumPayloadBytes)
        let signature = try Signature.decode(from: &reader)
        try reader.finish()
        let hash: Bytes32
        if groupID == nil {
            hash = suite.suite.hash(start == 0 ? reader.bytes : Array(reader.bytes[start...]))
        } else {
            var canonical = [UInt8]()
            canonical.reserveCapacity(reader.bytes.count - start + 32)
            canonical.append(contentsOf: reader.bytes[start..<start + 2])
            canonical.append(contentsOf: group.bytes)
            canonical.append(contentsOf: reader.bytes[(start + 2)...])
            hash = suite.suite.hash(canonical)
        }
        self.init(
            suite: suite, groupID: group, sender: sender, seq: seq, prev: prev, kind: kind, acked: acked,
            payload: payload, signature: signature, hash: hash)
    }

    private func encode(to writer: inout WireWriter, includeGroup: Bool) {
        encodeFields(to: &writer, includeGroup: includeGroup)
        signature.encode(to: &writer)
    }

    private func encodeFields(to writer: inout WireWriter, includeGroup: Bool) {
        Envelope.encodeUnsigned(
            to: &writer, suite: suite, groupID: groupID, includeGroup: includeGroup, sender: sender, seq: seq,
            prev: prev, kind: kind, acked: acked, payload: payload)
    }

    private static func encodeUnsigned(
        to writer: inout WireWriter, suite: CipherSuiteID, groupID: GroupID, includeGroup: Bool,
        sender: MemberID, seq: UInt64, prev: Bytes32?, kind: EnvelopeKind, acked: Bytes32?, payload: [UInt8]
    ) {
        writer.writeUInt8(currentVersion)
        suite.encode(to: &writer)
        if includeGroup { groupID.encode(to: &writer) }
        sender.encode(to: &writer)
        writer.writeVarint(seq)
        if let prev { prev.encode(to: &writer) }
        writer.writeUInt8(kind.rawValue)
        if let acked { acked.encode(to: &writer) }
        writer.writeLengthPrefixed(payload)
    }

    public static func == (lhs: Envelope, rhs: Envelope) -> Bool { lhs.hash == rhs.hash }
    public func hash(into hasher: inout Hasher) { hasher.combine(hash) }

    public var description: String { "\(kind)(\(sender)#\(seq) \(hash))" }
}
