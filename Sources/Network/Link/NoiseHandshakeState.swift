internal import DCGKAEncoding
internal import DCGKACrypto
internal import Crypto

/// A Noise HandshakeState (§5.3) for `Noise_XX_25519_ChaChaPoly_SHA256` and nothing else:
///
///     XX:
///       -> e
///       <- e, ee, s, es
///       -> s, se
///
/// Both key pairs are given when the state is made (from an injected generator, or explicitly for
/// the published vectors), so writing and reading need no randomness. There are no pre-messages
/// and no PSK. Each message is at most 65535 bytes, checked before anything is written and
/// before anything is read. A Diffie-Hellman output of all zeros (a peer key of small order) is
/// refused with ``LinkError/lowOrderKey``.
///
/// The state is not usable after it throws; ``LinkHandshake`` enforces that.
struct NoiseXXHandshakeState: Sendable, RedactedDescription {
    static let protocolName = Array("Noise_XX_25519_ChaChaPoly_SHA256".utf8)
    /// The number of handshake messages of XX.
    static let messageCount = 3

    let isInitiator: Bool
    private(set) var symmetric: NoiseSymmetricState
    private let localStatic: Curve25519.KeyAgreement.PrivateKey
    private let localEphemeral: Curve25519.KeyAgreement.PrivateKey
    private(set) var remoteStatic: [UInt8]?
    private(set) var remoteEphemeral: [UInt8]?
    /// How many handshake messages were written or read (0...3).
    private(set) var messageIndex = 0

    /// Initialize (§5.3): InitializeSymmetric with the protocol name, then MixHash(prologue).
    init(
        initiator: Bool, prologue: [UInt8],
        localStatic: Curve25519.KeyAgreement.PrivateKey, localEphemeral: Curve25519.KeyAgreement.PrivateKey
    ) {
        isInitiator = initiator
        symmetric = NoiseSymmetricState(protocolName: Self.protocolName)
        symmetric.mixHash(prologue)
        self.localStatic = localStatic
        self.localEphemeral = localEphemeral
    }

    var localStaticPublicKey: [UInt8] { Array(localStatic.publicKey.rawRepresentation) }
    var localEphemeralPublicKey: [UInt8] { Array(localEphemeral.publicKey.rawRepresentation) }

    var isComplete: Bool { messageIndex == Self.messageCount }
    /// Whether the next message is this side's to write (messages 0 and 2 are the initiator's).
    var isWriteTurn: Bool { !isComplete && isInitiator == (messageIndex % 2 == 0) }
    var isReadTurn: Bool { !isComplete && !isWriteTurn }
    /// The handshake hash `h` (after the last message, the channel binding).
    var handshakeHash: [UInt8] { symmetric.hash }

    /// The bytes message `index` adds before its payload.
    static func overhead(ofMessage index: Int) -> Int {
        switch index {
        case 0: Noise.dhBytes  // e (no key yet, so the payload is not encrypted)
        case 1: Noise.dhBytes + Noise.dhBytes + Noise.tagBytes + Noise.tagBytes  // e, s encrypted, payload tag
        default: Noise.dhBytes + Noise.tagBytes + Noise.tagBytes  // s encrypted, payload tag
        }
    }

    static func dh(_ local: Curve25519.KeyAgreement.PrivateKey, _ remote: [UInt8]) throws(LinkError) -> [UInt8] {
        guard let publicKey = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: remote),
              let shared = try? local.sharedSecretFromKeyAgreement(with: publicKey)
        else { throw .lowOrderKey }
        let bytes = shared.withUnsafeBytes { Array($0) }
        guard !ConstantTime.isZero(bytes) else { throw .lowOrderKey }
        return bytes
    }

    /// WriteMessage: the next handshake message carrying `payload`.
    mutating func writeMessage(payload: [UInt8]) throws(LinkError) -> [UInt8] {
        guard isWriteTurn else { throw .outOfTurn }
        let total = Self.overhead(ofMessage: messageIndex) + payload.count
        guard total <= Noise.maximumMessageBytes else { throw .messageTooLarge(count: total) }
        var out: [UInt8] = []
        out.reserveCapacity(total)
        switch messageIndex {
        case 0:  // -> e
            out += localEphemeralPublicKey
            symmetric.mixHash(localEphemeralPublicKey)
        case 1:  // <- e, ee, s, es
            guard let re = remoteEphemeral else { throw .outOfTurn }
            out += localEphemeralPublicKey
            symmetric.mixHash(localEphemeralPublicKey)
            symmetric.mixKey(try Self.dh(localEphemeral, re))
            out += try symmetric.encryptAndHash(localStaticPublicKey)
            symmetric.mixKey(try Self.dh(localStatic, re))  // es, responder side
        default:  // -> s, se
            guard let re = remoteEphemeral else { throw .outOfTurn }
            out += try symmetric.encryptAndHash(localStaticPublicKey)
            symmetric.mixKey(try Self.dh(localStatic, re))  // se, initiator side
        }
        out += try symmetric.encryptAndHash(payload)
        messageIndex += 1
        return out
    }

    /// ReadMessage: the payload of the peer's next handshake message.
    mutating func readMessage(_ message: [UInt8]) throws(LinkError) -> [UInt8] {
        guard message.count <= Noise.maximumMessageBytes else { throw .messageTooLarge(count: message.count) }
        guard isReadTurn else { throw .unexpectedMessage }
        guard message.count >= Self.overhead(ofMessage: messageIndex) else { throw .truncatedMessage }
        var rest = message[...]
        func take(_ count: Int) -> ArraySlice<UInt8> {
            defer { rest = rest.dropFirst(count) }
            return rest.prefix(count)
        }
        switch messageIndex {
        case 0:  // -> e
            let re = Array(take(Noise.dhBytes))
            remoteEphemeral = re
            symmetric.mixHash(re)
        case 1:  // <- e, ee, s, es
            let re = Array(take(Noise.dhBytes))
            remoteEphemeral = re
            symmetric.mixHash(re)
            symmetric.mixKey(try Self.dh(localEphemeral, re))
            let rs = try symmetric.decryptAndHash(take(Noise.dhBytes + Noise.tagBytes))
            remoteStatic = rs
            symmetric.mixKey(try Self.dh(localEphemeral, rs))  // es, initiator side
        default:  // -> s, se
            let rs = try symmetric.decryptAndHash(take(Noise.dhBytes + Noise.tagBytes))
            remoteStatic = rs
            symmetric.mixKey(try Self.dh(localEphemeral, rs))  // se, responder side
        }
        let payload = try symmetric.decryptAndHash(rest)
        messageIndex += 1
        return payload
    }

    /// Split, after the last message: (the CipherState this side sends with, the one it receives with).
    func split() -> (send: NoiseCipherState, receive: NoiseCipherState) {
        precondition(isComplete, "Split before the handshake completed")
        let (c1, c2) = symmetric.split()
        return isInitiator ? (c1, c2) : (c2, c1)
    }
}
