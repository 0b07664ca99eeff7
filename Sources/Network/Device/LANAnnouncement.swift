public import DCGKAEncoding
internal import DCGKACrypto
internal import Crypto

/// A device's announcement on the local link (NETWORK.md §14.2, issue 11 item 4): "a device that
/// only my contacts can recognise accepts direct links on this port", sent by UDP multicast, with
/// no identity in clear.
///
/// Wire form (44 bytes, fixed): `"DCGKA-LAN"` (9 bytes) ‖ version (1 byte, 1) ‖ nonce (16) ‖
/// tag (16) ‖ port (2, big-endian, never 0). The announcer's address is the datagram's source.
///
/// The tag: `HMAC-SHA256(key: SHA-256("DCGKA LAN tag v1" ‖ identity public key), message:
/// nonce ‖ epoch)`, cut to its first 16 bytes, where `epoch = now / 300` (Unix seconds; a
/// big-endian UInt64). A fresh random nonce per announcement makes announcements unlinkable to
/// each other, and the identity unrecognisable, for anyone who does not know the announcer's
/// identity key; whoever knows it (``recognise(among:now:)``) tries each identity it knows. A
/// recogniser accepts the current epoch and its two neighbours (the announcer's clock a little
/// behind or ahead), so an announcement replayed later than that is refused.
///
/// Limitations:
/// - The key is derived from the *public* identity key: anyone who knows it can recognise the
///   announcer (every contact, every member of a group shared with it, relays that saw the key)
///   and can also make announcements that look like the announcer's. An announcement is a hint,
///   not a proof: the link it leads to is authenticated by the handshake (§12), with the
///   recognised contact as the expected peer, so a forged or replayed announcement costs a
///   failed connection and reveals nothing.
/// - The port (and the datagram's source address) are not covered by the tag.
/// - Presence itself is visible: an observer sees that some dcgka device announces from an
///   address, how often, and its port.
public struct LANAnnouncement: Equatable, Sendable {
    public static let magic: [UInt8] = Array("DCGKA-LAN".utf8)
    public static let version: UInt8 = 1
    public static let nonceBytes = 16
    public static let tagBytes = 16
    /// The whole wire form: magic, version, nonce, tag, port.
    public static let wireLength = 9 + 1 + 16 + 16 + 2
    /// Seconds per epoch of the tag.
    public static let epochSeconds: UInt64 = 300

    public let nonce: [UInt8]
    public let tag: [UInt8]
    public let port: UInt16

    /// - Throws: ``LANAnnouncementError`` for a nonce or tag that is not 16 bytes, or port 0.
    public init(nonce: [UInt8], tag: [UInt8], port: UInt16) throws(LANAnnouncementError) {
        guard nonce.count == Self.nonceBytes else { throw .badField("the nonce is \(nonce.count) bytes, not 16") }
        guard tag.count == Self.tagBytes else { throw .badField("the tag is \(tag.count) bytes, not 16") }
        guard port != 0 else { throw .badField("port 0") }
        self.nonce = nonce
        self.tag = tag
        self.port = port
    }

    /// A new announcement of `identity` listening on `port` (a port actually bound, never 0) at
    /// `now` (Unix seconds), with a fresh nonce from `random`.
    public static func make(identity: MemberID, port: UInt16, now: UInt64, random: inout some RandomNumberGenerator) -> LANAnnouncement {
        precondition(port != 0, "announce the port actually bound, not 0")
        let nonce = random.bytes(nonceBytes)
        let tag = Key(identity).tag(nonce: nonce, epoch: now / epochSeconds)
        return LANAnnouncement(checkedNonce: nonce, tag: tag, port: port)
    }

    private init(checkedNonce nonce: [UInt8], tag: [UInt8], port: UInt16) {
        self.nonce = nonce
        self.tag = tag
        self.port = port
    }

    // MARK: Wire form

    public var wireBytes: [UInt8] {
        var bytes = Self.magic
        bytes.reserveCapacity(Self.wireLength)
        bytes.append(Self.version)
        bytes += nonce
        bytes += tag
        bytes.append(UInt8(port >> 8))
        bytes.append(UInt8(port & 0xFF))
        return bytes
    }

    /// Decodes a datagram's payload. Total: anything that is not exactly one version-1
    /// announcement is a typed error, decided from the length and a few bytes before anything
    /// else is looked at.
    public init(wireBytes: some Collection<UInt8>) throws(LANAnnouncementError) {
        guard wireBytes.count == Self.wireLength else {
            // A longer or shorter datagram that starts with the magic and another version is a
            // newer (or older) format, which this one cannot tell the length of.
            if wireBytes.count > Self.magic.count, wireBytes.starts(with: Self.magic) {
                let version = wireBytes[wireBytes.index(wireBytes.startIndex, offsetBy: Self.magic.count)]
                if version != Self.version { throw .unsupportedVersion(version) }
            }
            throw .wrongLength(wireBytes.count)
        }
        let bytes = Array(wireBytes)
        guard bytes.starts(with: Self.magic) else { throw .notAnAnnouncement }
        let version = bytes[9]
        guard version == Self.version else { throw .unsupportedVersion(version) }
        let port = UInt16(bytes[42]) << 8 | UInt16(bytes[43])
        guard port != 0 else { throw .badField("port 0") }
        self.init(checkedNonce: Array(bytes[10..<26]), tag: Array(bytes[26..<42]), port: port)
    }

    // MARK: Recognising

    /// The contact among `contacts` whose identity made this announcement in the current, the
    /// previous or the next epoch at `now` (Unix seconds), or nil. Costs three HMACs per contact; to recognise
    /// many announcements, derive the keys once (``Key``, ``recognise(among:now:)-(Key)``).
    public func recognise(among contacts: [MemberID], now: UInt64) -> MemberID? {
        recognise(among: contacts.map(Key.init), now: now)
    }

    /// As ``recognise(among:now:)-([MemberID])``, with the contacts' tag keys derived beforehand.
    public func recognise(among keys: [Key], now: UInt64) -> MemberID? {
        let epoch = now / Self.epochSeconds
        let epochs = (epoch > 0 ? [epoch - 1] : []) + [epoch, epoch + 1]
        var found: MemberID?
        // Every key and epoch is tried, so the time taken does not say which contact matched.
        for key in keys {
            for epoch in epochs where ConstantTime.equal(key.tag(nonce: nonce, epoch: epoch), tag) {
                if found == nil { found = key.identity }
            }
        }
        return found
    }

    /// The tag key of one identity: `SHA-256("DCGKA LAN tag v1" ‖ identity public key)`.
    public struct Key: Sendable {
        public let identity: MemberID
        private let key: SymmetricKey

        public init(_ identity: MemberID) {
            self.identity = identity
            key = SymmetricKey(data: SHA256.hash(data: Array("DCGKA LAN tag v1".utf8) + identity.bytes))
        }

        /// The first 16 bytes of `HMAC-SHA256(key, nonce ‖ epoch (UInt64, big-endian))`.
        public func tag(nonce: [UInt8], epoch: UInt64) -> [UInt8] {
            var message = nonce
            for shift in stride(from: 56, through: 0, by: -8) { message.append(UInt8(truncatingIfNeeded: epoch >> UInt64(shift))) }
            return Array(HMAC<SHA256>.authenticationCode(for: message, using: key).prefix(LANAnnouncement.tagBytes))
        }
    }
}

/// Why bytes are not a LAN announcement (``LANAnnouncement/init(wireBytes:)``) or fields cannot
/// make one.
public enum LANAnnouncementError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Not 44 bytes.
    case wrongLength(Int)
    /// The right length without the magic.
    case notAnAnnouncement
    /// The magic with a version other than 1.
    case unsupportedVersion(UInt8)
    /// A field out of range (port 0, a nonce or tag of the wrong size).
    case badField(String)

    public var description: String {
        switch self {
        case .wrongLength(let count): "a LAN announcement is \(LANAnnouncement.wireLength) bytes, not \(count)"
        case .notAnAnnouncement: "not a dcgka LAN announcement"
        case .unsupportedVersion(let version): "a LAN announcement of version \(version), which this dcgka cannot read"
        case .badField(let why): "a malformed LAN announcement (\(why))"
        }
    }
}
