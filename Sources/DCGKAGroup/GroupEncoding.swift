public import DCGKAEncoding
internal import DCGKACrypto
internal import CausalBroadcast
internal import GroupMessaging
internal import KeyAgreement
internal import Membership

// `exposesUpdateSecrets` and `derivedUpdateSecrets` are deliberately not encoded.

extension Group: WireCodable {
    /// Version of the persisted group state, independent of the envelope version.
    public static let stateVersion: UInt8 = 6

    public func encode(to writer: inout WireWriter) {
        writer.writeUInt8(Self.stateVersion)
        writer.write(identity)
        writer.write(keyAgreement)
        writer.write(broadcast)
        writer.write(messaging)
        writer.writeArray(bundles.values.sorted { $0.identity < $1.identity })
        writer.writeOptional(bundleToAnnounce)
        writer.writeOptional(unconfirmedWelcome)
        writer.writeOptional(refutedWelcome)
        writer.writeBool(uncheckedCreate != nil)
        if let unchecked = uncheckedCreate {
            writer.write(unchecked.create)
            writer.write(unchecked.adder)
        }
        let evidence = forkEvidence.sorted { $0.key < $1.key }
        writer.writeVarint(evidence.count)
        for (_, pair) in evidence { writer.writeLengthPrefixed(pair.wireBytes) }
    }

    public static func decode(from reader: inout WireReader) throws(WireError) -> Group {
        let version = try reader.readUInt8()
        // Only this version is read: the membership and broadcast states inside changed with it
        // (cuts, issue 8 item 9), and decoding stays canonical.
        guard version == stateVersion else { throw .unsupportedVersion(version) }
        let identity = try reader.read(IdentityKey.self)
        let keyAgreement = try reader.read(DCGKAState.self)
        guard keyAgreement.me == identity.id else { throw .invalidValue(field: "group identity") }
        let broadcast = try reader.read(BroadcastState.self)
        let messaging = try reader.read(MessagingState.self)
        let list = try reader.readArray(KeyBundle.self, field: "bundles", limit: MembershipState.maxMembers)
        var bundles: [MemberID: KeyBundle] = [:]
        for (a, b) in zip(list, list.dropFirst()) where !(a.identity < b.identity) {
            throw .invalidValue(field: "bundle order")
        }
        for bundle in list { bundles[bundle.identity] = bundle }
        let toAnnounce = try reader.readOptional(KeyBundle.self, field: "bundle to announce")
        guard toAnnounce.map({ $0.identity == identity.id }) ?? true else { throw .invalidValue(field: "bundle to announce") }
        var group = Group(identity: identity, keyAgreement: keyAgreement, broadcast: broadcast, messaging: messaging, bundles: bundles)
        group.bundleToAnnounce = toAnnounce
        group.unconfirmedWelcome = try reader.readOptional(MemberID.self, field: "unconfirmed welcome")
        group.refutedWelcome = try reader.readOptional(MemberID.self, field: "refuted welcome")
        if try reader.readBool(field: "unchecked create present") {
            let create = try reader.read(OperationID.self)
            guard create.seq == 1 else { throw .invalidValue(field: "unchecked create") }
            group.uncheckedCreate = Group.UncheckedCreate(create: create, adder: try reader.read(MemberID.self))
        }
        do {
            let count = try reader.readBoundedVarint(field: "fork evidence", limit: MembershipState.maxMembers)
            guard count <= reader.remaining / 200 else { throw .truncated }
            var previous: MemberID?
            for _ in 0..<count {
                let bytes = try reader.readLengthPrefixed(field: "fork evidence", limit: ForkEvidence.maximumEncodedBytes)
                let evidence = try ForkEvidence(wire: bytes, groupID: keyAgreement.groupID)
                if let previous, !(previous < evidence.sender) { throw .invalidValue(field: "fork evidence order") }
                guard evidence.sender != identity.id, evidence.first.suite == keyAgreement.suite else {
                    throw .invalidValue(field: "fork evidence")
                }
                previous = evidence.sender
                group.forkEvidence[evidence.sender] = evidence
            }
        }
        return group
    }

    init(identity: IdentityKey, keyAgreement: DCGKAState, broadcast: BroadcastState, messaging: MessagingState, bundles: [MemberID: KeyBundle]) {
        self.identity = identity
        self.keyAgreement = keyAgreement
        self.broadcast = broadcast
        self.messaging = messaging
        self.bundles = bundles
    }
}
