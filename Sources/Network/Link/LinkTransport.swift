public import DCGKAEncoding

/// The encrypted channel after a completed ``LinkHandshake`` (NETWORK.md §12): Noise transport
/// messages in both directions, each with its own key and nonce counter.
///
/// The host carries a byte stream (the §11 sync frames): it passes whatever it wants to send to
/// ``seal(_:)``, sends each returned message (one ``LinkRecordFraming`` record each over TCP, one
/// binary frame each over WebSocket), and concatenates what ``open(_:)`` returns for the messages
/// it receives, in order. Message boundaries carry no meaning to the stream.
///
/// The nonces are implicit counters, so a message that is replayed, reordered, dropped or
/// tampered with fails to open (``LinkError/decryptionFailed``) and the transport dies: a link is
/// a reliable ordered stream, anything else is an attack or a broken carrier.
///
/// Keep one value per link and mutate it in place (behind a lock if several tasks use it): a copy
/// that also seals would reuse the nonces of the original.
public struct LinkTransport: Sendable, RedactedDescription {
    /// The largest Noise message (65535 bytes).
    public static let maximumMessageBytes = Noise.maximumMessageBytes
    /// The most plaintext one message carries (65535 − 16 bytes of tag).
    public static let maximumPlaintextBytes = Noise.maximumPlaintextBytes

    /// The peer's identity, authenticated by the handshake.
    public let peer: MemberID
    /// The application payload the peer attached to its identity proof (empty if none).
    public let peerPayload: [UInt8]
    /// The Noise handshake hash: equal on both sides, unique to this link (channel binding).
    public let handshakeHash: [UInt8]
    /// Whether this side initiated the link.
    public let isInitiator: Bool

    var sender: NoiseCipherState
    var receiver: NoiseCipherState
    private var isDead = false

    init(
        peer: MemberID, peerPayload: [UInt8], handshakeHash: [UInt8], isInitiator: Bool,
        sender: NoiseCipherState, receiver: NoiseCipherState
    ) {
        self.peer = peer
        self.peerPayload = peerPayload
        self.handshakeHash = handshakeHash
        self.isInitiator = isInitiator
        self.sender = sender
        self.receiver = receiver
    }

    /// Encrypts `plaintext` into as many transport messages as it needs, each at most
    /// ``maximumMessageBytes`` (``maximumPlaintextBytes`` of plaintext). An empty plaintext gives
    /// one message with an empty payload (16 bytes), which a host may send as a keep-alive.
    ///
    /// - Throws: ``LinkError/nonceExhausted`` after 2^64 − 1 messages (then ``LinkError/dead``).
    public mutating func seal(_ plaintext: [UInt8]) throws(LinkError) -> [[UInt8]] {
        guard !isDead else { throw .dead }
        var messages: [[UInt8]] = []
        messages.reserveCapacity(max(1, (plaintext.count + Self.maximumPlaintextBytes - 1) / Self.maximumPlaintextBytes))
        var start = 0
        repeat {
            let end = min(plaintext.count, start + Self.maximumPlaintextBytes)
            do throws(LinkError) {
                messages.append(try sender.encrypt(ad: [], plaintext: plaintext[start..<end]))
            } catch {
                isDead = true
                throw error
            }
            start = end
        } while start < plaintext.count
        return messages
    }

    /// Decrypts the peer's next transport message.
    ///
    /// - Throws: ``LinkError/messageTooLarge(count:)``, ``LinkError/truncatedMessage`` (shorter than
    ///   its tag), ``LinkError/decryptionFailed`` (tampered, replayed, reordered or foreign),
    ///   ``LinkError/nonceExhausted``; afterwards ``LinkError/dead``.
    public mutating func open(_ message: [UInt8]) throws(LinkError) -> [UInt8] {
        guard !isDead else { throw .dead }
        do throws(LinkError) {
            guard message.count <= Self.maximumMessageBytes else { throw .messageTooLarge(count: message.count) }
            return try receiver.decrypt(ad: [], ciphertext: message[...])
        } catch {
            isDead = true
            throw error
        }
    }

    /// The peer; never a key.
    public var description: String { "LinkTransport(peer: \(peer), keys redacted)" }
}
