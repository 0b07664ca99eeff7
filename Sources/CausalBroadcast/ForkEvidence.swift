public import DCGKAEncoding
internal import DCGKACrypto

/// Proof that a sender equivocated (§6.2): two of its signed headers that cannot both belong to
/// one chain. Either both sit at the same seq with different hashes, or the second follows the
/// first's seq and names another `prev`. Strict Ed25519 verification means nobody but the
/// sender's key can make such a pair, so any member that holds one can show it to every other.
///
/// The equivocator's chain is in doubt from ``cutSeq`` on: every operation it sent from there
/// on is cut off by the remove that carries this evidence (PROTOCOL-NOTES.md, "Equivocation").
///
/// Encoding (inside a remove's control body): the two headers in canonical order (lower seq,
/// then lower hash, first), each length-prefixed in the wire form of ``Envelope/headerOnly()``.
public struct ForkEvidence: Sendable, Hashable {
    /// The headers, ordered by (seq, hash); payloads are never carried.
    public let first: Envelope
    public let second: Envelope

    /// Why a pair is not evidence.
    public enum Invalid: Error, Sendable, Equatable {
        case differentSenders
        case differentGroups
        case sameEnvelope
        /// Neither the same seq nor consecutive seqs with a contradicting `prev`.
        case notAFork
        case badSignature
    }

    /// The pair, in canonical order, if it is a fork by its structure (signatures are checked by
    /// ``verify()``, so that a host can build evidence from envelopes it already verified).
    public init(_ a: Envelope, _ b: Envelope) throws(Invalid) {
        guard a.sender == b.sender else { throw .differentSenders }
        guard a.groupID == b.groupID, a.suite == b.suite else { throw .differentGroups }
        guard a.hash != b.hash else { throw .sameEnvelope }
        let (low, high) = (a.seq, a.hash) < (b.seq, b.hash) ? (a, b) : (b, a)
        let sameSeq = low.seq == high.seq
        let brokenLink = high.seq == low.seq + 1 && high.prev != low.hash
        guard sameSeq || brokenLink else { throw .notAFork }
        first = low.headerOnly()
        second = high.headerOnly()
    }

    /// The equivocator.
    public var sender: MemberID { first.sender }

    /// The first seq at which the sender's chain is in doubt: the shared seq, or for a broken
    /// link the seq of the lower header (the sender signed another envelope there, which the
    /// higher one names).
    public var cutSeq: UInt64 { first.seq }

    /// Whether both signatures verify.
    public func verify() -> Bool { first.hasValidSignature() && second.hasValidSignature() }

    /// The longest encoding: two headers of the largest shape, with their length prefixes.
    public static let maximumEncodedBytes = 2 * (Envelope.maximumHeaderBytes + 64 + 1 + 2)

    public var wireBytes: [UInt8] {
        var writer = WireWriter(capacity: Self.maximumEncodedBytes)
        writer.writeLengthPrefixed(first.wireBytes)
        writer.writeLengthPrefixed(second.wireBytes)
        return writer.bytes
    }

    /// Decodes evidence for `groupID`, checking its structure and order, not its signatures.
    public init(wire: [UInt8], groupID: GroupID) throws(WireError) {
        guard wire.count <= Self.maximumEncodedBytes else { throw .invalidValue(field: "evidence length") }
        var reader = WireReader(wire)
        let a = try Envelope(headerWire: reader.readLengthPrefixed(field: "evidence.first", limit: Self.maximumEncodedBytes), groupID: groupID)
        let b = try Envelope(headerWire: reader.readLengthPrefixed(field: "evidence.second", limit: Self.maximumEncodedBytes), groupID: groupID)
        try reader.finish()
        do { self = try ForkEvidence(a, b) } catch { throw .invalidValue(field: "evidence pair") }
        guard first.hash == a.hash else { throw .invalidValue(field: "evidence order") }
    }
}
