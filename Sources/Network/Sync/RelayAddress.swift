public import DCGKAEncoding

/// A relay's address, `dcgka-relay://HOST:PORT/RELAY-ID` (NETWORK.md §13.1). The relay's identity
/// is part of the address, so a client knows whom the link must reach: a relay that answers with
/// another key is refused by the handshake (§12). RELAY-ID is the Ed25519 public key in base32
/// (RFC 4648, lowercase, no padding: 52 characters).
public struct RelayAddress: Hashable, Sendable, CustomStringConvertible, Comparable {
    public static let scheme = "dcgka-relay://"
    public static let defaultPort: UInt16 = 7447

    /// A host name, an IPv4 address, or an IPv6 address without brackets.
    public var host: String
    public var port: UInt16
    public var relay: MemberID

    public init(host: String, port: UInt16, relay: MemberID) {
        self.host = host
        self.port = port
        self.relay = relay
    }

    /// The text form of a relay identity.
    public static func encode(_ id: MemberID) -> String { Base32.encode(id.bytes) }

    /// `HOST:PORT` as a URL authority (IPv6 in brackets).
    public var authority: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    public var description: String { "\(Self.scheme)\(authority)/\(Self.encode(relay))" }

    public static func < (lhs: RelayAddress, rhs: RelayAddress) -> Bool { lhs.description < rhs.description }

    /// Parses the text form; the error says in words what is wrong.
    public init(parsing text: String) throws(RelayAddressError) {
        let trimmed = text.trimmingCharacters(in: " \t\r\n")
        guard trimmed.hasPrefix(Self.scheme) else { throw .notAnAddress("it does not start with \(Self.scheme)") }
        let rest = trimmed.dropFirst(Self.scheme.count)
        guard let slash = rest.lastIndex(of: "/") else { throw .notAnAddress("the relay ID is missing after the port") }
        let authority = String(rest[rest.startIndex..<slash])
        let idText = String(rest[rest.index(after: slash)...])
        guard let (bytes, canonical) = Base32.decode(idText), canonical, bytes.count == 32, let key = Bytes32(bytes) else {
            throw .badRelayID
        }
        let (host, port) = try Self.split(authority)
        self.init(host: host, port: port, relay: MemberID(key))
    }

    /// `HOST:PORT` or `[IPv6]:PORT` (also used for `--listen`, where port 0 picks a free one).
    public static func split(_ authority: String, allowingPortZero: Bool = false) throws(RelayAddressError) -> (host: String, port: UInt16) {
        let host: String
        let portText: Substring
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw .notAnAddress("an IPv6 host needs a closing ]") }
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            let after = authority[authority.index(after: close)...]
            guard after.hasPrefix(":") else { throw .notAnAddress("the port is missing") }
            portText = after.dropFirst()
        } else {
            guard let colon = authority.lastIndex(of: ":") else { throw .notAnAddress("the port is missing") }
            host = String(authority[authority.startIndex..<colon])
            portText = authority[authority.index(after: colon)...]
        }
        // A host name or IPv4 address (letters, digits, '-', '.'), or an IPv6 address in
        // brackets (hex digits, ':', '.'): nothing else, so the address prints back as it was
        // read and no control character reaches a log or a URL.
        let isIPv6 = authority.hasPrefix("[")
        let allowed: (Character) -> Bool = isIPv6
            ? { $0.isASCII && ($0.isHexDigit || $0 == ":" || $0 == ".") }
            : { ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == "-" || $0 == "." }
        guard !host.isEmpty, host.count <= 253, host.allSatisfy(allowed), isIPv6 == host.contains(":") else {
            throw .notAnAddress("the host must be a name, an IPv4 address or an IPv6 address in brackets")
        }
        guard let port = UInt16(portText), port > 0 || allowingPortZero else { throw .notAnAddress("the port is not a number from 1 to 65535") }
        return (host, port)
    }
}

/// Why a text is not a relay address.
public enum RelayAddressError: Error, Equatable, Sendable, CustomStringConvertible {
    case notAnAddress(String)
    case badRelayID

    public var description: String {
        switch self {
        case .notAnAddress(let why): "not a relay address (dcgka-relay://HOST:PORT/RELAY-ID): \(why)"
        case .badRelayID: "the relay ID is not 52 characters of base32 naming a 32-byte key"
        }
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: String) -> String {
        var scalars = Substring(self)
        while let first = scalars.first, set.contains(first) { scalars = scalars.dropFirst() }
        while let last = scalars.last, set.contains(last) { scalars = scalars.dropLast() }
        return String(scalars)
    }
}
