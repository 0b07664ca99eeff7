public import DCGKAEncoding

/// `varint length ‖ message` framing of NETWORK.md §11, with the frame limit checked before
/// anything is allocated.
public enum SyncFraming {
    /// The default limit both sides enforce (2 MiB).
    public static let defaultMaximumFrameBytes = 2 << 20
    /// No holder may announce more (16 MiB).
    public static let hardMaximumFrameBytes = 16 << 20

    /// One framed message.
    public static func frame(_ message: SyncMessage) -> [UInt8] {
        let body = message.wireBytes
        var writer = WireWriter(capacity: body.count + 5)
        writer.writeLengthPrefixed(body)
        return writer.bytes
    }
}

/// Why a byte stream is not a sequence of valid frames.
public enum SyncFrameError: Error, Equatable, Sendable {
    case frameTooLarge(limit: Int, announced: UInt64)
    case malformedLength
    case malformedMessage(WireError)
}

/// Reads frames from a stream that arrives in pieces (a socket, a file read in chunks). Keeps at
/// most one incomplete frame, never more than the limit.
public struct SyncFrameReader: Sendable {
    public let maximumFrameBytes: Int
    private var buffer: [UInt8] = []
    private var start = 0

    public init(maximumFrameBytes: Int = SyncFraming.defaultMaximumFrameBytes) {
        self.maximumFrameBytes = min(maximumFrameBytes, SyncFraming.hardMaximumFrameBytes)
    }

    /// Bytes received but not yet returned as a frame.
    public var bufferedBytes: Int { buffer.count - start }

    public mutating func append<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        if start > 0, start >= buffer.count / 2 {
            buffer.removeFirst(start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next complete message, nil when more bytes are needed.
    public mutating func next() throws(SyncFrameError) -> SyncMessage? {
        guard let body = try nextFrame() else { return nil }
        do { return try SyncMessage(wireBytes: body) } catch { throw .malformedMessage(error) }
    }

    /// The next complete frame's body, nil when more bytes are needed.
    public mutating func nextFrame() throws(SyncFrameError) -> [UInt8]? {
        var length: UInt64 = 0
        var shift: UInt64 = 0
        var index = start
        while true {
            guard index < buffer.count else { return nil }
            let byte = buffer[index]
            index += 1
            guard shift < 63 else { throw .malformedLength }
            length |= UInt64(byte & 0x7f) << shift
            if byte & 0x80 == 0 {
                if byte == 0, shift > 0 { throw .malformedLength }  // not the shortest form
                break
            }
            shift += 7
            // A length past the limit is refused as soon as its varint says so.
            if length > UInt64(maximumFrameBytes) { throw .frameTooLarge(limit: maximumFrameBytes, announced: length) }
        }
        guard length <= UInt64(maximumFrameBytes) else { throw .frameTooLarge(limit: maximumFrameBytes, announced: length) }
        let count = Int(length)
        guard buffer.count - index >= count else { return nil }
        let body = Array(buffer[index..<(index + count)])
        start = index + count
        return body
    }

    /// Whether every byte appended was returned in a frame (a file must end on a frame boundary).
    public var isAtFrameBoundary: Bool { start == buffer.count }
}
