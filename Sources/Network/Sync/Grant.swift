public import DCGKAEncoding
public import DCGKACrypto

/// A participant's signed permission for a holder that is not a participant (a relay, a carrier
/// device) to have a group's envelopes until `notAfter` (NETWORK.md §11.2, §13.3, §14.3).
///
/// Signed bytes: `"DCGKA grant"` ‖ group ‖ holder ‖ notAfter (8 bytes, big endian), with the
/// granter's identity key. A holder shows the grant; whoever serves it checks the signature, the
/// expiry and that the granter is a participant of the group.
public struct Grant: Hashable, Sendable, WireCodable {
    public let group: GroupID
    public let holder: MemberID
    public let notAfter: UInt64
    public let granter: MemberID
    public let signature: Signature

    static let label = Array("DCGKA grant".utf8)

    static func signedBytes(group: GroupID, holder: MemberID, notAfter: UInt64) -> [UInt8] {
        var writer = WireWriter()
        writer.writeFixed(label)
        writer.write(group)
        writer.write(holder)
        writer.writeUInt64(notAfter)
        return writer.bytes
    }

    public init(group: GroupID, holder: MemberID, notAfter: UInt64, granter identity: IdentityKey) {
        self.group = group
        self.holder = holder
        self.notAfter = notAfter
        self.granter = identity.id
        self.signature = identity.sign(Self.signedBytes(group: group, holder: holder, notAfter: notAfter))
    }

    init(group: GroupID, holder: MemberID, notAfter: UInt64, granter: MemberID, signature: Signature) {
        self.group = group
        self.holder = holder
        self.notAfter = notAfter
        self.granter = granter
        self.signature = signature
    }

    /// Whether the grant lets `holder` have `group`'s envelopes at `now`, given who the group's
    /// participants are.
    public func verify(now: UInt64, isParticipant: (MemberID) -> Bool) throws(GrantError) {
        guard isParticipant(granter) else { throw .granterNotParticipant }
        guard granter.isValidSignature(signature, for: Self.signedBytes(group: group, holder: holder, notAfter: notAfter)) else {
            throw .badSignature
        }
        guard now <= notAfter else { throw .expired(notAfter: notAfter) }
    }

    public func encode(to writer: inout WireWriter) {
        writer.write(group)
        writer.write(holder)
        writer.writeUInt64(notAfter)
        writer.write(granter)
        writer.write(signature)
    }

    public static func decode(from reader: inout WireReader) throws(WireError) -> Grant {
        Grant(
            group: try reader.read(), holder: try reader.read(), notAfter: try reader.readUInt64(), granter: try reader.read(),
            signature: try reader.read())
    }
}

public enum GrantError: Error, Equatable, Sendable {
    case badSignature
    case expired(notAfter: UInt64)
    case granterNotParticipant
}
