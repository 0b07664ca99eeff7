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
    /// §5.7 recovery: a member asks the members whose ratchets it lost for their ratchet states.
    case resync = 8
    /// §5.7 recovery: the answer to a resync (an acknowledgment of it).
    case resyncAnswer = 9

    /// Ack, add-ack and welcome-ack: they name the acknowledged envelope and are delivered only
    /// after it.
    public var isAcknowledgment: Bool {
        switch self {
        case .ack, .addAck, .welcomeAck, .resyncAnswer: return true
        default: return false
        }
    }

    /// Create, add, remove, update and resync: the only kinds an acknowledgment can reference.
    public var isAcknowledgeable: Bool {
        switch self {
        case .create, .add, .remove, .update, .resync: return true
        default: return false
        }
    }
}

/// The envelope an acknowledgment acknowledges, named by `(sender, seq, hash)` (§6.1): the hash
/// binds the acknowledgment to exactly that envelope; sender and seq let a member that holds a
/// different envelope at that position recognise a fork (§6.2).
public struct EnvelopeReference: Hashable, Sendable, CustomStringConvertible {
    public var sender: MemberID
    public var seq: UInt64
    public var hash: Bytes32

    public init(sender: MemberID, seq: UInt64, hash: Bytes32) {
        self.sender = sender; self.seq = seq; self.hash = hash
    }

    public var operationID: OperationID { OperationID(sender: sender, seq: seq) }
    public var description: String { "\(sender)#\(seq) \(hash)" }
}

/// The header fields of an application envelope (§6.1): the message's position in its sender's
/// ratchet, so that a receiver of a pruned envelope still knows which key to keep, and a coarse
/// time, so that holders can tell a fresh payload from one past its retention.
public struct ApplicationFields: Hashable, Sendable {
    /// The sender's epoch: the seq of the control envelope that started it (§7).
    public var epoch: UInt64
    /// Position of the message in that epoch, from 0.
    public var index: UInt64
    /// Whole hours since 1970-01-01 UTC at sending (PROTOCOL-NOTES.md, "Coarse time").
    public var hour: UInt64

    public init(epoch: UInt64, index: UInt64, hour: UInt64) {
        self.epoch = epoch; self.index = index; self.hour = hour
    }

    /// The coarse time of `seconds` since the Unix epoch.
    public static func hour(ofSeconds seconds: UInt64) -> UInt64 { seconds / 3600 }
}

/// A signed, hash-chained unit of broadcast (§6.1): a signed header that commits to the payload by
/// hash, and the payload beside it, which an application envelope may have lost (pruned).
///
/// Canonical encoding (what is stored):
///
/// ```
/// version      u8 = 4
/// suite        u8
/// groupID      32 bytes                  (left out of the wire form, §6.1)
/// sender       32 bytes
/// seq          varint, 1 ... 2^63-1
/// prev         32 bytes                  present iff seq > 1
/// kind         u8 (EnvelopeKind)
/// acked        sender 32, seq varint, hash 32      present iff kind is an acknowledgment
/// application  epoch varint, index varint, hour varint   present iff kind is application
/// payloadHash  32 bytes                  SHA-256 of the payload
/// signature    64 bytes                  Ed25519 over "DCGKA envelope" ‖ all of the above
/// payload      u8 0 (pruned: only for application) | u8 1, varint length (≤ 64 MiB), bytes
/// ```
///
/// `hash` is SHA-256 of the canonical header and signature (everything before `payload`), so a
/// pruned copy has the same hash as the full one and is still a valid link of its sender's chain.
/// Values are created only by ``sign(identity:suite:groupID:seq:prev:kind:acked:application:payload:)``,
/// by decoding (which checks the payload against `payloadHash`), or by ``pruned()`` and
/// ``withPayload(_:)``; so `hash` and `payloadHash` always match the fields, and equality and
/// hashing compare `hash` alone.
public struct Envelope: Hashable, Sendable, CustomStringConvertible {
    /// The only version spoken here.
    public static let currentVersion: UInt8 = 4
    /// Hard limit on the payload length (64 MiB).
    public static let maximumPayloadBytes = 64 << 20
    /// Hard limit on `seq`, so that `seq + 1` never overflows anywhere.
    public static let maximumSeq = UInt64(Int64.max)
    /// Domain separation of the signature (§6.1).
    public static let signatureLabel: [UInt8] = Array("DCGKA envelope".utf8)
    /// The longest header (with groupID, without signature) any envelope can have.
    static let maximumHeaderBytes = 1 + 1 + 32 + 32 + 10 + 32 + 1 + (32 + 10 + 32) + 32
    /// The longest canonical encoding any envelope can have.
    public static let maximumCanonicalBytes = maximumHeaderBytes + 64 + 1 + 10 + maximumPayloadBytes

    /// The fields, in one immutable box: an envelope is copied into buffers, per-sender slots and
    /// outputs many times per delivery, and a copy is then one retain rather than a move of some
    /// 400 bytes and a retain of each array.
    @usableFromInline
    final class Fields: Sendable {
        @usableFromInline let suite: CipherSuiteID
        @usableFromInline let groupID: GroupID
        @usableFromInline let sender: MemberID
        @usableFromInline let seq: UInt64
        @usableFromInline let prev: Bytes32?
        @usableFromInline let kind: EnvelopeKind
        @usableFromInline let acked: EnvelopeReference?
        @usableFromInline let application: ApplicationFields?
        @usableFromInline let payloadHash: Bytes32
        @usableFromInline let payload: [UInt8]?
        @usableFromInline let signature: Signature
        @usableFromInline let hash: Bytes32

        init(
            suite: CipherSuiteID, groupID: GroupID, sender: MemberID, seq: UInt64, prev: Bytes32?,
            kind: EnvelopeKind, acked: EnvelopeReference?, application: ApplicationFields?, payloadHash: Bytes32,
            payload: [UInt8]?, signature: Signature, hash: Bytes32
        ) {
            self.suite = suite; self.groupID = groupID; self.sender = sender; self.seq = seq
            self.prev = prev; self.kind = kind; self.acked = acked; self.application = application
            self.payloadHash = payloadHash; self.payload = payload
            self.signature = signature; self.hash = hash
        }
    }

    @usableFromInline let fields: Fields

    /// Always ``currentVersion``: no other is decoded or made.
    @inlinable public var version: UInt8 { Envelope.currentVersion }
    @inlinable public var suite: CipherSuiteID { fields.suite }
    @inlinable public var groupID: GroupID { fields.groupID }
    @inlinable public var sender: MemberID { fields.sender }
    @inlinable public var seq: UInt64 { fields.seq }
    /// Hash of the sender's envelope `seq - 1`; present iff `seq > 1`.
    @inlinable public var prev: Bytes32? { fields.prev }
    @inlinable public var kind: EnvelopeKind { fields.kind }
    /// The acknowledged envelope; present iff `kind.isAcknowledgment`.
    @inlinable public var acked: EnvelopeReference? { fields.acked }
    /// Epoch, index and coarse time; present iff `kind == .application`.
    @inlinable public var application: ApplicationFields? { fields.application }
    /// SHA-256 of the payload, signed.
    @inlinable public var payloadHash: Bytes32 { fields.payloadHash }
    /// Opaque to this layer: a DCGKA control body or an application ciphertext. `nil` when the
    /// envelope was pruned (only application envelopes are ever pruned).
    @inlinable public var payload: [UInt8]? { fields.payload }
    @inlinable public var signature: Signature { fields.signature }
    /// SHA-256 of the canonical header and signature, computed once.
    @inlinable public var hash: Bytes32 { fields.hash }

    private init(
        suite: CipherSuiteID, groupID: GroupID, sender: MemberID, seq: UInt64, prev: Bytes32?,
        kind: EnvelopeKind, acked: EnvelopeReference?, application: ApplicationFields?, payloadHash: Bytes32,
        payload: [UInt8]?, signature: Signature, hash: Bytes32
    ) {
        fields = Fields(
            suite: suite, groupID: groupID, sender: sender, seq: seq, prev: prev, kind: kind, acked: acked,
            application: application, payloadHash: payloadHash, payload: payload, signature: signature, hash: hash)
    }

    /// The operation this envelope is: `(sender, seq)` (§4.1).
    public var operationID: OperationID { OperationID(sender: sender, seq: seq) }

    /// This envelope as a reference, for an acknowledgment of it.
    public var reference: EnvelopeReference { EnvelopeReference(sender: sender, seq: seq, hash: hash) }

    /// Whether the payload is gone (an application envelope past its retention, §6.1).
    public var isPruned: Bool { payload == nil }

    /// Payload bytes held (0 when pruned).
    public var payloadCount: Int { payload?.count ?? 0 }

    /// Signs a new envelope. The caller passes a consistent position (``BroadcastState/nextOwnPosition()``):
    /// `seq ≥ 1`, `prev` present iff `seq > 1`, `acked` present iff `kind.isAcknowledgment` (with a
    /// seq in range), `application` present iff `kind == .application`, and a payload within
    /// ``maximumPayloadBytes``; anything else is a programming error and traps.
    public static func sign(
        identity: IdentityKey, suite: CipherSuiteID, groupID: GroupID, seq: UInt64, prev: Bytes32?,
        kind: EnvelopeKind, acked: EnvelopeReference?, application: ApplicationFields? = nil, payload: [UInt8]
    ) -> Envelope {
        precondition(seq >= 1 && seq <= maximumSeq, "envelope seq out of range")
        precondition((prev != nil) == (seq > 1), "prev must be present exactly when seq > 1")
        precondition((acked != nil) == kind.isAcknowledgment, "acked must be present exactly for acknowledgments")
        precondition(acked.map { $0.seq >= 1 && $0.seq <= maximumSeq } ?? true, "acked seq out of range")
        precondition((application != nil) == (kind == .application), "application fields exactly for application envelopes")
        precondition(payload.count <= maximumPayloadBytes, "envelope payload too large")
        let payloadHash = suite.suite.hash(payload)
        var writer = WireWriter(capacity: signatureLabel.count + maximumHeaderBytes + 64)
        writer.writeFixed(signatureLabel)
        encodeHeader(
            to: &writer, suite: suite, groupID: groupID, includeGroup: true, sender: identity.id, seq: seq,
            prev: prev, kind: kind, acked: acked, application: application, payloadHash: payloadHash)
        let signature = identity.sign(writer.bytes)
        writer.writeFixed(signature.bytes)
        let hash = suite.suite.hash(Array(writer.bytes[signatureLabel.count...]))
        return Envelope(
            suite: suite, groupID: groupID, sender: identity.id, seq: seq, prev: prev, kind: kind,
            acked: acked, application: application, payloadHash: payloadHash, payload: payload,
            signature: signature, hash: hash)
    }

    /// Whether `signature` is the sender's Ed25519 signature over the header.
    public func hasValidSignature() -> Bool {
        #if DEBUG
        if PlantedDefects.isActive(.acceptBadSignature) { return true }
        #endif
        var writer = WireWriter(capacity: Envelope.signatureLabel.count + Envelope.maximumHeaderBytes)
        writer.writeFixed(Envelope.signatureLabel)
        encodeHeader(to: &writer, includeGroup: true)
        return sender.isValidSignature(signature, for: writer.bytes)
    }

    /// The same envelope without its payload (§6.1). A control envelope is never pruned and is
    /// returned unchanged.
    public func pruned() -> Envelope {
        guard kind == .application, payload != nil else { return self }
        return Envelope(
            suite: suite, groupID: groupID, sender: sender, seq: seq, prev: prev, kind: kind, acked: acked,
            application: application, payloadHash: payloadHash, payload: nil, signature: signature, hash: hash)
    }

    /// The signed header alone, of any kind: what fork evidence carries (§6.2). Such a value is
    /// never delivered; ``ForkEvidence`` only checks its signature and position.
    public func headerOnly() -> Envelope {
        guard payload != nil else { return self }
        return Envelope(
            suite: suite, groupID: groupID, sender: sender, seq: seq, prev: prev, kind: kind, acked: acked,
            application: application, payloadHash: payloadHash, payload: nil, signature: signature, hash: hash)
    }

    /// The same envelope with `payload` put back, or nil when the bytes do not match `payloadHash`.
    public func withPayload(_ payload: [UInt8]) -> Envelope? {
        guard payload.count <= Envelope.maximumPayloadBytes, suite.suite.hash(payload) == payloadHash else { return nil }
        return Envelope(
            suite: suite, groupID: groupID, sender: sender, seq: seq, prev: prev, kind: kind, acked: acked,
            application: application, payloadHash: payloadHash, payload: payload, signature: signature, hash: hash)
    }

    /// The full canonical encoding (groupID included): what is stored.
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
        Envelope.headerSize(seq: seq, kind: kind, acked: acked, application: application) + Signature.byteCount
            + 1 + (payload.map { Envelope.varintSize(UInt64($0.count)) + $0.count } ?? 0)
    }

    /// Bytes a payload of `payloadCount` bytes costs on the wire in an envelope of this shape: an
    /// acknowledgment's `acked.seq` and an application envelope's epoch and index taken as one
    /// byte each, its hour as three (any hour from 1971 to 2209).
    public static func wireOverhead(seq: UInt64, kind: EnvelopeKind, payloadCount: Int) -> Int {
        headerSize(
            seq: seq, kind: kind, acked: kind.isAcknowledgment ? EnvelopeReference(sender: MemberID(Bytes32.zero), seq: 1, hash: .zero) : nil,
            application: kind == .application ? ApplicationFields(epoch: 0, index: 0, hour: 1 << 20) : nil)
            + Signature.byteCount + 1 + varintSize(UInt64(payloadCount))
    }

    /// The wire header (without groupID) of this shape, signature excluded.
    static func headerSize(seq: UInt64, kind: EnvelopeKind, acked: EnvelopeReference?, application: ApplicationFields?) -> Int {
        var size = 1 + 1 + 32 + varintSize(seq) + (seq > 1 ? 32 : 0) + 1 + 32
        if let acked { size += 32 + varintSize(acked.seq) + 32 }
        if let application { size += varintSize(application.epoch) + varintSize(application.index) + varintSize(application.hour) }
        return size
    }

    static func varintSize(_ value: UInt64) -> Int {
        var v = value, n = 1
        while v >= 0x80 { v >>= 7; n += 1 }
        return n
    }

    /// Decodes the wire form and puts `groupID` back (§6.1). Bounded and total; the payload is
    /// checked against `payloadHash`, the signature is not checked here
    /// (``BroadcastState/receive(_:isKnownSender:)`` does, before anything else).
    public init(wire: [UInt8], groupID: GroupID) throws(WireError) {
        var reader = WireReader(wire)
        try self.init(reader: &reader, groupID: groupID)
    }

    /// Decodes the wire form of a signed header without payload (``headerOnly()``), of any kind.
    init(headerWire: [UInt8], groupID: GroupID) throws(WireError) {
        var reader = WireReader(headerWire)
        try self.init(reader: &reader, groupID: groupID, headerOnly: true)
    }

    /// Decodes the full canonical encoding.
    public init(canonical: [UInt8]) throws(WireError) {
        var reader = WireReader(canonical)
        try self.init(reader: &reader, groupID: nil)
    }

    /// `groupID == nil`: it is read from the input (canonical form); otherwise the input is the wire form.
    private init(reader: inout WireReader, groupID: GroupID?, headerOnly: Bool = false) throws(WireError) {
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
        var acked: EnvelopeReference?
        if kind.isAcknowledgment {
            let ackedSender = try MemberID.decode(from: &reader)
            let ackedSeq = try reader.readVarint()
            guard ackedSeq >= 1, ackedSeq <= Envelope.maximumSeq else { throw .invalidValue(field: "envelope.acked.seq") }
            acked = EnvelopeReference(sender: ackedSender, seq: ackedSeq, hash: try Bytes32.decode(from: &reader))
        }
        var application: ApplicationFields?
        if kind == .application {
            application = ApplicationFields(
                epoch: try reader.readVarint(), index: try reader.readVarint(), hour: try reader.readVarint())
        }
        let payloadHash = try Bytes32.decode(from: &reader)
        let signature = try Signature.decode(from: &reader)
        let headerEnd = reader.offset
        let present = try reader.readUInt8()
        var payload: [UInt8]?
        switch present {
        case 0:
            guard kind == .application || headerOnly else { throw .invalidValue(field: "envelope.payload (a control envelope is never pruned)") }
        case 1 where !headerOnly:
            let bytes = try reader.readLengthPrefixed(field: "envelope.payload", limit: Envelope.maximumPayloadBytes)
            guard suite.suite.hash(bytes) == payloadHash else { throw .invalidValue(field: "envelope.payloadHash") }
            payload = bytes
        default:
            throw .invalidValue(field: "envelope.payload presence")
        }
        try reader.finish()
        let hash: Bytes32
        if groupID == nil {
            hash = suite.suite.hash(Array(reader.bytes[start..<headerEnd]))
        } else {
            var canonical = [UInt8]()
            canonical.reserveCapacity(headerEnd - start + 32)
            canonical.append(contentsOf: reader.bytes[start..<start + 2])
            canonical.append(contentsOf: group.bytes)
            canonical.append(contentsOf: reader.bytes[(start + 2)..<headerEnd])
            hash = suite.suite.hash(canonical)
        }
        self.init(
            suite: suite, groupID: group, sender: sender, seq: seq, prev: prev, kind: kind, acked: acked,
            application: application, payloadHash: payloadHash, payload: payload, signature: signature, hash: hash)
    }

    private func encode(to writer: inout WireWriter, includeGroup: Bool) {
        encodeHeader(to: &writer, includeGroup: includeGroup)
        signature.encode(to: &writer)
        if let payload {
            writer.writeUInt8(1)
            writer.writeLengthPrefixed(payload)
        } else {
            writer.writeUInt8(0)
        }
    }

    private func encodeHeader(to writer: inout WireWriter, includeGroup: Bool) {
        Envelope.encodeHeader(
            to: &writer, suite: suite, groupID: groupID, includeGroup: includeGroup, sender: sender, seq: seq,
            prev: prev, kind: kind, acked: acked, application: application, payloadHash: payloadHash)
    }

    private static func encodeHeader(
        to writer: inout WireWriter, suite: CipherSuiteID, groupID: GroupID, includeGroup: Bool,
        sender: MemberID, seq: UInt64, prev: Bytes32?, kind: EnvelopeKind, acked: EnvelopeReference?,
        application: ApplicationFields?, payloadHash: Bytes32
    ) {
        writer.writeUInt8(currentVersion)
        suite.encode(to: &writer)
        if includeGroup { groupID.encode(to: &writer) }
        sender.encode(to: &writer)
        writer.writeVarint(seq)
        if let prev { prev.encode(to: &writer) }
        writer.writeUInt8(kind.rawValue)
        if let acked {
            acked.sender.encode(to: &writer)
            writer.writeVarint(acked.seq)
            acked.hash.encode(to: &writer)
        }
        if let application {
            writer.writeVarint(application.epoch)
            writer.writeVarint(application.index)
            writer.writeVarint(application.hour)
        }
        payloadHash.encode(to: &writer)
    }

    public static func == (lhs: Envelope, rhs: Envelope) -> Bool { lhs.hash == rhs.hash }
    public func hash(into hasher: inout Hasher) { hasher.combine(hash) }

    public var description: String { "\(kind)(\(sender)#\(seq) \(hash)\(isPruned ? " pruned" : ""))" }
}
