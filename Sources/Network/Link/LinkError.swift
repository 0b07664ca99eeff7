public import DCGKAEncoding

/// Why a link refused a message or a call (NETWORK.md §12).
///
/// Every error ends what threw it: a ``LinkHandshake``, a ``LinkTransport`` or a
/// ``LinkRecordFraming`` reader that has thrown once throws ``dead`` on every later call, so a host
/// cannot carry on over a channel that was tampered with or confused. The host closes the
/// connection and, if it wants, starts a new handshake.
public enum LinkError: Error, Equatable, Sendable {
    // MARK: Sizes

    /// A Noise message longer than 65535 bytes (the Noise limit), whether being written or read.
    case messageTooLarge(count: Int)
    /// A message shorter than its handshake message or a transport message needs (a missing key,
    /// tag or payload); records shorter than 16 bytes are refused by the framing for the same reason.
    case truncatedMessage
    /// An application payload for the handshake longer than ``LinkHandshake/maximumPayloadBytes``.
    case payloadTooLarge(count: Int)
    /// A handshake payload that is not laid out as ``LinkHandshake`` documents (wrong length, a
    /// non-empty payload in message 1).
    case malformedPayload

    // MARK: Cryptography

    /// An AEAD tag did not verify: the message was tampered with, truncated inside its payload,
    /// replayed, reordered, or belongs to another handshake.
    case decryptionFailed
    /// A Diffie-Hellman output was all zero: the peer sent a key of small order.
    case lowOrderKey
    /// The peer's identity key does not sign its Noise static key (a signature by another key, over
    /// another static key, or an identity key of small order).
    case badSignature
    /// The responder proved an identity other than the one the initiator was told to expect.
    case unexpectedPeer(expected: MemberID, actual: MemberID)
    /// A cipher state reached nonce 2^64 − 1, which Noise reserves; the link must be rekeyed by a
    /// new handshake.
    case nonceExhausted

    // MARK: State

    /// A message arrived when none was expected: it is this side's turn to write, the handshake is
    /// already complete (an extra or replayed message).
    case unexpectedMessage
    /// ``LinkHandshake/write()`` was called while the peer's message was awaited or after the
    /// handshake completed.
    case outOfTurn
    /// ``LinkHandshake/finish()`` was called before the handshake completed.
    case handshakeIncomplete
    /// ``LinkHandshake/finish()`` already handed the keys to a ``LinkTransport``; the handshake
    /// does nothing more (two transports with the same keys would reuse nonces).
    case finished
    /// An earlier call threw: this state machine is dead and refuses everything.
    case dead
}
