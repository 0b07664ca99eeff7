public import DCGKAEncoding
public import DCGKACrypto
internal import Crypto

/// The link handshake of NETWORK.md §12: `Noise_XX_25519_ChaChaPoly_SHA256` with each side's
/// Ed25519 identity bound to its Noise static key, as a sans-IO state machine.
///
/// It does no I/O and reads no clock: the host moves bytes. Each side makes a fresh X25519 static
/// key for this link (and its ephemeral key) from the generator it is given, and proves that its
/// long-term ``IdentityKey`` owns that static key by signing it, the way libp2p-noise does. Noise
/// proves possession of the static key; the signature ties the identity to it; so a completed
/// handshake authenticates both ``MemberID``s without any certificate.
///
/// ## Messages
///
///     1. initiator → responder   e                      payload: empty
///     2. responder → initiator   e, ee, s, es           payload: the responder's identity proof
///     3. initiator → responder   s, se                  payload: the initiator's identity proof
///
/// The prologue is the ASCII bytes `"DCGKA link v1"` (``prologue``), so a peer speaking anything
/// else fails at the first authenticated message.
///
/// ## Identity proof (the payload of messages 2 and 3)
///
///     offset  size  field
///     0       32    identity: the sender's Ed25519 public key (its MemberID)
///     32      64    signature: Ed25519 by that identity over
///                   "DCGKA link static key:" (22 ASCII bytes) ‖ the sender's Noise static public key (32 bytes)
///     96      2     n: length of the application payload, big-endian, 0...1024
///     98      n     application payload (an invite token, for instance; opaque to the link)
///
/// The payload is exactly `98 + n` bytes: one encoding per value, anything else is
/// ``LinkError/malformedPayload``. The signature is checked against the static key the Noise
/// handshake actually delivered, so a proof copied from another link does not verify.
///
/// The initiator checks the responder's proof (and, if given, that it is `expectedPeer`) when it
/// reads message 2, *before* it writes message 3: with `expectedPeer` given, its own identity (and
/// application payload) is revealed only to the peer it meant to reach. The responder learns the initiator's identity from message 3; its own
/// application payload, sent in message 2, is encrypted but goes to a not-yet-authenticated
/// initiator, so it should carry nothing secret.
///
/// ## Driving it
///
///     var handshake = try LinkHandshake.initiator(identity: me, expectedPeer: relayID, random: &rng)
///     while !handshake.isComplete {
///         if handshake.action == .write {
///             try await socket.send(handshake.write())
///         } else {
///             try handshake.read(await socket.receive())
///         }
///     }
///     var link = try handshake.finish()   // link.peer is the authenticated identity
///
/// Over TCP each message travels in a ``LinkRecordFraming`` record; over WebSocket in one binary
/// frame. Any error ends the handshake: every later call throws ``LinkError/dead``.
public struct LinkHandshake: Sendable, RedactedDescription {
    /// Which side of the handshake this is.
    public enum Role: Sendable, Equatable {
        /// The side that connects and writes message 1 (it may know whom it expects).
        case initiator
        /// The side that accepts and learns who connected from message 3.
        case responder
    }

    /// What the host does next.
    public enum Action: Sendable, Equatable {
        /// Call ``LinkHandshake/write()`` and send its bytes.
        case write
        /// Wait for the peer's next message and pass it to ``LinkHandshake/read(_:)``.
        case read
        /// The handshake completed: call ``LinkHandshake/finish()`` for the transport.
        case complete
        /// ``LinkHandshake/finish()`` was called; the keys live in the transport now.
        case finished
        /// A call threw; nothing more can be done with this handshake.
        case dead
    }

    /// The Noise prologue: both sides mix it into the handshake hash, so that only this protocol
    /// and version can complete.
    public static let prologue = Array("DCGKA link v1".utf8)
    /// What each identity signs, followed by its Noise static public key.
    public static let staticKeyLabel = Array("DCGKA link static key:".utf8)
    /// The largest application payload (invite token or other) either side may attach.
    public static let maximumPayloadBytes = 1024
    /// The size of an identity proof with an empty application payload.
    static let proofBytes = 32 + Signature.byteCount + 2

    /// This side's role.
    public let role: Role
    /// This side's identity.
    public var identity: MemberID { identityKey.id }
    /// The identity the initiator requires of the responder, if any.
    public let expectedPeer: MemberID?
    /// The peer's authenticated identity: known to the initiator after message 2, to the responder
    /// after message 3.
    public private(set) var peer: MemberID?
    /// The application payload the peer attached to its identity proof (known with ``peer``).
    public private(set) var peerPayload: [UInt8]?

    private let identityKey: IdentityKey
    private let payload: [UInt8]
    private var noise: NoiseXXHandshakeState?
    private var state: Action
    /// Tests replace this side's identity proof with these bytes (a proof by another key, say).
    var proofOverride: [UInt8]?
    /// This side's Noise static public key (for the tests' forged proofs).
    var localStaticKey: [UInt8]? { noise?.localStaticPublicKey }

    init(
        role: Role, identity: IdentityKey, expectedPeer: MemberID?, payload: [UInt8],
        staticKey: Curve25519.KeyAgreement.PrivateKey, ephemeralKey: Curve25519.KeyAgreement.PrivateKey
    ) throws(LinkError) {
        guard payload.count <= Self.maximumPayloadBytes else { throw .payloadTooLarge(count: payload.count) }
        self.role = role
        self.identityKey = identity
        self.expectedPeer = expectedPeer
        self.payload = payload
        self.noise = NoiseXXHandshakeState(
            initiator: role == .initiator, prologue: Self.prologue, localStatic: staticKey, localEphemeral: ephemeralKey)
        self.state = role == .initiator ? .write : .read
    }

    init<R: RandomNumberGenerator>(
        role: Role, identity: IdentityKey, expectedPeer: MemberID?, payload: [UInt8], random: inout R
    ) throws(LinkError) {
        guard payload.count <= Self.maximumPayloadBytes else { throw .payloadTooLarge(count: payload.count) }
        let staticKey = try! Curve25519.KeyAgreement.PrivateKey(rawRepresentation: random.bytes(32))
        let ephemeralKey = try! Curve25519.KeyAgreement.PrivateKey(rawRepresentation: random.bytes(32))
        try self.init(
            role: role, identity: identity, expectedPeer: expectedPeer, payload: payload,
            staticKey: staticKey, ephemeralKey: ephemeralKey)
    }

    /// The side that connects.
    ///
    /// - Parameters:
    ///   - identity: this device's identity key; it signs the link's fresh static key.
    ///   - expectedPeer: the identity the responder must prove (a relay's address names it, a
    ///     contact on the LAN claims it); `nil` accepts any identity, for the host to judge after.
    ///   - payload: sent in message 3, after the responder was authenticated (an invite token for
    ///     a relay, for instance); at most ``maximumPayloadBytes``.
    ///   - random: the source of the link's static and ephemeral keys (the OS generator in production).
    /// - Throws: ``LinkError/payloadTooLarge(count:)``.
    public static func initiator(
        identity: IdentityKey, expectedPeer: MemberID?, payload: [UInt8] = [],
        random: inout some RandomNumberGenerator
    ) throws(LinkError) -> LinkHandshake {
        try LinkHandshake(role: .initiator, identity: identity, expectedPeer: expectedPeer, payload: payload, random: &random)
    }

    /// The side that accepts.
    ///
    /// - Parameters:
    ///   - identity: this device's (or relay's) identity key.
    ///   - payload: sent in message 2 to a not-yet-authenticated initiator; at most
    ///     ``maximumPayloadBytes``.
    ///   - random: the source of the link's static and ephemeral keys.
    /// - Throws: ``LinkError/payloadTooLarge(count:)``.
    public static func responder(
        identity: IdentityKey, payload: [UInt8] = [], random: inout some RandomNumberGenerator
    ) throws(LinkError) -> LinkHandshake {
        try LinkHandshake(role: .responder, identity: identity, expectedPeer: nil, payload: payload, random: &random)
    }

    /// What the host does next.
    public var action: Action { state }

    /// Whether both sides are authenticated and the transport keys exist (``finish()`` is next).
    public var isComplete: Bool { state == .complete }

    /// The Noise handshake hash once the handshake completed (until ``finish()``, which hands it to
    /// the transport): equal on both sides and unique to this link, for channel binding (signing it
    /// proves presence on this very link).
    public var handshakeHash: [UInt8]? {
        guard let noise, noise.isComplete else { return nil }
        return noise.handshakeHash
    }

    /// The next message to send. Call it when ``action`` is ``Action/write``.
    ///
    /// - Throws: ``LinkError/outOfTurn`` when a message is awaited or the handshake is complete,
    ///   ``LinkError/lowOrderKey`` when the initiator's ephemeral key was of small order, or the
    ///   state errors ``LinkError/finished`` and ``LinkError/dead``.
    public mutating func write() throws(LinkError) -> [UInt8] {
        do throws(LinkError) {
            try checkAlive()
            guard state == .write, var noise = self.noise else { throw .outOfTurn }
            let index = noise.messageIndex
            let message = try noise.writeMessage(payload: index == 0 ? [] : proof(staticKey: noise.localStaticPublicKey))
            self.noise = noise
            state = noise.isComplete ? .complete : .read
            return message
        } catch {
            kill()
            throw error
        }
    }

    /// Reads the peer's next message. Call it when ``action`` is ``Action/read``.
    ///
    /// - Throws: ``LinkError/unexpectedMessage`` when no message is awaited (an extra or replayed
    ///   message); ``LinkError/messageTooLarge(count:)``, ``LinkError/truncatedMessage``,
    ///   ``LinkError/decryptionFailed``, ``LinkError/lowOrderKey``, ``LinkError/malformedPayload``,
    ///   ``LinkError/badSignature`` or ``LinkError/unexpectedPeer(expected:actual:)`` when the message
    ///   does not authenticate the expected peer; ``LinkError/finished`` or ``LinkError/dead``.
    public mutating func read(_ message: [UInt8]) throws(LinkError) {
        do throws(LinkError) {
            try checkAlive()
            guard message.count <= Noise.maximumMessageBytes else { throw .messageTooLarge(count: message.count) }
            guard state == .read, var noise = self.noise else { throw .unexpectedMessage }
            let index = noise.messageIndex
            let received = try noise.readMessage(message)
            if index == 0 {
                guard received.isEmpty else { throw .malformedPayload }
            } else {
                guard let remoteStatic = noise.remoteStatic else { throw .malformedPayload }
                let (identity, extra) = try Self.verifyProof(received, staticKey: remoteStatic)
                if let expectedPeer, expectedPeer != identity {
                    throw .unexpectedPeer(expected: expectedPeer, actual: identity)
                }
                peer = identity
                peerPayload = extra
            }
            self.noise = noise
            state = noise.isComplete ? .complete : .write
        } catch {
            kill()
            throw error
        }
    }

    /// Hands the transport keys over once the handshake is complete. Call it exactly once; the
    /// handshake keeps no keys afterwards.
    ///
    /// - Throws: ``LinkError/handshakeIncomplete`` before completion, ``LinkError/finished`` on a
    ///   second call, ``LinkError/dead`` after an error.
    public mutating func finish() throws(LinkError) -> LinkTransport {
        do throws(LinkError) {
            try checkAlive()
            guard state == .complete, let noise, let peer else { throw .handshakeIncomplete }
            let (send, receive) = noise.split()
            self.noise = nil
            state = .finished
            return LinkTransport(
                peer: peer, peerPayload: peerPayload ?? [], handshakeHash: noise.handshakeHash,
                isInitiator: role == .initiator, sender: send, receiver: receive)
        } catch {
            kill()
            throw error
        }
    }

    private func checkAlive() throws(LinkError) {
        switch state {
        case .dead: throw .dead
        case .finished: throw .finished
        default: break
        }
    }

    /// After an error nothing works any more; a finished handshake stays finished.
    private mutating func kill() {
        guard state != .finished else { return }
        state = .dead
        noise = nil
    }

    // MARK: - Identity proof

    /// The bytes an identity signs to own a Noise static key.
    static func signedBytes(staticKey: [UInt8]) -> [UInt8] { staticKeyLabel + staticKey }

    private func proof(staticKey: [UInt8]) -> [UInt8] {
        if let proofOverride { return proofOverride }
        return Self.proof(identity: identityKey, staticKey: staticKey, payload: payload)
    }

    /// identity ‖ signature ‖ n (2 bytes, big-endian) ‖ payload.
    static func proof(identity: IdentityKey, staticKey: [UInt8], payload: [UInt8]) -> [UInt8] {
        let signature = identity.sign(signedBytes(staticKey: staticKey))
        var out = identity.id.bytes + signature.bytes
        out.reserveCapacity(proofBytes + payload.count)
        out += [UInt8(payload.count >> 8), UInt8(payload.count & 0xff)]
        out += payload
        return out
    }

    /// Parses an identity proof and checks its signature over `staticKey`.
    static func verifyProof(_ bytes: [UInt8], staticKey: [UInt8]) throws(LinkError) -> (MemberID, [UInt8]) {
        guard bytes.count >= proofBytes else { throw .malformedPayload }
        let length = Int(bytes[96]) << 8 | Int(bytes[97])
        guard length <= maximumPayloadBytes, bytes.count == proofBytes + length else { throw .malformedPayload }
        let identity = MemberID(bytes: Array(bytes[0..<32]))!
        let signature = Signature(bytes: Array(bytes[32..<96]))
        guard identity.isValidSignature(signature, for: signedBytes(staticKey: staticKey)) else { throw .badSignature }
        return (identity, Array(bytes[proofBytes...]))
    }

    /// The role, the next action and the peer; never a key.
    public var description: String {
        "LinkHandshake(role: \(role), action: \(state), peer: \(peer.map(\.description) ?? "unknown"), keys redacted)"
    }
}
