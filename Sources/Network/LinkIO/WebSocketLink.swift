public import Link
public import Sync
public import DCGKAEncoding
public import WSCore
internal import NIOCore
internal import Synchronization

/// Why a link over a WebSocket ended.
public enum WebSocketLinkError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The peer closed the socket before the handshake completed.
    case closedDuringHandshake
    /// The handshake did not complete within its time limit.
    case handshakeTimeout
    /// A text frame, or a binary frame larger than a Noise message.
    case badFrame
    case link(LinkError)
    case frame(SyncFrameError)

    public var description: String {
        switch self {
        case .closedDuringHandshake: "the peer closed the connection during the handshake"
        case .handshakeTimeout: "the handshake did not complete in time"
        case .badFrame: "the peer sent a frame that is not one Noise message"
        case .link(let error): "secure link: \(error)"
        case .frame(let error): "sync framing: \(error)"
        }
    }
}

/// A secure link (NETWORK.md §12) inside WebSocket binary frames: every frame carries exactly one
/// Noise message (handshake messages first, then transport messages); the sealed stream carries
/// §11 sync frames. The relay and its clients both run it.
public final class WebSocketLink: SyncLink {
    public let peer: MemberID
    public let peerPayload: [UInt8]
    private let transport: Mutex<LinkTransport>
    private let outbound: WebSocketOutboundWriter
    private let reader: Mutex<SyncFrameReader>
    private let writers = TurnGate()

    /// The WebSocket frame size both sides allow: one Noise message.
    public static let maximumWebSocketFrame = LinkTransport.maximumMessageBytes + 64

    init(transport: LinkTransport, outbound: WebSocketOutboundWriter, maximumFrameBytes: Int) {
        peer = transport.peer
        peerPayload = transport.peerPayload
        self.transport = Mutex(transport)
        self.outbound = outbound
        reader = Mutex(SyncFrameReader(maximumFrameBytes: maximumFrameBytes))
    }

    /// Runs `handshake` over the socket: writes and reads its messages in turn.
    public static func establish(
        _ handshake: LinkHandshake, inbound: inout WebSocketInboundMessageStream.AsyncIterator,
        outbound: WebSocketOutboundWriter, maximumFrameBytes: Int = SyncFraming.defaultMaximumFrameBytes
    ) async throws -> WebSocketLink {
        var handshake = handshake
        while true {
            switch handshake.action {
            case .write:
                let message: [UInt8]
                do { message = try handshake.write() } catch { throw WebSocketLinkError.link(error) }
                try await outbound.write(.binary(ByteBuffer(bytes: message)))
            case .read:
                guard let frame = try await inbound.next() else { throw WebSocketLinkError.closedDuringHandshake }
                guard case .binary(let buffer) = frame else { throw WebSocketLinkError.badFrame }
                do { try handshake.read(Array(buffer.readableBytesView)) } catch { throw WebSocketLinkError.link(error) }
            case .complete:
                let transport: LinkTransport
                do { transport = try handshake.finish() } catch { throw WebSocketLinkError.link(error) }
                return WebSocketLink(transport: transport, outbound: outbound, maximumFrameBytes: maximumFrameBytes)
            case .finished, .dead:
                throw WebSocketLinkError.link(.dead)
            }
        }
    }

    /// Seals frames (already framed §11 messages) and writes them, one WebSocket frame per
    /// Noise message.
    ///
    /// Concurrent writers take turns: each one's Noise messages reach the socket in the order of
    /// their nonces, or the peer could not open them.
    public func write(frames: [[UInt8]]) async throws {
        var plaintext: [UInt8] = []
        for frame in frames { plaintext += frame }
        await writers.enter()
        defer { writers.leave() }
        let messages: [[UInt8]]
        do { messages = try transport.withLock { transport throws(LinkError) in try transport.seal(plaintext) } } catch {
            throw WebSocketLinkError.link(error)
        }
        for message in messages { try await outbound.write(.binary(ByteBuffer(bytes: message))) }
    }

    public func send(_ messages: [SyncMessage]) async throws {
        try await write(frames: messages.map(SyncFraming.frame))
    }

    /// Opens one received WebSocket message and returns the sync messages it completed.
    public func receive(_ message: WebSocketMessage) throws -> [SyncMessage] {
        guard case .binary(let buffer) = message, buffer.readableBytes <= LinkTransport.maximumMessageBytes else {
            throw WebSocketLinkError.badFrame
        }
        let plaintext: [UInt8]
        do { plaintext = try transport.withLock { transport throws(LinkError) in try transport.open(Array(buffer.readableBytesView)) } } catch {
            throw WebSocketLinkError.link(error)
        }
        return try reader.withLock { reader throws(WebSocketLinkError) in
            reader.append(plaintext)
            var messages: [SyncMessage] = []
            do throws(SyncFrameError) {
                while let message = try reader.next() { messages.append(message) }
            } catch {
                throw .frame(error)
            }
            return messages
        }
    }

    /// Sends `error(code, text)` and closes the socket.
    public func close(_ code: SyncErrorCode, _ text: String) async {
        try? await send([.error(code, text)])
        try? await outbound.close(.normalClosure, reason: nil)
    }
}

/// An established link and the stream of WebSocket messages it reads from.
public struct LinkChannel: SyncChannel {
    public let link: WebSocketLink
    var iterator: WebSocketInboundMessageStream.AsyncIterator

    public init(link: WebSocketLink, iterator: WebSocketInboundMessageStream.AsyncIterator) {
        self.link = link
        self.iterator = iterator
    }

    /// The sync messages the next WebSocket message completes; nil when the link closed.
    public mutating func receive() async throws -> [SyncMessage]? {
        guard let message = try await iterator.next() else { return nil }
        return try link.receive(message)
    }
}
