public import DCGKAEncoding

/// The one-byte suite identifier carried in every envelope (§2.1), so a later suite can be added
/// without ambiguity.
public enum CipherSuiteID: UInt8, Sendable, Hashable, CaseIterable, WireCodable {
    /// Ed25519, HPKE(X25519, HKDF-SHA256, ChaCha20-Poly1305), HKDF-SHA256, ChaCha20-Poly1305, SHA-256.
    case suite1 = 1

    /// The implementation of this suite.
    public var suite: any CipherSuite {
        switch self {
        case .suite1: return Suite1()
        }
    }

    public func encode(to writer: inout WireWriter) { writer.writeUInt8(rawValue) }

    public static func decode(from reader: inout WireReader) throws(WireError) -> CipherSuiteID {
        let raw = try reader.readUInt8()
        guard let id = CipherSuiteID(rawValue: raw) else { throw .unsupportedSuite(raw) }
        return id
    }
}
