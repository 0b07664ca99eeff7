public import DCGKAEncoding
public import TwoPartyMessaging
public import Membership
public import DCGKACrypto

/// The control message types of §5.3. The acknowledged envelope of an acknowledgment is named by
/// the broadcast layer (its hash in the envelope); here it is resolved to an ``OperationID``.
public enum ControlKind: UInt8, Sendable, Hashable {
    case create = 1, add = 2, remove = 3, update = 4, ack = 5, addAck = 6, welcomeAck = 7, resync = 8, resyncAnswer = 9
}

/// Names the recipient of one direct message inside a control envelope (§6.3).
///
/// Encoded as a varint: `k ≥ 1` is position `k - 1` in the sender's member view at that envelope,
/// sorted by ID (every receiver computes the same list), so it costs one or two bytes; `0` is
/// followed by the full 32-byte ID for the rare recipient outside that view (the added member of
/// an add that the acknowledging member does not consider effective).
public enum RecipientTag: Hashable, Sendable, WireCodable {
    case position(Int)
    case explicit(MemberID)

    public static let maximumPosition = MembershipState.maxMembers

    public func encode(to writer: inout WireWriter) {
        switch self {
        case .position(let index): writer.writeVarint(UInt64(index + 1))
        case .explicit(let id):
            writer.writeVarint(UInt64(0))
            writer.write(id)
        }
    }

    public static func decode(from reader: inout WireReader) throws(WireError) -> RecipientTag {
        let value = try reader.readBoundedVarint(field: "recipient tag", limit: maximumPosition)
        return value == 0 ? .explicit(try reader.read()) : .position(value - 1)
    }
}

/// One 2SM ciphertext for one recipient, as carried in a control envelope.
public struct TaggedDirectMessage: Hashable, Sendable, WireCodable {
    public var tag: RecipientTag
    public var message: TwoPartyMessage

    public init(tag: RecipientTag, message: TwoPartyMessage) {
        self.tag = tag
        self.message = message
    }

    public func encode(to writer: inout WireWriter) {
        writer.write(tag)
        writer.write(message)
    }

    public static func decode(from reader: inout WireReader) throws(WireError) -> TaggedDirectMessage {
        TaggedDirectMessage(tag: try reader.read(), message: try reader.read())
    }
}

/// What a new member needs (§5.6), apart from the causal frontier and group parameters, which the
/// group layer adds as `context` (opaque here).
public struct Welcome: Equatable, Sendable, WireCodable {
    /// The adder's membership state, including the add.
    public var history: MembershipState
    /// `encrypt-to(added, ratchet[adder])`.
    public var ratchetCiphertext: TwoPartyMessage
    /// Group-layer data (frontier, parameters); bounded, opaque to DCGKA.
    public var context: [UInt8]

    public static let maximumContextLength = 1 << 24

    public init(history: MembershipState, ratchetCiphertext: TwoPartyMessage, context: [UInt8]) {
        self.history = history
        self.ratchetCiphertext = ratchetCiphertext
        self.context = context
    }

    /// The context comes first, so that it can be read without decoding the history
    /// (``EncodedWelcome/decodeContext()``).
    public func encode(to writer: inout WireWriter) {
        writer.writeLengthPrefixed(context)
        writer.write(ratchetCiphertext)
        writer.write(history)
    }

    public static func decode(from reader: inout WireReader) throws(WireError) -> Welcome {
        let context = try reader.readLengthPrefixed(field: "welcome context", limit: maximumContextLength)
        let ratchetCiphertext = try reader.read(TwoPartyMessage.self)
        return Welcome(history: try reader.read(), ratchetCiphertext: ratchetCiphertext, context: context)
    }
}

/// A welcome as an add carries it: length-prefixed bytes that only the added member parses, so
/// the other members (who need only the added member's bundle) never pay for decoding the
/// adder's membership state (PROTOCOL-NOTES.md).
public struct EncodedWelcome: Equatable, Sendable {
    public let bytes: [UInt8]

    /// A welcome is at most this long (a membership state at its limits does not fit a sane
    /// envelope anyway; the reader never allocates more than the input holds).
    public static let maximumLength = 1 << 28

    public init(_ welcome: Welcome) { bytes = welcome.wireBytes }
    init(bytes: [UInt8]) { self.bytes = bytes }
    /// Any bytes as a welcome: the simulator's malicious adder sends malformed ones.
    @_spi(Simulation) public init(unchecked bytes: [UInt8]) { self.bytes = bytes }

    /// The welcome, for the added member. A malformed one is a typed error, never a crash.
    public func decode() throws(WireError) -> Welcome { try Welcome(wireBytes: bytes) }

    /// Only the group-layer context (the welcome's first field), without decoding the rest.
    public func decodeContext() throws(WireError) -> [UInt8] {
        var reader = WireReader(bytes)
        return try reader.readLengthPrefixed(field: "welcome context", limit: Welcome.maximumContextLength)
    }
}

/// The body of a control envelope: its type-specific fields and its direct messages.
public struct ControlBody: Equatable, Sendable {
    public enum Fields: Equatable, Sendable {
        /// The members' key bundles (everyone needs them to start 2SM); the creator's own may lead the
        /// list and is not a member of the create operation itself.
        case create([KeyBundle])
        /// The added member's key bundle and its welcome.
        case add(KeyBundle, EncodedWelcome)
        case remove(MemberID)
        /// A fresh seed for my view; optionally my newest key bundle (after I rotated my prekey).
        case update(KeyBundle?)
        /// `withoutSecret`: I could not obtain my secret of the acknowledged operation (§5.7 rule 1):
        /// nobody steps my ratchet for this acknowledgment, and everyone deletes the member secret
        /// it kept for me from that operation.
        case ack(withoutSecret: Bool)
        case addAck
        /// `withoutSecret`: the welcome's ratchet state did not decrypt, so I have no member secret
        /// of the add (§5.7 rule 1, as for `ack`): nobody steps my ratchet for it.
        case welcomeAck(withoutSecret: Bool)
        /// §5.7 recovery (PROTOCOL-NOTES.md, "Recovery"): I lost the ratchets of `lost`; each of
        /// them answers once per `generation` with its ratchet state, on a 2SM channel pointed at
        /// `key`, a one-time X25519 key of mine.
        case resync(generation: UInt64, key: PKEPublicKey, lost: [MemberID])
        /// The answer to a resync: the ratchet state travels as the direct message to the requester,
        /// and the answerer's ratchet then takes the constant step "resync".
        case resyncAnswer
    }

    public var fields: Fields
    public var directMessages: [TaggedDirectMessage]
    /// §5.7 rule 2, in every control message that carries a seed (create, update, remove):
    /// `HKDF(ikm: seed, info: "DCGKA seed confirm", 32)`, checked by each recipient.
    public var seedConfirmation: Bytes32?
    /// §5.7 rule 3, in every envelope that starts an epoch for its sender:
    /// `HKDF(ikm: I_sender, info: "DCGKA epoch confirm", 16)`, checked by everyone who follows it.
    public var epochConfirmation: [UInt8]?
    /// In a create only: the 32 random bytes that, with the creator and the member list, make the
    /// group ID (§6.1, ``KeyDerivations/groupID(creator:nonce:members:suite:)``).
    public var groupNonce: Bytes32?
    /// §5.6, in every control message: ``KeyDerivations/viewHash(of:suite:)`` of the sender's
    /// member view at this envelope. Set by the group layer when it signs the envelope.
    public var viewHash: Bytes32 = .zero
    /// In a remove or a welcome-ack only: evidence that a member equivocated (§6.2), opaque here
    /// (the group layer encodes and checks it). A remove that carries its target's evidence cuts
    /// off the target's operations from the forked seq on; a returning member's welcome-ack
    /// carries the evidence it holds, so that what the welcome-ack says the member knows never
    /// settles a forked operation where the fork is not yet known (PROTOCOL-NOTES.md, "Equivocation").
    public var forkEvidence: [UInt8]?

    public static let epochConfirmationLength = 16
    /// Longest fork evidence a remove or welcome-ack may carry (two signed headers).
    public static let maximumForkEvidenceBytes = 1024

    public init(
        fields: Fields, directMessages: [TaggedDirectMessage], seedConfirmation: Bytes32? = nil,
        epochConfirmation: [UInt8]? = nil, groupNonce: Bytes32? = nil
    ) {
        self.fields = fields
        self.directMessages = directMessages
        self.seedConfirmation = seedConfirmation
        self.epochConfirmation = epochConfirmation
        self.groupNonce = groupNonce
    }

    /// Whether this kind carries a seed, and so a seed confirmation.
    public var carriesSeed: Bool {
        switch fields {
        case .create, .update, .remove: true
        default: false
        }
    }

    public var kind: ControlKind {
        switch fields {
        case .create: .create
        case .add: .add
        case .remove: .remove
        case .update: .update
        case .ack: .ack
        case .addAck: .addAck
        case .welcomeAck: .welcomeAck
        case .resync: .resync
        case .resyncAnswer: .resyncAnswer
        }
    }

    public static let maximumDirectMessages = MembershipState.maxMembers * 2

    /// The payload bytes; the kind travels in the envelope header.
    public var payload: [UInt8] {
        var writer = WireWriter(capacity: 64 + directMessages.count * 160)
        switch fields {
        case .create(let bundles):
            writer.writeArray(bundles)
            writer.write(groupNonce ?? .zero)
        case .add(let added, let welcome):
            writer.write(added)
            writer.writeLengthPrefixed(welcome.bytes)
        case .remove(let removed):
            writer.write(removed)
            writer.writeBool(forkEvidence != nil)
            if let forkEvidence { writer.writeLengthPrefixed(forkEvidence) }
        case .update(let bundle):
            writer.writeOptional(bundle)
        case .ack(let withoutSecret):
            writer.writeUInt8(withoutSecret ? 1 : 0)
        case .welcomeAck(let withoutSecret):
            // Bit 0: without a secret; bit 1: fork evidence follows.
            writer.writeUInt8((withoutSecret ? 1 : 0) | (forkEvidence != nil ? 2 : 0))
            if let forkEvidence { writer.writeLengthPrefixed(forkEvidence) }
        case .resync(let generation, let key, let lost):
            writer.writeVarint(generation)
            writer.write(key)
            writer.writeArray(lost)
        case .addAck, .resyncAnswer:
            break
        }
        if carriesSeed { writer.write(seedConfirmation ?? .zero) }
        writer.writeBool(epochConfirmation != nil)
        if let epochConfirmation { writer.writeFixed(epochConfirmation) }
        writer.write(viewHash)
        writer.writeArray(directMessages)
        return writer.bytes
    }

    public init(kind: ControlKind, payload: [UInt8]) throws(WireError) {
        var reader = WireReader(payload)
        groupNonce = nil
        switch kind {
        case .create:
            // The creator's own bundle may lead the list, beside up to maxCreateMembers others.
            fields = .create(try reader.readArray(KeyBundle.self, field: "create members", limit: MembershipOperation.maxCreateMembers + 1))
            groupNonce = try reader.read(Bytes32.self)
        case .add:
            let added = try reader.read(KeyBundle.self)
            fields = .add(added, EncodedWelcome(bytes: try reader.readLengthPrefixed(field: "welcome", limit: EncodedWelcome.maximumLength)))
        case .remove:
            fields = .remove(try reader.read())
            if try reader.readBool(field: "fork evidence present") {
                forkEvidence = try reader.readLengthPrefixed(field: "fork evidence", limit: ControlBody.maximumForkEvidenceBytes)
            }
        case .update: fields = .update(try reader.readOptional(field: "update bundle"))
        case .ack:
            let flag = try reader.readUInt8()
            guard flag <= 1 else { throw .invalidValue(field: "ack flag") }
            fields = .ack(withoutSecret: flag == 1)
        case .addAck: fields = .addAck
        case .welcomeAck:
            let flags = try reader.readUInt8()
            guard flags <= 3 else { throw .invalidValue(field: "welcome-ack flags") }
            fields = .welcomeAck(withoutSecret: flags & 1 == 1)
            if flags & 2 == 2 {
                forkEvidence = try reader.readLengthPrefixed(field: "fork evidence", limit: ControlBody.maximumForkEvidenceBytes)
            }
        case .resync:
            let generation = try reader.readVarint()
            guard generation >= 1, generation <= UInt64(Int64.max) else { throw .invalidValue(field: "resync generation") }
            let key = try reader.read(PKEPublicKey.self)
            let lost = try reader.readArray(MemberID.self, field: "resync lost", limit: MembershipState.maxMembers)
            for (a, b) in zip(lost, lost.dropFirst()) where !(a < b) { throw .invalidValue(field: "resync lost order") }
            fields = .resync(generation: generation, key: key, lost: lost)
        case .resyncAnswer: fields = .resyncAnswer
        }
        seedConfirmation = kind == .create || kind == .update || kind == .remove ? try reader.read(Bytes32.self) : nil
        epochConfirmation = try reader.readBool(field: "epoch confirmation present")
            ? try reader.readFixed(ControlBody.epochConfirmationLength) : nil
        viewHash = try reader.read(Bytes32.self)
        directMessages = try reader.readArray(field: "direct messages", limit: ControlBody.maximumDirectMessages)
        try reader.finish()
    }
}
