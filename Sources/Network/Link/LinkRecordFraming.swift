/// How a link's Noise messages travel over a byte stream (TCP): each is one record,
/// `length (2 bytes, big-endian) ‖ Noise message` (NETWORK.md §12).
///
/// Two bytes are enough because a Noise message has at most 65535 bytes; a larger message cannot
/// be framed (``frame(_:)`` refuses it) and a larger record cannot be announced. Records shorter
/// than 16 bytes are refused as ``LinkError/truncatedMessage``: every message of a link has at
/// least 16 bytes (a tag; message 1 has a 32-byte key), so that is caught before any cryptography.
///
/// **WebSocket** carries no length prefix: each binary frame is exactly one Noise message (the
/// WebSocket frame already delimits it), and a frame over 65535 bytes is refused by
/// ``LinkHandshake/read(_:)`` and ``LinkTransport/open(_:)`` as ``LinkError/messageTooLarge(count:)``.
///
/// The value is also the streaming reader: ``append(_:)`` what the socket delivered, then call
/// ``next()`` until it returns `nil`. Records are returned as soon as they are complete and their
/// bytes dropped, so between reads it holds at most one incomplete record (≤ 65537 bytes), never a
/// queue of them. After an error it is dead and throws ``LinkError/dead``.
public struct LinkRecordFraming: Sendable {
    /// The length prefix.
    public static let headerBytes = 2
    /// The largest record body (a Noise message).
    public static let maximumRecordBytes = Noise.maximumMessageBytes
    /// The smallest record body a link ever sends (one transport tag).
    public static let minimumRecordBytes = Noise.tagBytes

    private var buffer: [UInt8] = []
    private var start = 0
    private var isDead = false

    public init() {}

    /// One record for `message`.
    ///
    /// - Throws: ``LinkError/messageTooLarge(count:)`` for a message over 65535 bytes.
    public static func frame(_ message: [UInt8]) throws(LinkError) -> [UInt8] {
        guard message.count <= maximumRecordBytes else { throw .messageTooLarge(count: message.count) }
        var out = [UInt8]()
        out.reserveCapacity(headerBytes + message.count)
        out.append(UInt8(message.count >> 8))
        out.append(UInt8(message.count & 0xff))
        out += message
        return out
    }

    /// The records for several messages, concatenated (what ``LinkTransport/seal(_:)`` returned).
    public static func frame(_ messages: [[UInt8]]) throws(LinkError) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(messages.reduce(0) { $0 + headerBytes + $1.count })
        for message in messages { out += try frame(message) }
        return out
    }

    /// Bytes received and not yet returned in a record.
    public var bufferedBytes: Int { buffer.count - start }

    /// Whether every byte appended was returned in a record (the stream may end here).
    public var isAtRecordBoundary: Bool { bufferedBytes == 0 }

    /// Adds bytes as they came from the stream, in any pieces.
    public mutating func append<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        if start > 0 {
            buffer.removeFirst(start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next complete record's body (one Noise message), or `nil` when more bytes are needed.
    ///
    /// - Throws: ``LinkError/truncatedMessage`` for a record announcing fewer than 16 bytes;
    ///   afterwards ``LinkError/dead``.
    public mutating func next() throws(LinkError) -> [UInt8]? {
        guard !isDead else { throw .dead }
        guard bufferedBytes >= Self.headerBytes else { return nil }
        let length = Int(buffer[start]) << 8 | Int(buffer[start + 1])
        guard length >= Self.minimumRecordBytes else {
            isDead = true
            buffer = []
            start = 0
            throw .truncatedMessage
        }
        guard bufferedBytes >= Self.headerBytes + length else { return nil }
        let bodyStart = start + Self.headerBytes
        let body = Array(buffer[bodyStart..<(bodyStart + length)])
        start = bodyStart + length
        if start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        }
        return body
    }
}
