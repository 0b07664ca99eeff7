public import DCGKAEncoding

/// A signed prekey (§2.3): what others need to start 2SM with this device.
///
/// `notAfter` is a Unix time in seconds. Time is passed in by the caller, never read here.
public struct KeyBundle: Hashable, Sendable, WireCodable {
    public let suite: CipherSuiteID
    public let identity: MemberID
    public let prekey: PKEPublicKey
    public let notAfter: UInt64
    public let signature: Signature

    static let domain: [UInt8] = Array("DCGKA prekey".utf8)

    /// The exact bytes the identity signs: "DCGKA prekey" ‖ suite ‖ prekey ‖ notAfter (8 bytes, big-endian).
    public static func signedBytes(suite: CipherSuiteID, prekey: PKEPublicKey, notAfter: UInt64) -> [UInt8] {
        var writer = WireWriter(capacity: 64)
        writer.writeFixed(domain)
        writer.write(suite)
        writer.write(prekey)
        writer.writeUInt64(notAfter)
        return writer.bytes
    }

    public init(suite: CipherSuiteID, identity: MemberID, prekey: PKEPublicKey, notAfter: UInt64, signature: Signature) {
        self.suite = suite
        self.identity = identity
        self.prekey = prekey
        self.notAfter = notAfter
        self.signature = signature
    }

    /// Signs a bundle for `prekey` with `identity`.
    public init(signing prekey: PKEPublicKey, notAfter: UInt64, with identity: IdentityKey, suite: CipherSuiteID = .suite1) {
        self.init(
            suite: suite, identity: identity.id, prekey: prekey, notAfter: notAfter,
            signature: identity.sign(KeyBundle.signedBytes(suite: suite, prekey: prekey, notAfter: notAfter)))
    }

    /// Checks suite, signature and expiry, in that order; a bundle that fails is never used.
    public func verify(now: UInt64, expectedSuite: CipherSuiteID = .suite1) throws(KeyBundleError) {
        guard suite == expectedSuite else { throw .wrongSuite(suite) }
        try checkKeys()
        guard identity.isValidSignature(signature, for: KeyBundle.signedBytes(suite: suite, prekey: prekey, notAfter: notAfter)) else {
            throw .badSignature
        }
        guard now <= notAfter else { throw .expired(notAfter: notAfter) }
    }

    public func encode(to writer: inout WireWriter) {
        writer.write(suite)
        writer.write(identity)
        writer.write(prekey)
        writer.writeUInt64(notAfter)
        writer.write(signature)
    }

    public static func decode(from reader: inout WireReader) throws(WireError) -> KeyBundle {
        KeyBundle(
            suite: try reader.read(), identity: try reader.read(), prekey: try reader.read(),
            notAfter: try reader.readUInt64(), signature: try reader.read())
    }
}

/// Why a key bundle must not be used.
public enum KeyBundleError: Error, Equatable, Hashable, Sendable {
    case badSignature
    case expired(notAfter: UInt64)
    case wrongSuite(CipherSuiteID)
    /// The identity key is a point of small order (anyone can sign for it).
    case smallOrderIdentity
    /// The prekey is a point of small order (every Diffie-Hellman with it is all zero).
    case lowOrderPrekey
}

/// The secrets of this device's recent prekeys (`PKI-SecretKey`, §2.3).
///
/// A peer names the prekey it used in the 2SM header, so every prekey that may still be in use
/// is kept until it expires plus a grace period, then deleted.
public struct PrekeyStore: Sendable, Equatable, WireCodable {
    public struct Entry: Sendable, Equatable {
        public let secret: PKESecretKey
        public let notAfter: UInt64
    }

    public private(set) var entries: [PKEPublicKey: Entry] = [:]
    /// Seconds a prekey is kept after its `notAfter`: a bundle's expiry limits where it is offered,
    /// not a channel a peer in one of my groups may still open on it (§2.3), so the default is the
    /// hard limit of §2.3.
    public var gracePeriod: UInt64

    public static let maximumEntries = 1024
    /// §2.3's hard limit: a prekey secret is kept at most until `notAfter` plus this.
    public static let defaultGracePeriod: UInt64 = 60 * 24 * 3600

    public init(gracePeriod: UInt64 = PrekeyStore.defaultGracePeriod) { self.gracePeriod = gracePeriod }

    /// Makes a new prekey, keeps its secret and returns its signed bundle.
    public mutating func generate<R: RandomNumberGenerator>(
        identity: IdentityKey, notAfter: UInt64, using rng: inout R
    ) -> KeyBundle {
        let secret = PKESecretKey.generate(using: &rng)
        // At most `maximumEntries` (what the decoder accepts): the one that expires first goes.
        if entries.count >= Self.maximumEntries, let first = entries.min(by: { ($0.value.notAfter, $0.key.raw) < ($1.value.notAfter, $1.key.raw) }) {
            entries[first.key] = nil
        }
        entries[secret.publicKey] = Entry(secret: secret, notAfter: notAfter)
        return KeyBundle(signing: secret.publicKey, notAfter: notAfter, with: identity)
    }

    /// Keeps a secret made elsewhere as a prekey (a one-time key of a resync request, §5.7), under
    /// the same limit and expiry as the others.
    public mutating func insert(_ secret: PKESecretKey, notAfter: UInt64) {
        if entries[secret.publicKey] == nil, entries.count >= Self.maximumEntries,
           let first = entries.min(by: { ($0.value.notAfter, $0.key.raw) < ($1.value.notAfter, $1.key.raw) }) {
            entries[first.key] = nil
        }
        entries[secret.publicKey] = Entry(secret: secret, notAfter: notAfter)
    }

    /// The secret of one of my prekeys, if it is still kept.
    public func secret(for prekey: PKEPublicKey) -> PKESecretKey? { entries[prekey]?.secret }

    /// Deletes every prekey whose `notAfter + gracePeriod` has passed; returns how many.
    @discardableResult
    public mutating func deleteExpired(now: UInt64) -> Int {
        let before = entries.count
        // Saturating: `notAfter + gracePeriod` past UInt64.max means "never", not a wrapped-around past.
        entries = entries.filter {
            let (deadline, overflow) = $0.value.notAfter.addingReportingOverflow(gracePeriod)
            return overflow || deadline >= now
        }
        return before - entries.count
    }

    public func encode(to writer: inout WireWriter) {
        writer.writeVarint(gracePeriod)
        let sorted = entries.sorted { $0.key.raw < $1.key.raw }
        writer.writeVarint(sorted.count)
        for (_, entry) in sorted {
            writer.write(entry.secret)
            writer.writeUInt64(entry.notAfter)
        }
    }

    public static func decode(from reader: inout WireReader) throws(WireError) -> PrekeyStore {
        var store = PrekeyStore(gracePeriod: try reader.readVarint())
        let count = try reader.readBoundedVarint(field: "prekeys", limit: maximumEntries)
        var previous: PKEPublicKey?
        for _ in 0..<count {
            let secret = try reader.read(PKESecretKey.self)
            let notAfter = try reader.readUInt64()
            if let previous, !(previous.raw < secret.publicKey.raw) { throw .invalidValue(field: "prekeys order") }
            previous = secret.publicKey
            store.entries[secret.publicKey] = Entry(secret: secret, notAfter: notAfter)
        }
        return store
    }
}

extension PrekeyStore: RedactedDescription {}
extension PrekeyStore.Entry: RedactedDescription {}
