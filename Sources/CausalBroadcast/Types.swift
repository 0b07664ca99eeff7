public import DCGKAEncoding

/// Bounds of a ``BroadcastState`` (§6.2: buffers are bounded and configurable).
public struct BroadcastConfiguration: Sendable, Equatable, Hashable {
    /// Envelopes that may wait in the buffer at once (not counting the ones handed out by
    /// ``BroadcastState/nextDeliverable()`` and not yet marked delivered).
    public var maximumBufferedEnvelopes: Int
    /// Sum of the payload bytes of the buffered envelopes.
    public var maximumBufferedPayloadBytes: Int
    /// Hashes of the latest delivered envelopes kept per sender for duplicate and equivocation
    /// checks (at least 1: the head of the chain is always kept).
    public var recentHashesPerSender: Int
    /// Envelopes of one sender that may wait at once, so that no sender can fill the buffer.
    public var maximumBufferedEnvelopesPerSender: Int
    /// Payload bytes of one sender's waiting envelopes.
    public var maximumBufferedPayloadBytesPerSender: Int

    /// Limits of the decoder (and so of any value that can be stored).
    public static let limit = 1 << 26
    public static let byteLimit = 1 << 40

    /// This configuration with every field clamped to what the state's decoder accepts.
    public var normalized: BroadcastConfiguration {
        BroadcastConfiguration(
            maximumBufferedEnvelopes: maximumBufferedEnvelopes, maximumBufferedPayloadBytes: maximumBufferedPayloadBytes,
            recentHashesPerSender: recentHashesPerSender, maximumBufferedEnvelopesPerSender: maximumBufferedEnvelopesPerSender,
            maximumBufferedPayloadBytesPerSender: maximumBufferedPayloadBytesPerSender)
    }

    public init(
        maximumBufferedEnvelopes: Int = 10_000, maximumBufferedPayloadBytes: Int = 256 << 20,
        recentHashesPerSender: Int = 256,
        maximumBufferedEnvelopesPerSender: Int = 2_000, maximumBufferedPayloadBytesPerSender: Int = 64 << 20
    ) {
        self.maximumBufferedEnvelopes = min(max(0, maximumBufferedEnvelopes), Self.limit)
        self.maximumBufferedPayloadBytes = min(max(0, maximumBufferedPayloadBytes), Self.byteLimit)
        self.recentHashesPerSender = min(max(1, recentHashesPerSender), Self.limit)
        self.maximumBufferedEnvelopesPerSender = min(max(0, maximumBufferedEnvelopesPerSender), Self.limit)
        self.maximumBufferedPayloadBytesPerSender = min(max(0, maximumBufferedPayloadBytesPerSender), Self.byteLimit)
    }
}

/// Why an envelope was not accepted.
public enum BroadcastError: Error, Equatable, Hashable, Sendable {
    /// The bytes are not an envelope (only from ``BroadcastState/receive(wire:isKnownSender:)``).
    case undecodable(WireError)
    /// The envelope names another group.
    case wrongGroup
    /// The envelope uses another cipher suite than the group.
    case unsupportedSuite
    /// The signature does not verify. The envelope is not stored.
    case badSignature
    /// The sender is in no membership operation known for the group (§6.2).
    case unknownSender(MemberID)
    /// A second, different envelope at `(sender, seq)`, or one whose `prev` contradicts the
    /// sender's chain as delivered or buffered. What was delivered stays; the sender is cut off
    /// from the forked seq (``BroadcastState/cuts``).
    case equivocation(sender: MemberID, seq: UInt64)
    /// An envelope of an equivocator past the seq it was cut off from: never delivered.
    case afterEquivocation(sender: MemberID, seq: UInt64)
    /// An acknowledgment whose `acked` names a known envelope that is not a create, add, remove or
    /// update, or names a known hash with another sender or seq than that envelope's.
    case invalidAcknowledgment(sender: MemberID, seq: UInt64)
    /// A validly signed envelope of mine that I did not record as sent (a copy of my identity, or
    /// my state was rolled back).
    case unexpectedOwnEnvelope(seq: UInt64)
    /// The buffer is at its configured limit; nothing already accepted is affected.
    case bufferFull
}

/// What ``BroadcastState/receive(_:isKnownSender:)`` did with an envelope.
public enum ReceiveOutcome: Equatable, Hashable, Sendable {
    /// Accepted and buffered; ``BroadcastState/nextDeliverable()`` hands it out once its
    /// dependencies are delivered (possibly right away).
    case buffered
    /// Already delivered, buffered or handed out (same hash), or older than the sender's
    /// delivered seq; dropped silently.
    case duplicate
    /// Precedes the frontier adopted from the welcome: treated as delivered and not handed out
    /// (a create/add/remove/update is remembered so that later acknowledgments of it resolve).
    case skippedBeforeJoin
    /// A full copy of an envelope that was buffered pruned: the buffered one has its payload back.
    case payloadRestored
    case rejected(BroadcastError)
}

/// An envelope the state waits for, to ask transports for (§6.2).
public enum MissingEnvelope: Hashable, Sendable, Comparable {
    /// The sender's envelopes `from ... through` (inclusive), below an envelope that is buffered.
    case range(sender: MemberID, from: UInt64, through: UInt64)
    /// The envelope an acknowledgment acknowledges.
    case hash(Bytes32)
}

/// Per sender, the highest seq delivered without gaps and that envelope's hash: the version
/// vector of §6.4 and the frontier a welcome carries (§5.6).
///
/// Encoding: varint count, then per sender in strictly increasing ID order: ID 32, seq varint ≥ 1,
/// hash 32.
public struct Frontier: Hashable, Sendable, WireCodable {
    public struct Head: Hashable, Sendable {
        public var seq: UInt64
        public var hash: Bytes32
        public init(seq: UInt64, hash: Bytes32) { self.seq = seq; self.hash = hash }
    }

    public var heads: [MemberID: Head]

    public init(heads: [MemberID: Head] = [:]) { self.heads = heads }

    /// Largest number of senders a decoded frontier may name.
    public static let maximumSenders = 1 << 20

    public func encode(to writer: inout WireWriter) {
        let entries = heads.filter { $0.value.seq >= 1 }.sorted { $0.key < $1.key }
        writer.writeVarint(entries.count)
        for (id, head) in entries {
            id.encode(to: &writer)
            writer.writeVarint(head.seq)
            head.hash.encode(to: &writer)
        }
    }

    public static func decode(from reader: inout WireReader) throws(WireError) -> Frontier {
        let count = try reader.readBoundedVarint(field: "frontier.count", limit: maximumSenders)
        guard count <= reader.remaining / 65 else { throw .truncated }
        var heads: [MemberID: Head] = [:]
        heads.reserveCapacity(count)
        var previous: MemberID?
        for _ in 0..<count {
            let id = try MemberID.decode(from: &reader)
            if let previous, !(previous < id) { throw .invalidValue(field: "frontier order") }
            previous = id
            let seq = try reader.readVarint()
            guard seq >= 1, seq <= Envelope.maximumSeq else { throw .invalidValue(field: "frontier.seq") }
            heads[id] = Head(seq: seq, hash: try Bytes32.decode(from: &reader))
        }
        return Frontier(heads: heads)
    }
}
