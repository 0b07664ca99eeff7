public import DCGKAEncoding

/// What an application message carries (issue 9, item 4; NETWORK.md §14.5): a small typed,
/// versioned content with its sending time. The group layer sees only bytes.
///
/// Encoding: version (1) ‖ type (1) ‖ sent at (varint, seconds since 1970) ‖ body.
/// Unknown types of a known version decode as ``Kind/unknown(type:)`` so that a newer peer's
/// content (files, later) shows as "a message this version cannot show", never as an error.
public struct MessageContent: Equatable, Sendable {
    public enum Kind: Equatable, Sendable {
        case text(String)
        /// The group's title (reserved type). The creator sends it right after the create, an
        /// adder re-sends it after an add.
        case title(String)
        /// The group's suggested relays (reserved type, NETWORK.md §14.5).
        case relays([String])
        /// PROTOCOL.md §5.7: I lost sync with the group and will catch up; shown to people.
        case lostSync(String)
        case unknown(type: UInt8)
    }

    public var kind: Kind
    public var sentAt: UInt64

    public init(_ kind: Kind, sentAt: UInt64) {
        self.kind = kind
        self.sentAt = sentAt
    }

    public static let version: UInt8 = 1
    public static let maximumTextBytes = 64 << 10
    public static let maximumRelays = 64

    var type: UInt8 {
        switch kind {
        case .text: 1
        case .title: 2
        case .relays: 3
        case .lostSync: 4
        case .unknown(let type): type
        }
    }
}

/// Why message bytes are not a content this version understands.
public enum MessageContentError: Error, Equatable, Sendable {
    case unsupportedVersion(UInt8)
    case malformed(WireError)
    case invalidText
}

extension MessageContent {
    public var bytes: [UInt8] {
        var writer = WireWriter()
        writer.writeUInt8(Self.version)
        writer.writeUInt8(type)
        writer.writeVarint(sentAt)
        switch kind {
        case .text(let text), .title(let text), .lostSync(let text):
            writer.writeLengthPrefixed(Array(text.utf8))
        case .relays(let relays):
            writer.writeVarint(relays.count)
            for relay in relays { writer.writeLengthPrefixed(Array(relay.utf8)) }
        case .unknown:
            break
        }
        return writer.bytes
    }

    public init(bytes: [UInt8]) throws(MessageContentError) {
        var reader = WireReader(bytes)
        do {
            let version = try reader.readUInt8()
            guard version == Self.version else { throw MessageContentError.unsupportedVersion(version) }
            let type = try reader.readUInt8()
            let sentAt = try reader.readVarint()
            func text(_ reader: inout WireReader) throws -> String {
                let raw = try reader.readLengthPrefixed(field: "text", limit: Self.maximumTextBytes)
                guard let string = String(validating: raw, as: UTF8.self) else { throw MessageContentError.invalidText }
                return string
            }
            let kind: Kind
            switch type {
            case 1: kind = .text(try text(&reader))
            case 2: kind = .title(try text(&reader))
            case 3:
                let count = try reader.readBoundedVarint(field: "relays", limit: Self.maximumRelays)
                var relays: [String] = []
                for _ in 0..<count { relays.append(try text(&reader)) }
                kind = .relays(relays)
            case 4: kind = .lostSync(try text(&reader))
            default:
                self.init(.unknown(type: type), sentAt: sentAt)
                return
            }
            try reader.finish()
            self.init(kind, sentAt: sentAt)
        } catch let error as MessageContentError {
            throw error
        } catch let error as WireError {
            throw .malformed(error)
        } catch {
            throw .invalidText
        }
    }
}
