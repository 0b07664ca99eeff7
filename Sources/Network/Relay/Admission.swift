public import DCGKAEncoding
public import CausalBroadcast
internal import DCGKACrypto
internal import KeyAgreement

/// An envelope that passed every check a relay makes (NETWORK.md §13.3), ready to store.
public struct AdmittedEnvelope: Sendable, Hashable {
    public let envelope: Envelope
    public let wire: [UInt8]
    /// The IDs this envelope makes participants: a create's creator and members, an add's new
    /// member. Participants only grow: a relay cannot order a remove against concurrent adds.
    public let names: [MemberID]

    public var isControl: Bool { envelope.kind != .application }
}

/// The relay's rules for one incoming envelope, as pure functions (NETWORK.md §13.3): cheap
/// checks (size, decoding, the sender's authority) come before the signature check, and the
/// relay decodes only the fields it needs (a create's member list and nonce, an add's new member).
public enum RelayAdmission {
    /// - Parameters:
    ///   - participants: the group's participants as the relay knows them, nil when the group is
    ///     unknown here (then only its create is accepted).
    public static func check(
        wire: [UInt8], group: GroupID, participants: Set<MemberID>?, maximumEnvelopeBytes: Int
    ) throws(RelayRefusal) -> AdmittedEnvelope {
        guard wire.count <= maximumEnvelopeBytes else { throw .malformedEnvelope("\(wire.count) bytes, above \(maximumEnvelopeBytes)") }
        let envelope: Envelope
        do { envelope = try Envelope(wire: wire, groupID: group) } catch { throw .malformedEnvelope("\(error)") }
        if let participants {
            guard participants.contains(envelope.sender) else { throw .notParticipant }
        } else {
            guard envelope.kind == .create, envelope.seq == 1 else { throw .unknownGroup }
        }
        guard envelope.kind == .application || envelope.payload != nil else { throw .malformedEnvelope("a control envelope without its payload") }
        guard envelope.hasValidSignature() else { throw .badSignature }
        return AdmittedEnvelope(envelope: envelope, wire: wire, names: try names(of: envelope))
    }

    /// The participants a create or add names; a create's group ID must bind them (PROTOCOL.md §6.1).
    static func names(of envelope: Envelope) throws(RelayRefusal) -> [MemberID] {
        guard envelope.kind == .create || envelope.kind == .add, let payload = envelope.payload,
              let kind = ControlKind(rawValue: envelope.kind.rawValue)
        else { return [] }
        let body: ControlBody
        do { body = try ControlBody(kind: kind, payload: payload) } catch { throw .malformedEnvelope("control payload: \(error)") }
        switch body.fields {
        case .create(let bundles):
            let members = bundles.map(\.identity).filter { $0 != envelope.sender }
            guard envelope.seq == 1, let nonce = body.groupNonce,
                  KeyDerivations.groupID(creator: envelope.sender, nonce: nonce, members: members, suite: envelope.suite.suite) == envelope.groupID
            else { throw .unboundGroupID }
            return [envelope.sender] + members
        case .add(let bundle, _):
            return [bundle.identity]
        default:
            return []
        }
    }
}
