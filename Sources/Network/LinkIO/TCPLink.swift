public import Link
public import Sync
public import DCGKAEncoding
public import DCGKACrypto
internal import NIOCore
internal import NIOPosix
internal import Synchronization

/// Why a link over TCP ended.
public enum TCPLinkError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The peer closed the connection before the handshake completed (or refused it: a listener
    /// at its connection limit closes at once).
    case closedDuringHandshake
    /// Connecting and the handshake did not complete within their time limit.
    case handshakeTimeout
    /// The peer closed the connection in the middle of a record or of a sync frame.
    case truncated
    /// The byte stream is not a sequence of records (a length below the smallest Noise message).
    case record(LinkError)
    /// A handshake or transport message was refused (a wrong identity, a tag that does not verify).
    case link(LinkError)
    /// The sealed stream is not a sequence of valid sync frames.
    case frame(SyncFrameError)

    public var description: String {
        switch self {
        case .closedDuringHandshake: "the peer closed the connection during the handshake"
        case .handshakeTimeout: "the connection and handshake did not complete in time"
        case .truncated: "the peer closed the connection in the middle of a record or a sync frame"
        case .record(let error): "record framing: \(error)"
        case .link(let error): "secure link: \(error)"
        case .frame(let error): "sync framing: \(error)"
        }
    }
}

/// A secure link (NETWORK.md §12) over a TCP connection, for direct links between devices
/// (§14.2): every Noise message (the three handshake messages, then transport messages) travels
/// as one ``LinkRecordFraming`` record (`length (2 bytes) ‖ message`), since a byte stream does
/// not delimit messages the way WebSocket frames do; the sealed stream carries §11 sync frames.
public final class TCPLink: SyncLink {
    public let peer: MemberID
    public let peerPayload: [UInt8]
    private let transport: Mutex<LinkTransport>
    private let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    private let writers = TurnGate()

    init(transport: LinkTransport, outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>) {
        peer = transport.peer
        peerPayload = transport.peerPayload
        self.transport = Mutex(transport)
        self.outbound = outbound
    }

    /// Seals frames (already framed §11 messages) and writes them, one record per Noise message,
    /// all in one socket write.
    ///
    /// Concurrent writers take turns: each one's records reach the socket in the order of their
    /// nonces, or the peer could not open them.
    public func write(frames: [[UInt8]]) async throws {
        var plaintext: [UInt8] = []
        for frame in frames { plaintext += frame }
        await writers.enter()
        defer { writers.leave() }
        let records: [UInt8]
        do {
            records = try transport.withLock { transport throws(LinkError) in
                try LinkRecordFraming.frame(try transport.seal(plaintext))
            }
        } catch {
            throw TCPLinkError.link(error)
        }
        try await outbound.write(ByteBuffer(bytes: records))
    }

    public func send(_ messages: [SyncMessage]) async throws {
        try await write(frames: messages.map(SyncFraming.frame))
    }

    /// Closes this side's output (a TCP half-close): the peer's ``TCPChannel/receive()`` returns
    /// nil once it has read everything sent before, and it may still answer until the connection
    /// ends. Waits for its turn so that a writer's records are never cut.
    public func close() async {
        await writers.enter()
        defer { writers.leave() }
        outbound.finish()
    }

    /// Sends `error(code, text)`, then closes this side's output.
    public func close(_ code: SyncErrorCode, _ text: String) async {
        try? await send([.error(code, text)])
        await close()
    }

    /// Decrypts the peer's next transport message.
    func open(_ message: [UInt8]) throws(TCPLinkError) -> [UInt8] {
        do {
            return try transport.withLock { transport throws(LinkError) in try transport.open(message) }
        } catch {
            throw .link(error)
        }
    }
}

/// An established link and the TCP stream it reads from.
public struct TCPChannel: SyncChannel {
    public let link: TCPLink
    var records: TCPRecordReader
    var frames: SyncFrameReader

    init(link: TCPLink, records: TCPRecordReader, maximumFrameBytes: Int) {
        self.link = link
        self.records = records
        frames = SyncFrameReader(maximumFrameBytes: maximumFrameBytes)
    }

    /// The sync messages the next record completes (possibly none); nil when the peer closed the
    /// connection at the end of a sync frame.
    ///
    /// - Throws: ``TCPLinkError`` for bytes that are not records, records that do not open, or
    ///   plaintext that is not sync frames (the link is then dead); what the socket threw.
    public mutating func receive() async throws -> [SyncMessage]? {
        guard let record = try await records.next() else {
            guard records.isAtRecordBoundary, frames.isAtFrameBoundary else { throw TCPLinkError.truncated }
            return nil
        }
        frames.append(try link.open(record))
        var messages: [SyncMessage] = []
        do throws(SyncFrameError) {
            while let message = try frames.next() { messages.append(message) }
        } catch {
            throw TCPLinkError.frame(error)
        }
        return messages
    }
}

/// Cuts a TCP byte stream into records. Holds at most one incomplete record (≤ 65,537 bytes)
/// plus one socket read.
struct TCPRecordReader {
    private var iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    private var framing = LinkRecordFraming()
    private var ended = false

    init(_ inbound: NIOAsyncChannelInboundStream<ByteBuffer>) {
        iterator = inbound.makeAsyncIterator()
    }

    var isAtRecordBoundary: Bool { framing.isAtRecordBoundary }

    /// The next record's body (one Noise message); nil when the stream ended (at a record
    /// boundary or not: see ``isAtRecordBoundary``).
    mutating func next() async throws -> [UInt8]? {
        while true {
            do throws(LinkError) {
                if let record = try framing.next() { return record }
            } catch {
                throw TCPLinkError.record(error)
            }
            if ended { return nil }
            guard let buffer = try await iterator.next() else {
                ended = true
                return nil
            }
            framing.append(buffer.readableBytesView)
        }
    }
}

/// Direct links over TCP (NETWORK.md §14.2): connecting to a peer and listening for peers.
public enum TCPLinks {
    /// Connects to `host:port`, runs the initiator's side of the handshake, runs `body` with the
    /// established channel, then closes the connection.
    ///
    /// - Parameters:
    ///   - expectedPeer: the identity the listener must prove (its contact entry); `nil` accepts
    ///     any identity, and the caller judges `channel.link.peer`. With it given, this side's
    ///     identity is revealed only to that peer.
    ///   - handshakeTimeout: the limit for connecting and the handshake together, so a silent or
    ///     slow listener cannot hold the caller.
    ///   - maximumFrameBytes: the largest sync frame accepted from the peer.
    /// - Throws: ``TCPLinkError`` (a wrong identity is `.link(.unexpectedPeer)`), what the socket
    ///   threw, or what `body` threw.
    public static func connect<T: Sendable>(
        host: String, port: Int, identity: IdentityKey, expectedPeer: MemberID?,
        handshakeTimeout: Duration = .seconds(10), maximumFrameBytes: Int = SyncFraming.defaultMaximumFrameBytes,
        _ body: @Sendable (inout TCPChannel) async throws -> T
    ) async throws -> T {
        let start = ContinuousClock.now
        let connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        do {
            connection = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(TimeAmount(handshakeTimeout))
                .channelOption(.allowRemoteHalfClosure, value: true)
                .connect(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture { try wrap(channel) }
                }
        } catch ChannelError.connectTimeout {
            throw TCPLinkError.handshakeTimeout
        }
        return try await connection.executeThenClose { inbound, outbound in
            var channel = try await establish(
                .initiator(identity, expectedPeer: expectedPeer), channel: connection.channel, inbound: inbound,
                outbound: outbound, timeout: handshakeTimeout - (ContinuousClock.now - start),
                maximumFrameBytes: maximumFrameBytes)
            return try await body(&channel)
        }
    }

    /// Listens on `host:port` and serves every peer that completes the responder's side of the
    /// handshake: `handler` runs with its channel, then that connection is closed. Runs until the
    /// calling task is cancelled, then closes every connection, waits for the handlers and
    /// returns.
    ///
    /// Whoever connects may be anyone, so what a connection costs before it is authenticated is
    /// bounded: at most `maximumConnections` connections at once (one more is closed at once,
    /// before any public-key work), a handshake that does not complete within
    /// `handshakeTimeout` is closed, no key is made before the first record arrived, and a
    /// failed handshake or handler only ends its own connection.
    ///
    /// - Parameters:
    ///   - port: 0 picks a free port.
    ///   - bound: called once with the port actually bound, before any connection is served.
    ///   - handler: judges `channel.link.peer` (any identity completes the handshake) and syncs;
    ///     what it throws ends its connection only.
    /// - Throws: what binding threw (a port in use, for instance).
    public static func listen(
        host: String, port: Int, identity: IdentityKey, handshakeTimeout: Duration = .seconds(10),
        maximumConnections: Int = 64, maximumFrameBytes: Int = SyncFraming.defaultMaximumFrameBytes,
        bound: @Sendable (Int) -> Void, handler: @escaping @Sendable (inout TCPChannel) async throws -> Void
    ) async throws {
        let connections = ListenerConnections(limit: maximumConnections)
        // The accepted connection is wrapped and kept by `connections`; NIO's stream of accepted
        // connections carries only its number. NIO drops what that stream still holds when the
        // loop below is cancelled or the listening socket closes, and it traps on a dropped
        // NIOAsyncChannel whose writer was never finished (apple/swift-nio#2813); a number is
        // safe to drop, and `stop()` finishes whatever was never taken.
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 256)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture { connections.accept(channel) }
            }
        bound(server.channel.localAddress?.port ?? port)
        let failure: (any Error)? = try await server.executeThenClose { inbound in
            await withDiscardingTaskGroup { group -> (any Error)? in
                var failure: (any Error)?
                do {
                    for try await accepted in inbound {
                        guard let id = accepted, let connection = connections.take(id) else { continue }
                        group.addTask {
                            defer { connections.remove(id) }
                            try? await connection.executeThenClose { inbound, outbound in
                                var channel = try await establish(
                                    .responder(identity), channel: connection.channel, inbound: inbound,
                                    outbound: outbound, timeout: handshakeTimeout, maximumFrameBytes: maximumFrameBytes)
                                try await handler(&channel)
                            }
                        }
                    }
                } catch is CancellationError {
                } catch {
                    failure = error
                }
                // Handlers are cancelled and their connections closed (one that ignores
                // cancellation still sees its connection end); connections accepted but never
                // taken are closed too.
                group.cancelAll()
                for connection in connections.stop() {
                    group.addTask { try? await connection.executeThenClose { _, _ in } }
                }
                return failure
            }
        }
        if let failure, !Task.isCancelled { throw failure }
    }

    /// Half-closure both ways: a peer's `close()` ends what it sends, not what it still reads.
    static func wrap(_ channel: any Channel) throws -> NIOAsyncChannel<ByteBuffer, ByteBuffer> {
        try NIOAsyncChannel<ByteBuffer, ByteBuffer>(
            wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
    }

    enum Side {
        case initiator(IdentityKey, expectedPeer: MemberID?)
        case responder(IdentityKey)
    }

    /// Runs the handshake over the connection, one record per Noise message, within `timeout`
    /// (then the connection is closed under it).
    static func establish(
        _ side: Side, channel: any Channel, inbound: NIOAsyncChannelInboundStream<ByteBuffer>,
        outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>, timeout: Duration, maximumFrameBytes: Int
    ) async throws -> TCPChannel {
        let deadline = HandshakeDeadline(channel: channel, after: timeout)
        defer { deadline.cancel() }
        var records = TCPRecordReader(inbound)
        var random = SystemRandomNumberGenerator()
        do {
            var handshake: LinkHandshake
            switch side {
            case .initiator(let identity, let expectedPeer):
                do { handshake = try LinkHandshake.initiator(identity: identity, expectedPeer: expectedPeer, random: &random) } catch {
                    throw TCPLinkError.link(error)
                }
            case .responder(let identity):
                // The responder's keys are made only once the initiator said something.
                guard let first = try await records.next() else { throw TCPLinkError.closedDuringHandshake }
                do {
                    handshake = try LinkHandshake.responder(identity: identity, random: &random)
                    try handshake.read(first)
                } catch {
                    throw TCPLinkError.link(error)
                }
            }
            while true {
                switch handshake.action {
                case .write:
                    let record: [UInt8]
                    do { record = try LinkRecordFraming.frame(try handshake.write()) } catch { throw TCPLinkError.link(error) }
                    try await outbound.write(ByteBuffer(bytes: record))
                case .read:
                    guard let message = try await records.next() else { throw TCPLinkError.closedDuringHandshake }
                    do { try handshake.read(message) } catch { throw TCPLinkError.link(error) }
                case .complete:
                    let transport: LinkTransport
                    do { transport = try handshake.finish() } catch { throw TCPLinkError.link(error) }
                    if deadline.hasFired { throw TCPLinkError.handshakeTimeout }
                    return TCPChannel(
                        link: TCPLink(transport: transport, outbound: outbound), records: records,
                        maximumFrameBytes: maximumFrameBytes)
                case .finished, .dead:
                    throw TCPLinkError.link(.dead)
                }
            }
        } catch {
            // Whatever the closed socket made the handshake throw, the cause was the deadline.
            if deadline.hasFired { throw TCPLinkError.handshakeTimeout }
            throw error
        }
    }
}

/// Closes a connection whose handshake is still running when its time is up: the event loop's
/// timer needs no task of its own, and the pending read ends with the socket.
private final class HandshakeDeadline: Sendable {
    private let fired = Atomic<Bool>(false)
    private let timer = Mutex<Scheduled<Void>?>(nil)

    init(channel: any Channel, after timeout: Duration) {
        let scheduled = channel.eventLoop.scheduleTask(in: TimeAmount(max(timeout, .zero))) { [self] in
            fired.store(true, ordering: .sequentiallyConsistent)
            channel.close(promise: nil)
        }
        timer.withLock { $0 = scheduled }
    }

    var hasFired: Bool { fired.load(ordering: .sequentiallyConsistent) }

    func cancel() {
        timer.withLock { $0?.cancel() }
    }
}

/// The listener's connections, from the moment NIO accepts one: counted for its limit, handed to
/// the accept loop by number, and all closed when the listener stops.
private final class ListenerConnections: Sendable {
    private struct State {
        var next = 0
        /// Accepted, not yet taken by the accept loop.
        var waiting: [Int: NIOAsyncChannel<ByteBuffer, ByteBuffer>] = [:]
        /// Taken, served by a task of the listener.
        var open: [Int: any Channel] = [:]
        var stopped = false
    }
    private let state = Mutex(State())
    private let limit: Int

    init(limit: Int) {
        self.limit = limit
    }

    /// On the accepted connection's event loop, before anything is read: its number, or nil
    /// when the listener is full or stopped (then it is closed at once, before any public-key
    /// work).
    func accept(_ channel: any Channel) -> Int? {
        let id = state.withLock { state -> Int? in
            guard !state.stopped, state.waiting.count + state.open.count < limit else { return nil }
            // Wrapped under the lock, so that `stop()` sees every wrapped connection.
            guard let connection = try? TCPLinks.wrap(channel) else { return nil }
            state.next += 1
            state.waiting[state.next] = connection
            return state.next
        }
        if id == nil { channel.close(promise: nil) }
        return id
    }

    /// The accept loop takes connection `id`; nil if `stop()` already did.
    func take(_ id: Int) -> NIOAsyncChannel<ByteBuffer, ByteBuffer>? {
        state.withLock { state in
            guard let connection = state.waiting.removeValue(forKey: id) else { return nil }
            state.open[id] = connection.channel
            return connection
        }
    }

    /// Connection `id` was closed.
    func remove(_ id: Int) {
        _ = state.withLock { $0.open.removeValue(forKey: id) }
    }

    /// Accepts no more, closes every open connection, and returns those never taken: the caller
    /// closes them through `executeThenClose`, which finishes their writers as NIO requires.
    func stop() -> [NIOAsyncChannel<ByteBuffer, ByteBuffer>] {
        let (open, waiting) = state.withLock { state in
            state.stopped = true
            defer { state.waiting = [:] }
            return (Array(state.open.values), Array(state.waiting.values))
        }
        for channel in open { channel.close(promise: nil) }
        return waiting
    }
}
