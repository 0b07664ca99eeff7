@_spi(PlantedDefects) public import DCGKAEncoding
public import DCGKACrypto

/// Who generated the public key a 2SM message was encrypted to, from the sender's point of view (§3.1).
public enum KeyOrigin: UInt8, Sendable, Hashable {
    /// The peer (the receiver of this message) generated it; the header names its index.
    case other = 0
    /// The sender generated it and sent the receiver its secret earlier.
    case me = 1
}

/// The cleartext part of a 2SM message; it is the HPKE associated data.
public struct TwoPartyHeader: Hashable, Sendable, WireCodable {
    public var origin: KeyOrigin
    /// The receiver's index for the key when `origin == .other`; index 0 means the receiver's prekey.
    public var index: UInt64?
    /// Which of the receiver's prekeys was used, present exactly when `index == 0`.
    public var prekey: PKEPublicKey?

    public static let maximumIndex: UInt64 = 1 << 48

    public func encode(to writer: inout WireWriter) {
        switch origin {
        case .me:
            writer.writeUInt8(KeyOrigin.me.rawValue)
        case .other:
            writer.writeUInt8(KeyOrigin.other.rawValue)
            writer.writeVarint(index ?? 0)
            if let prekey { writer.write(prekey) }
        }
    }

    public static func decode(from reader: inout WireReader) throws(WireError) -> TwoPartyHeader {
        let tag = try reader.readUInt8()
        switch KeyOrigin(rawValue: tag) {
        case .me:
            return TwoPartyHeader(origin: .me, index: nil, prekey: nil)
        case .other:
            let index = try reader.readVarint()
            guard index <= maximumIndex else {
                throw .lengthExceedsLimit(field: "2SM index", limit: Int(maximumIndex), actual: index)
            }
            return TwoPartyHeader(origin: .other, index: index, prekey: index == 0 ? try reader.read(PKEPublicKey.self) : nil)
        case nil:
            throw .unknownTag(field: "2SM key origin", tag: tag)
        }
    }
}

/// One 2SM ciphertext: header plus HPKE output.
public struct TwoPartyMessage: Hashable, Sendable, WireCodable {
    public var header: TwoPartyHeader
    public var ciphertext: [UInt8]

    /// Bounds the ciphertext of a single direct message (it carries a seed, a ratchet state or a welcome).
    public static let maximumCiphertextLength = 1 << 24

    public init(header: TwoPartyHeader, ciphertext: [UInt8]) {
        self.header = header
        self.ciphertext = ciphertext
    }

    public func encode(to writer: inout WireWriter) {
        writer.write(header)
        writer.writeLengthPrefixed(ciphertext)
    }

    public static func decode(from reader: inout WireReader) throws(WireError) -> TwoPartyMessage {
        TwoPartyMessage(
            header: try reader.read(),
            ciphertext: try reader.readLengthPrefixed(field: "2SM ciphertext", limit: maximumCiphertextLength))
    }
}

/// What binds a 2SM instance to its group and its ordered pair of identities (§3.4).
public struct TwoPartyBinding: Sendable, Hashable {
    public var suite: CipherSuiteID
    public var groupID: GroupID
    public init(suite: CipherSuiteID, groupID: GroupID) {
        self.suite = suite
        self.groupID = groupID
    }

    /// HPKE info = "DCGKA 2SM" ‖ suite ‖ groupID ‖ senderID ‖ recipientID.
    public func info(sender: MemberID, recipient: MemberID) -> [UInt8] {
        var writer = WireWriter(capacity: 106)
        writer.writeFixed(TwoPartyBinding.label)
        writer.write(suite)
        writer.write(groupID)
        writer.write(sender)
        writer.write(recipient)
        return writer.bytes
    }

    static let label: [UInt8] = Array("DCGKA 2SM".utf8)
}

/// Why a 2SM message could not be sent or received. The state is unchanged whenever one is thrown.
public enum TwoPartyError: Error, Equatable, Hashable, Sendable {
    /// No public key of the peer is known yet (no bundle, nothing received).
    case noPeerKey
    /// The header names a key of mine I do not have (never made, or already used and deleted).
    case unknownKeyIndex(UInt64)
    /// The header names a prekey whose secret I no longer keep (expired) or never had.
    case unknownPrekey
    /// The header says the sender's key was used, but I hold no secret from that sender.
    case noReceivedKey
    case decryptionFailed(CryptoError)
    case malformedPlaintext(WireError)
    /// The sender's next key is a point of small order (every message to it would fail, §2.1).
    case lowOrderKey
    /// This channel has used every key index a header can name (2^48; not reachable in practice).
    case keysExhausted
    case encryptionFailed(CryptoError)
}

/// What one 2SM message carries (§3.2): the message, the secret key the sender made for my next
/// reply to it, and the sender's new public key with its index.
public struct TwoPartyPlaintext: Sendable {
    public var message: [UInt8]
    public var keyForMe: Bytes32
    public var peerIndex: UInt64
    public var peerKey: PKEPublicKey
}

/// The 2SM state of one ordered pair (me, peer) in one group (§3.1).
///
/// A value: `send` and `receive` are `mutating` and leave the state exactly as it was when
/// they throw, so a failed message never breaks the channel.
public struct TwoPartyState: Sendable, WireCodable {
    /// My secret keys by index (index ≥ 1; index 0, my prekeys, lives in the ``PrekeyStore``).
    public private(set) var mySecretKeys: [UInt64: PKESecretKey]
    public private(set) var nextIndex: UInt64
    /// A secret key the peer generated for me.
    public var receivedSecretKey: PKESecretKey? { receivedSecretBytes.map { PKESecretKey(secretBytes: $0) } }
    /// Kept as bytes: parsing an X25519 key computes its public key (a scalar multiplication), and
    /// most received keys are replaced before they are ever used (a new member gets one from every
    /// member's add-ack), so the key is parsed only when a message needs it.
    private var receivedSecretBytes: Bytes32?
    /// Where my next message is encrypted to.
    public private(set) var otherPublicKey: PKEPublicKey?
    public private(set) var otherKeyOrigin: KeyOrigin
    public private(set) var otherKeyIndex: UInt64?

    /// `init(peer)`: the peer's prekey is the first key I encrypt to. Pass `nil` when the instance
    /// is created by receiving first; sending is then possible after the first receive.
    public init(peerPrekey: PKEPublicKey?) {
        mySecretKeys = [:]
        nextIndex = 1
        receivedSecretBytes = nil
        otherPublicKey = peerPrekey
        otherKeyOrigin = .other
        otherKeyIndex = 0
    }

    /// Points my next message at a fresh key the peer published for that purpose (a resync
    /// request, §5.7), as if it were the peer's prekey: the peer may have lost the keys my channel
    /// would otherwise use. Nothing else changes, so whatever the peer still sends on its old view
    /// of my keys (in flight, or after) is still read.
    public mutating func repoint(toPeerKey key: PKEPublicKey) {
        otherPublicKey = key
        otherKeyOrigin = .other
        otherKeyIndex = 0
    }

    /// Send(m) of §3.2.
    public mutating func send<R: RandomNumberGenerator>(
        _ message: [UInt8], from me: MemberID, to peer: MemberID, binding: TwoPartyBinding, using rng: inout R
    ) throws(TwoPartyError) -> TwoPartyMessage {
        guard let otherPublicKey else { throw .noPeerKey }
        guard nextIndex < TwoPartyHeader.maximumIndex else { throw .keysExhausted }
        let mine = PKESecretKey.generate(using: &rng)
        let forPeer = PKESecretKey.generate(using: &rng)
        let header = TwoPartyHeader(
            origin: otherKeyOrigin, index: otherKeyIndex,
            prekey: otherKeyOrigin == .other && otherKeyIndex == 0 ? otherPublicKey : nil)
        var plaintext = WireWriter(capacity: message.count + 80)
        plaintext.writeLengthPrefixed(message)
        plaintext.write(forPeer)
        plaintext.writeVarint(nextIndex)
        plaintext.write(mine.publicKey)
        let ciphertext: [UInt8]
        do {
            ciphertext = try binding.suite.suite.pkeSeal(
                to: otherPublicKey, info: binding.info(sender: me, recipient: peer),
                aad: header.wireBytes, plaintext: plaintext.bytes, using: &rng)
        } catch {
            throw .encryptionFailed(error)
        }
        mySecretKeys[nextIndex] = mine
        // Bounded by design, far below what the decoder accepts: a peer that never answers (a
        // silent newcomer I keep forwarding to) cannot grow my state without limit. Its answer to
        // one of the oldest messages then fails, typed (`unknownKeyIndex`), and §5.7 takes over.
        if mySecretKeys.count > Self.maximumOutstandingKeys, let oldest = mySecretKeys.keys.min() {
            mySecretKeys[oldest] = nil
        }
        nextIndex += 1
        self.otherPublicKey = forPeer.publicKey
        otherKeyOrigin = .me
        otherKeyIndex = nil
        return TwoPartyMessage(header: header, ciphertext: ciphertext)
    }

    /// The secret bytes of the key of mine that a message with `header` was encrypted to, when it
    /// is not a prekey (prekeys live in the ``PrekeyStore``): one of my indexed keys, or the key the
    /// peer gave me (as bytes: parsing a key computes its public key).
    public func secretKeyBytes(for header: TwoPartyHeader) -> Bytes32? {
        switch header.origin {
        case .other:
            guard let index = header.index, index > 0 else { return nil }
            return mySecretKeys[index]?.secretBytes32
        case .me:
            return receivedSecretBytes
        }
    }

    /// The secret bytes of ``receivedSecretKey``, without parsing it.
    public var receivedSecretKeyBytes: Bytes32? { receivedSecretBytes }

    /// Receive of §3.3.
    public mutating func receive(
        _ message: TwoPartyMessage, from peer: MemberID, to me: MemberID, binding: TwoPartyBinding, prekeys: PrekeyStore
    ) throws(TwoPartyError) -> [UInt8] {
        let secret: PKESecretKey
        switch message.header.origin {
        case .other:
            let index = message.header.index ?? 0
            if index == 0 {
                guard let prekey = message.header.prekey, let key = prekeys.secret(for: prekey) else { throw .unknownPrekey }
                secret = key
            } else {
                guard let key = mySecretKeys[index] else { throw .unknownKeyIndex(index) }
                secret = key
            }
        case .me:
            guard let receivedSecretKey else { throw .noReceivedKey }
            secret = receivedSecretKey
        }
        let opened = try Self.open(message, with: secret, from: peer, to: me, binding: binding)
        // Only now, with the message authenticated and parsed, does the state change.
        if message.header.origin == .other, let index = message.header.index, index > 0 {
            var keepsUsedKeys = false
            #if DEBUG
            keepsUsedKeys = PlantedDefects.isActive(.keepUsedTwoPartyKey)
            #endif
            if !keepsUsedKeys { mySecretKeys = mySecretKeys.filter { $0.key > index } }
        }
        receivedSecretBytes = opened.keyForMe
        otherKeyIndex = opened.peerIndex
        otherPublicKey = opened.peerKey
        otherKeyOrigin = .other
        return opened.message
    }

    /// Decrypts and parses one 2SM message with `secret`, changing nothing: what ``receive(_:from:to:binding:prekeys:)``
    /// does before it updates the state (and what the simulator's key-recovery attacker does with
    /// the keys it finds in a seized state).
    public static func open(
        _ message: TwoPartyMessage, with secret: PKESecretKey, from peer: MemberID, to me: MemberID, binding: TwoPartyBinding
    ) throws(TwoPartyError) -> TwoPartyPlaintext {
        let plaintext: [UInt8]
        do {
            plaintext = try binding.suite.suite.pkeOpen(
                with: secret, info: binding.info(sender: peer, recipient: me),
                aad: message.header.wireBytes, ciphertext: message.ciphertext)
        } catch {
            throw .decryptionFailed(error)
        }
        let opened: TwoPartyPlaintext
        do throws(WireError) {
            var reader = WireReader(plaintext)
            let content = try reader.readLengthPrefixed(field: "2SM plaintext", limit: TwoPartyMessage.maximumCiphertextLength)
            let forMe = try reader.read(Bytes32.self)
            let peerIndex = try reader.readVarint()
            // The sender's key indices start at 1 (0 names a prekey in a header) and must fit in the
            // header we will send back naming this key (TwoPartyHeader.maximumIndex).
            guard peerIndex >= 1, peerIndex <= TwoPartyHeader.maximumIndex else {
                throw WireError.invalidValue(field: "2SM sender index")
            }
            let peerKey = try reader.read(PKEPublicKey.self)
            try reader.finish()
            opened = TwoPartyPlaintext(message: content, keyForMe: forMe, peerIndex: peerIndex, peerKey: peerKey)
        } catch {
            throw .malformedPlaintext(error)
        }
        // Refused on arrival: a low-order key would fail my next message to this peer.
        guard !opened.peerKey.isLowOrder else { throw .lowOrderKey }
        return opened
    }

    public static let maximumStoredKeys = 1 << 16
    /// My keys a peer may still answer to: the most recent ones are kept, at most this many.
    public static let maximumOutstandingKeys = 1 << 10

    public func encode(to writer: inout WireWriter) {
        let keys = mySecretKeys.sorted { $0.key < $1.key }
        writer.writeVarint(keys.count)
        for (index, key) in keys {
            writer.writeVarint(index)
            writer.write(key)
        }
        writer.writeVarint(nextIndex)
        writer.writeOptional(receivedSecretBytes)  // the same 32 bytes a PKESecretKey encodes to
        writer.writeOptional(otherPublicKey)
        writer.writeUInt8(otherKeyOrigin.rawValue)
        writer.writeOptional(otherKeyIndex)
    }

    public static func decode(from reader: inout WireReader) throws(WireError) -> TwoPartyState {
        var state = TwoPartyState(peerPrekey: nil)
        let count = try reader.readBoundedVarint(field: "2SM keys", limit: maximumStoredKeys)
        var last: UInt64 = 0
        for _ in 0..<count {
            let index = try reader.readVarint()
            guard index > last, index <= TwoPartyHeader.maximumIndex else { throw .invalidValue(field: "2SM key order") }
            last = index
            state.mySecretKeys[index] = try reader.read(PKESecretKey.self)
        }
        state.nextIndex = try reader.readVarint()
        // Indices must fit the header that names them (found by fuzzing: a larger one made `send`
        // write an undecodable header, or trap on overflow).
        guard state.nextIndex > last, state.nextIndex <= TwoPartyHeader.maximumIndex else { throw .invalidValue(field: "2SM next index") }
        state.receivedSecretBytes = try reader.readOptional(field: "2SM received key")
        state.otherPublicKey = try reader.readOptional(field: "2SM other key")
        let tag = try reader.readUInt8()
        guard let origin = KeyOrigin(rawValue: tag) else { throw .unknownTag(field: "2SM key origin", tag: tag) }
        state.otherKeyOrigin = origin
        state.otherKeyIndex = try reader.readOptional(field: "2SM other index")
        guard (origin == .me) == (state.otherKeyIndex == nil), (state.otherKeyIndex ?? 0) <= TwoPartyHeader.maximumIndex else {
            throw .invalidValue(field: "2SM other index")
        }
        return state
    }
}

extension TwoPartyState: Equatable {
    public static func == (lhs: TwoPartyState, rhs: TwoPartyState) -> Bool {
        let received: Bool
        switch (lhs.receivedSecretBytes, rhs.receivedSecretBytes) {
        case (nil, nil): received = true
        case let (a?, b?): received = ConstantTime.equal(a.bytes, b.bytes)
        default: received = false
        }
        return received && lhs.mySecretKeys == rhs.mySecretKeys && lhs.nextIndex == rhs.nextIndex
            && lhs.otherPublicKey == rhs.otherPublicKey && lhs.otherKeyOrigin == rhs.otherKeyOrigin
            && lhs.otherKeyIndex == rhs.otherKeyIndex
    }
}

extension TwoPartyState: RedactedDescription {}
extension TwoPartyPlaintext: RedactedDescription {}
