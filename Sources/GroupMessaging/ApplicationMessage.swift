public import DCGKAEncoding
public import DCGKACrypto

/// Limits of the message ratchets (§7, §6.2: every store is bounded and configurable).
public struct MessagingConfiguration: Sendable, Equatable, Hashable {
    /// At most this many skipped message keys are kept per sender (all epochs together). When a new
    /// skipped key would exceed it, the oldest keys (smallest `(epoch, index)`) are evicted first.
    public var maximumSkippedKeysPerSender: Int
    /// How far past a sender's next expected index (in its current epoch) one message may jump:
    /// a message of index `j` is accepted when `j - next <= maximumSkipPerMessage`.
    public var maximumSkipPerMessage: Int

    /// Largest value either limit may take; ``MessagingState`` clamps its configuration to
    /// `0...hardLimit` so that every state it holds also decodes.
    public static let hardLimit = 1 << 20

    public init(maximumSkippedKeysPerSender: Int = 1_000, maximumSkipPerMessage: Int = 1_000) {
        self.maximumSkippedKeysPerSender = maximumSkippedKeysPerSender
        self.maximumSkipPerMessage = maximumSkipPerMessage
    }

    /// This configuration with both limits clamped to `0...hardLimit`.
    public var normalized: MessagingConfiguration {
        MessagingConfiguration(
            maximumSkippedKeysPerSender: Swift.min(Swift.max(maximumSkippedKeysPerSender, 0), Self.hardLimit),
            maximumSkipPerMessage: Swift.min(Swift.max(maximumSkipPerMessage, 0), Self.hardLimit))
    }
}

/// The envelope header fields an application message is bound to (§6.1, §7): its AEAD associated data.
public struct ApplicationHeader: Sendable, Equatable, Hashable {
    public var version: UInt8
    public var suite: CipherSuiteID
    public var groupID: GroupID
    public var sender: MemberID
    /// The envelope's sequence number (counts all envelopes of `sender`, from 1).
    public var seq: UInt64
    /// Hash of the sender's envelope `seq - 1`; nil for `seq == 1`.
    public var prev: Bytes32?
    /// The sender's epoch: the seq of the control envelope that gave it its current update secret.
    public var epoch: UInt64
    /// Position of the message in that epoch, from 0.
    public var index: UInt64

    public init(
        version: UInt8, suite: CipherSuiteID, groupID: GroupID, sender: MemberID,
        seq: UInt64, prev: Bytes32?, epoch: UInt64, index: UInt64
    ) {
        self.version = version
        self.suite = suite
        self.groupID = groupID
        self.sender = sender
        self.seq = seq
        self.prev = prev
        self.epoch = epoch
        self.index = index
    }

    /// Domain separator that starts the associated data.
    public static let label: [UInt8] = Array("DCGKA message".utf8)

    /// `"DCGKA message" ‖ version(u8) ‖ suite(u8) ‖ groupID(32) ‖ sender(32) ‖ seq(varint)
    /// ‖ prev(32 bytes, absent when nil) ‖ epoch(varint) ‖ index(varint)`.
    ///
    /// Injective: after `seq`, what follows is either 32 + 2…20 bytes (prev present) or
    /// 2…20 bytes (prev absent), so the length tells which form it is.
    public var associatedData: [UInt8] {
        var writer = WireWriter(capacity: Self.label.count + 2 + 64 + 10 + 32 + 20)
        writer.writeFixed(Self.label)
        writer.writeUInt8(version)
        writer.write(suite)
        writer.write(groupID)
        writer.write(sender)
        writer.writeVarint(seq)
        if let prev { writer.write(prev) }
        writer.writeVarint(epoch)
        writer.writeVarint(index)
        return writer.bytes
    }
}

/// The body of an application envelope (§6.1): `application(epoch, index, ciphertext)`.
///
/// Encoding: `epoch(varint) ‖ index(varint) ‖ ciphertext(varint length ‖ bytes)`, the ciphertext at
/// most ``maximumCiphertextLength`` bytes.
public struct ApplicationCiphertext: Sendable, Equatable, Hashable, WireCodable {
    public var epoch: UInt64
    public var index: UInt64
    /// AEAD output: encrypted plaintext followed by the tag.
    public var ciphertext: [UInt8]

    /// 16 MiB.
    public static let maximumCiphertextLength = 1 << 24

    public init(epoch: UInt64, index: UInt64, ciphertext: [UInt8]) {
        self.epoch = epoch
        self.index = index
        self.ciphertext = ciphertext
    }

    public func encode(to writer: inout WireWriter) {
        writer.writeVarint(epoch)
        writer.writeVarint(index)
        writer.writeLengthPrefixed(ciphertext)
    }

    public static func decode(from reader: inout WireReader) throws(WireError) -> ApplicationCiphertext {
        let epoch = try reader.readVarint()
        let index = try reader.readVarint()
        let ciphertext = try reader.readLengthPrefixed(
            field: "application ciphertext", limit: maximumCiphertextLength)
        return ApplicationCiphertext(epoch: epoch, index: index, ciphertext: ciphertext)
    }
}

/// Why an application message cannot be decrypted. The caller reports it as an event; the
/// messaging state is never changed by a failed decryption.
public enum UndecryptableReason: Error, Equatable, Hashable, Sendable {
    /// No secret is known for that sender and epoch: the sender is unknown (never started, or
    /// forgotten), or the epoch is newer than the sender's current one.
    case unknownEpoch
    /// The epoch is older than the sender's current one and the message's key is not in the
    /// skipped-key store: the old chain was deleted when the new epoch started, and the key was
    /// used, evicted, or never derived.
    case epochExpired
    /// The message is in the sender's current epoch, behind the chain, and its key is not in the
    /// skipped-key store: it was used already (duplicate delivery) or evicted.
    case keyAlreadyUsed
    /// The message jumps more than ``MessagingConfiguration/maximumSkipPerMessage`` past the
    /// sender's next expected index (or its index is `UInt64.max`).
    case tooFarAhead
    /// The AEAD did not authenticate the ciphertext with this header (tampered ciphertext or
    /// header, a header whose epoch/index differ from the message's, or a wrong key).
    case authenticationFailed
}

/// Why I cannot encrypt an application message. The state is unchanged.
public enum MessagingError: Error, Equatable, Hashable, Sendable {
    /// I have no epoch yet (no update secret of mine was started).
    case noEpoch
    /// The header the caller built does not name me, my suite, and the epoch and index it was given.
    case headerMismatch
    /// The ciphertext would exceed ``ApplicationCiphertext/maximumCiphertextLength``.
    case plaintextTooLong
    /// My chain reached index `UInt64.max`; a new epoch is needed.
    case chainExhausted
}
