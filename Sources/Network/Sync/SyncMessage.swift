public import DCGKAEncoding
public import CausalBroadcast

/// A run of one sender's envelopes, `from ... through` inclusive (NETWORK.md §11.1 `want` and
/// `pruned`).
public struct SeqRange: Hashable, Sendable, WireCodable {
    public var sender: MemberID
    public var from: UInt64
    public var through: UInt64

    public init(sender: MemberID, from: UInt64, through: UInt64) {
        self.sender = sender
        self.from = from
        self.through = through
    }

    public func encode(to writer: inout WireWriter) {
        writer.write(sender)
        writer.writeVarint(from)
        writer.writeVarint(through)
    }

    public static func decode(from reader: inout WireReader) throws(WireError) -> SeqRange {
        let sender = try reader.read(MemberID.self)
        let from = try reader.readVarint()
        let through = try reader.readVarint()
        guard from >= 1, from <= through, through <= Envelope.maximumSeq else { throw .invalidValue(field: "range") }
        return SeqRange(sender: sender, from: from, through: through)
    }
}

/// What a holder says first (NETWORK.md §11.1): who it is, which groups it wants, its frame limit.
public struct Hello: Hashable, Sendable {
    public var version: UInt8
    public var holder: MemberID
    public var groups: [GroupID]
    public var maximumFrameBytes: UInt32

    public init(version: UInt8 = SyncMessage.protocolVersion, holder: MemberID, groups: [GroupID], maximumFrameBytes: UInt32 = UInt32(SyncFraming.defaultMaximumFrameBytes)) {
        self.version = version
        self.holder = holder
        self.groups = groups
        self.maximumFrameBytes = maximumFrameBytes
    }
}

/// Typed reasons a holder ends a link (`error(code, text)`).
public enum SyncErrorCode: UInt16, Sendable, Hashable {
    case malformed = 1
    case frameTooLarge = 2
    case unsupportedVersion = 3
    case unauthorized = 4
    case rateLimited = 5
    case quotaExceeded = 6
    case `internal` = 7
}

/// The messages of NETWORK.md §11.1. Envelopes travel in their wire form (groupID left out,
/// PROTOCOL.md §6.1): the message names the group.
public enum SyncMessage: Hashable, Sendable {
    case hello(Hello)
    /// Groups the answering holder has that list the asker as a participant and that it did not ask for.
    case invited([GroupID])
    case have(GroupID, Frontier)
    case want(GroupID, ranges: [SeqRange], hashes: [Bytes32])
    /// Announces what the next `envelopes` messages of this group carry, for progress.
    case summary(GroupID, count: UInt64, bytes: UInt64)
    case envelopes(GroupID, [[UInt8]])
    case ack(GroupID, [Bytes32])
    case subscribe(GroupID)
    case push(GroupID, [[UInt8]])
    case pruned(GroupID, [SeqRange])
    case evidence(GroupID, [UInt8], [UInt8])
    case error(SyncErrorCode, String)
    /// A holder that is not a participant shows the grant that lets it have a group (§11.2).
    case grant(Grant)
    /// Asks the peer to answer ``pong(_:)`` once it handled everything sent before: the link is
    /// ordered, so the answer marks the end of the peer's replies (a sync pass knows it is done).
    /// Also a keep-alive. (PROTOCOL-NOTES.md, "Sync".)
    case ping(UInt64)
    case pong(UInt64)
    /// Key bundles (encoded): a device publishing its own to a relay's directory, or a relay
    /// answering ``bundleRequest(_:)`` (NETWORK.md §13.3). The fetcher verifies them.
    case bundles([[UInt8]])
    /// Asks a relay's directory for these members' newest published bundles.
    case bundleRequest([MemberID])

    public static let protocolVersion: UInt8 = 1
    /// Items (groups, ranges, hashes, envelopes) one message may list.
    public static let maximumItems = 1 << 16
    public static let maximumErrorText = 1024
    /// Bundles one `bundles` or `bundleRequest` message may carry, and the size of one.
    public static let maximumBundles = 256
    public static let maximumBundleBytes = 4096

    var tag: UInt8 {
        switch self {
        case .hello: 1
        case .invited: 2
        case .have: 3
        case .want: 4
        case .summary: 5
        case .envelopes: 6
        case .ack: 7
        case .subscribe: 8
        case .push: 9
        case .pruned: 10
        case .evidence: 11
        case .error: 12
        case .grant: 13
        case .ping: 14
        case .pong: 15
        case .bundles: 16
        case .bundleRequest: 17
        }
    }
}

extension SyncMessage: WireCodable {
    /// At most ``maximumErrorText`` bytes of `text`, cut at a character boundary.
    static func truncatedUTF8(_ text: String) -> [UInt8] {
        var bytes: [UInt8] = []
        for character in text {
            let utf8 = Array(String(character).utf8)
            guard bytes.count + utf8.count <= maximumErrorText else { break }
            bytes += utf8
        }
        return bytes
    }

    public func encode(to writer: inout WireWriter) {
        writer.writeUInt8(tag)
        switch self {
        case .hello(let hello):
            writer.writeUInt8(hello.version)
            writer.write(hello.holder)
            writer.writeArray(hello.groups)
            writer.writeVarint(UInt64(hello.maximumFrameBytes))
        case .invited(let groups):
            writer.writeArray(groups)
        case .have(let group, let vector):
            writer.write(group)
            writer.write(vector)
        case .want(let group, let ranges, let hashes):
            writer.write(group)
            writer.writeArray(ranges)
            writer.writeArray(hashes)
        case .summary(let group, let count, let bytes):
            writer.write(group)
            writer.writeVarint(count)
            writer.writeVarint(bytes)
        case .envelopes(let group, let wires), .push(let group, let wires):
            writer.write(group)
            writer.writeVarint(wires.count)
            for wire in wires { writer.writeLengthPrefixed(wire) }
        case .ack(let group, let hashes):
            writer.write(group)
            writer.writeArray(hashes)
        case .subscribe(let group):
            writer.write(group)
        case .pruned(let group, let ranges):
            writer.write(group)
            writer.writeArray(ranges)
        case .evidence(let group, let first, let second):
            writer.write(group)
            writer.writeLengthPrefixed(first)
            writer.writeLengthPrefixed(second)
        case .error(let code, let text):
            writer.writeUInt16(code.rawValue)
            writer.writeLengthPrefixed(Self.truncatedUTF8(text))
        case .grant(let grant):
            writer.write(grant)
        case .ping(let nonce), .pong(let nonce):
            writer.writeVarint(nonce)
        case .bundles(let bundles):
            writer.writeVarint(bundles.count)
            for bundle in bundles { writer.writeLengthPrefixed(bundle) }
        case .bundleRequest(let members):
            writer.writeArray(members)
        }
    }

    public static func decode(from reader: inout WireReader) throws(WireError) -> SyncMessage {
        let tag = try reader.readUInt8()
        switch tag {
        case 1:
            let version = try reader.readUInt8()
            let holder = try reader.read(MemberID.self)
            let groups = try reader.readArray(GroupID.self, field: "hello.groups", limit: maximumItems)
            let limit = try reader.readBoundedVarint(field: "hello.frame", limit: SyncFraming.hardMaximumFrameBytes)
            return .hello(Hello(version: version, holder: holder, groups: groups, maximumFrameBytes: UInt32(limit)))
        case 2:
            return .invited(try reader.readArray(GroupID.self, field: "invited", limit: maximumItems))
        case 3:
            return .have(try reader.read(GroupID.self), try reader.read(Frontier.self))
        case 4:
            let group = try reader.read(GroupID.self)
            let ranges = try reader.readArray(SeqRange.self, field: "want.ranges", limit: maximumItems)
            let hashes = try reader.readArray(Bytes32.self, field: "want.hashes", limit: maximumItems)
            return .want(group, ranges: ranges, hashes: hashes)
        case 5:
            return .summary(try reader.read(GroupID.self), count: try reader.readVarint(), bytes: try reader.readVarint())
        case 6, 9:
            let group = try reader.read(GroupID.self)
            let count = try reader.readBoundedVarint(field: "envelopes", limit: maximumItems)
            guard count <= reader.remaining else { throw .truncated }
            var wires: [[UInt8]] = []
            wires.reserveCapacity(count)
            for _ in 0..<count {
                wires.append(try reader.readLengthPrefixed(field: "envelope", limit: Envelope.maximumCanonicalBytes))
            }
            return tag == 6 ? .envelopes(group, wires) : .push(group, wires)
        case 7:
            return .ack(try reader.read(GroupID.self), try reader.readArray(Bytes32.self, field: "ack", limit: maximumItems))
        case 8:
            return .subscribe(try reader.read(GroupID.self))
        case 10:
            return .pruned(try reader.read(GroupID.self), try reader.readArray(SeqRange.self, field: "pruned", limit: maximumItems))
        case 11:
            let group = try reader.read(GroupID.self)
            let first = try reader.readLengthPrefixed(field: "evidence", limit: Envelope.maximumCanonicalBytes)
            let second = try reader.readLengthPrefixed(field: "evidence", limit: Envelope.maximumCanonicalBytes)
            return .evidence(group, first, second)
        case 12:
            let raw = try reader.readUInt16()
            guard let code = SyncErrorCode(rawValue: raw) else { throw .invalidValue(field: "error.code") }
            let text = try reader.readLengthPrefixed(field: "error.text", limit: maximumErrorText)
            // Only valid UTF-8 is canonical: a lossy decoding would re-encode to other bytes.
            guard let string = String(validating: text, as: UTF8.self) else { throw .invalidValue(field: "error.text") }
            return .error(code, string)
        case 13:
            return .grant(try reader.read(Grant.self))
        case 14:
            return .ping(try reader.readVarint())
        case 15:
            return .pong(try reader.readVarint())
        case 16:
            let count = try reader.readBoundedVarint(field: "bundles", limit: maximumBundles)
            guard count <= reader.remaining else { throw .truncated }
            var bundles: [[UInt8]] = []
            for _ in 0..<count { bundles.append(try reader.readLengthPrefixed(field: "bundle", limit: maximumBundleBytes)) }
            return .bundles(bundles)
        case 17:
            return .bundleRequest(try reader.readArray(MemberID.self, field: "bundleRequest", limit: maximumBundles))
        default:
            throw .unknownTag(field: "sync message", tag: tag)
        }
    }
}
