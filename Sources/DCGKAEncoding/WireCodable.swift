/// A value with exactly one canonical encoding (§8).
public protocol WireEncodable {
    func encode(to writer: inout WireWriter)
}

/// A value that can be decoded from its canonical encoding; any other input is a ``WireError``.
public protocol WireDecodable {
    static func decode(from reader: inout WireReader) throws(WireError) -> Self
}

public typealias WireCodable = WireEncodable & WireDecodable

extension WireEncodable {
    /// The canonical encoding of this value alone.
    public var wireBytes: [UInt8] {
        var writer = WireWriter()
        encode(to: &writer)
        return writer.bytes
    }
}

extension WireDecodable {
    /// Decodes a value that must span all of `bytes`.
    public init(wireBytes bytes: [UInt8]) throws(WireError) {
        var reader = WireReader(bytes)
        let value = try Self.decode(from: &reader)
        try reader.finish()
        self = value
    }
}

extension UInt64: WireCodable {
    public func encode(to writer: inout WireWriter) { writer.writeVarint(self) }
    public static func decode(from reader: inout WireReader) throws(WireError) -> UInt64 { try reader.readVarint() }
}
