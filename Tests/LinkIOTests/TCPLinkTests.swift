import Testing
import DCGKACrypto
import DCGKAEncoding
import Link
import LinkIO
import NIOCore
import NIOPosix
import Sync
import Synchronization

// The TCP carrier of secure links (NETWORK.md §12, §14.2) over real sockets on 127.0.0.1: a
// listener and connector that talk sync, the handshake's refusals and time limit, hostile bytes
// after the handshake, records cut into single bytes, concurrent writers, the connection limit,
// and stopping. Misbehaving peers are raw NIO connections that drive the handshake themselves
// (helpers at the bottom).

@Suite("TCP links")
struct TCPLinkTests {
    @Test("connect and listen: sync messages both ways, each side sees the other's identity", .timeLimit(.minutes(5)))
    func roundTrip() async throws {
        let server = identity(1), client = identity(2)
        let seenByServer = Locked<[MemberID]>([])
        let handlerEnded = Locked(false)
        try await withListener(identity: server, handler: { channel in
            seenByServer.withLock { $0.append(channel.link.peer) }
            // The listener asks first, then answers: messages flow both ways on one link.
            try await channel.link.send([.ping(100)])
            while let messages = try await channel.receive() {
                for case .ping(let n) in messages { try await channel.link.send([.pong(n)]) }
            }
            handlerEnded.withLock { $0 = true }
        }) { port in
            let (peer, pongs, serverPing, rest) = try await TCPLinks.connect(
                host: "127.0.0.1", port: port, identity: client, expectedPeer: server.id, handshakeTimeout: .seconds(60)
            ) { channel in
                let peer = channel.link.peer
                try await channel.link.send((1...5).map { SyncMessage.ping($0) })
                var pongs: [UInt64] = []
                var serverPing: UInt64?
                while pongs.count < 5 || serverPing == nil, let messages = try await channel.receive() {
                    for message in messages {
                        switch message {
                        case .pong(let n): pongs.append(n)
                        case .ping(let n):
                            serverPing = n
                            try await channel.link.send([.pong(n)])
                        default: break
                        }
                    }
                }
                // Half-close: the handler's receive() ends, it returns, and then ours does.
                await channel.link.close()
                var rest: [SyncMessage] = []
                while let messages = try await channel.receive() { rest += messages }
                return (peer, pongs, serverPing, rest)
            }
            #expect(peer == server.id)
            #expect(pongs == [1, 2, 3, 4, 5])
            #expect(serverPing == 100)
            #expect(rest == [], "nothing more, then the link ends cleanly")
            #expect(await poll(timeout: .seconds(60)) { handlerEnded.current ? true : nil } == true)
            #expect(seenByServer.current == [client.id])
        }
    }

    @Test("a wrong expectedPeer fails with a typed error and the handler never runs", .timeLimit(.minutes(5)))
    func wrongExpectedPeer() async throws {
        let server = identity(1), client = identity(2), stranger = identity(3)
        let handled = Locked(0)
        try await withListener(identity: server, handler: pingHandler(count: handled)) { port in
            await #expect(throws: TCPLinkError.link(.unexpectedPeer(expected: stranger.id, actual: server.id))) {
                try await TCPLinks.connect(host: "127.0.0.1", port: port, identity: client, expectedPeer: stranger.id, handshakeTimeout: .seconds(60)) { _ in 0 }
            }
            try await Task.sleep(for: .milliseconds(300))
            #expect(handled.current == 0)
            // expectedPeer nil accepts anyone: the caller judges the peer.
            let peer = try await TCPLinks.connect(host: "127.0.0.1", port: port, identity: client, expectedPeer: nil, handshakeTimeout: .seconds(60)) { channel in
                channel.link.peer
            }
            #expect(peer == server.id)
        }
    }

    @Test("the listener closes a silent client, and one that stops mid-handshake, after handshakeTimeout", .timeLimit(.minutes(5)))
    func silentClientIsClosed() async throws {
        let server = identity(1)
        let handled = Locked(0)
        try await withListener(identity: server, handshakeTimeout: .seconds(1), handler: pingHandler(count: handled)) { port in
            // Says nothing at all.
            let start = ContinuousClock.now
            try await withRawConnection(port: port, timeout: .seconds(30)) { raw in await raw.waitForClose() }
            let elapsed = ContinuousClock.now - start
            #expect(elapsed >= .milliseconds(900), "closed after the timeout, not before: \(elapsed)")
            #expect(elapsed < .seconds(30), "closed by the listener, not by the test's own 30 s deadline: \(elapsed)")

            // Sends a valid message 1, then nothing.
            let again = ContinuousClock.now
            try await withRawConnection(port: port, timeout: .seconds(30)) { raw in
                var random = SystemRandomNumberGenerator()
                var handshake = try LinkHandshake.initiator(identity: identity(2), expectedPeer: server.id, random: &random)
                try await raw.write(try LinkRecordFraming.frame(try handshake.write()))
                _ = try await raw.readRecord()  // message 2
                await raw.waitForClose()
            }
            let elapsedAgain = ContinuousClock.now - again
            #expect(elapsedAgain >= .milliseconds(900) && elapsedAgain < .seconds(30), "\(elapsedAgain)")
            #expect(handled.current == 0)
        }
    }

    @Test("connect gives handshakeTimeout when the listener says nothing", .timeLimit(.minutes(5)))
    func silentListenerTimesOut() async throws {
        try await withRawServer(serve: { raw in await raw.waitForClose() }) { port in
            let start = ContinuousClock.now
            await #expect(throws: TCPLinkError.handshakeTimeout) {
                try await TCPLinks.connect(
                    host: "127.0.0.1", port: port, identity: identity(2), expectedPeer: nil, handshakeTimeout: .seconds(1)
                ) { _ in 0 }
            }
            let elapsed = ContinuousClock.now - start
            #expect(elapsed >= .milliseconds(900) && elapsed < .seconds(30), "\(elapsed)")
        }
    }

    @Test("bad bytes after the handshake end that link with a typed error; the listener keeps serving", .timeLimit(.minutes(5)))
    func garbageAfterHandshake() async throws {
        let server = identity(1), client = identity(2)
        let failures = Locked<[TCPLinkError]>([])
        let handler: @Sendable (inout TCPChannel) async throws -> Void = { channel in
            do {
                while let messages = try await channel.receive() {
                    for case .ping(let n) in messages { try await channel.link.send([.pong(n)]) }
                }
            } catch let error as TCPLinkError {
                failures.withLock { $0.append(error) }
                throw error
            }
        }
        try await withListener(identity: server, handler: handler) { port in
            var random = SystemRandomNumberGenerator()

            // A well-formed record whose bytes are not a transport message of this link.
            try await withRawConnection(port: port) { raw in
                _ = try await raw.handshake(try LinkHandshake.initiator(identity: client, expectedPeer: server.id, random: &random))
                try await raw.write(try LinkRecordFraming.frame(random.bytes(48)))
                await raw.waitForClose()
            }
            #expect(await failure(in: failures, .link(.decryptionFailed)))

            // A real transport message with one bit flipped, after a good one was answered.
            try await withRawConnection(port: port) { raw in
                var transport = try await raw.handshake(try LinkHandshake.initiator(identity: client, expectedPeer: server.id, random: &random))
                try await raw.send([.ping(1)], with: &transport)
                #expect(try await raw.receive(with: &transport) == [.pong(1)])
                var sealed = try transport.seal(SyncFraming.frame(.ping(2)))
                sealed[0][3] ^= 0x40
                try await raw.write(try LinkRecordFraming.frame(sealed))
                await raw.waitForClose()
            }
            #expect(await failure(in: failures, .link(.decryptionFailed), count: 2))

            // A record length below the smallest Noise message.
            try await withRawConnection(port: port) { raw in
                _ = try await raw.handshake(try LinkHandshake.initiator(identity: client, expectedPeer: server.id, random: &random))
                try await raw.write([0, 3, 1, 2, 3])
                await raw.waitForClose()
            }
            #expect(await failure(in: failures, .record(.truncatedMessage)))

            // A sealed plaintext that is not a sync frame (a varint that is not the shortest form).
            try await withRawConnection(port: port) { raw in
                var transport = try await raw.handshake(try LinkHandshake.initiator(identity: client, expectedPeer: server.id, random: &random))
                try await raw.write(try LinkRecordFraming.frame(try transport.seal([0x80, 0x00])))
                await raw.waitForClose()
            }
            #expect(await failure(in: failures, .frame(.malformedLength)))

            // The connection ends in the middle of a record.
            try await withRawConnection(port: port) { raw in
                _ = try await raw.handshake(try LinkHandshake.initiator(identity: client, expectedPeer: server.id, random: &random))
                try await raw.write([0, 200] + random.bytes(20))
            }
            #expect(await failure(in: failures, .truncated))

            #expect(try await pingPong(port: port, identity: client, server: server.id, n: 77))
        }
    }

    @Test("a sync frame announcing more than maximumFrameBytes gives the frame error, on either side", .timeLimit(.minutes(5)))
    func frameTooLarge() async throws {
        let server = identity(1), client = identity(2)
        let failures = Locked<[TCPLinkError]>([])
        let groups = (0..<100).map { GroupID(Bytes32(Array(repeating: UInt8($0), count: 32))!) }
        let bigFrame = SyncFraming.frame(.invited(groups)).count - 2  // a 2-byte varint before the body
        try await withListener(identity: server, maximumFrameBytes: 1024, handler: { channel in
            do {
                while let messages = try await channel.receive() {
                    for case .ping(let n) in messages { try await channel.link.send([.invited(groups), .pong(n)]) }
                }
            } catch let error as TCPLinkError {
                failures.withLock { $0.append(error) }
                throw error
            }
        }) { port in
            // The listener refuses a frame as soon as its length says 1025 bytes.
            try await withRawConnection(port: port) { raw in
                var random = SystemRandomNumberGenerator()
                var transport = try await raw.handshake(try LinkHandshake.initiator(identity: client, expectedPeer: server.id, random: &random))
                try await raw.write(try LinkRecordFraming.frame(try transport.seal(varint(1025) + [1, 2, 3])))
                await raw.waitForClose()
            }
            #expect(await failure(in: failures, .frame(.frameTooLarge(limit: 1024, announced: 1025))))

            // The connector refuses the listener's 3 KiB `invited`.
            await #expect(throws: TCPLinkError.frame(.frameTooLarge(limit: 1024, announced: UInt64(bigFrame)))) {
                try await TCPLinks.connect(
                    host: "127.0.0.1", port: port, identity: client, expectedPeer: server.id, handshakeTimeout: .seconds(60), maximumFrameBytes: 1024
                ) { channel in
                    try await channel.link.send([.ping(1)])
                    while try await channel.receive() != nil {}
                }
            }
            // With the default limit it arrives.
            let received = try await TCPLinks.connect(host: "127.0.0.1", port: port, identity: client, expectedPeer: server.id, handshakeTimeout: .seconds(60)) { channel in
                try await channel.link.send([.ping(2)])
                var received: [SyncMessage] = []
                while !received.contains(.pong(2)), let messages = try await channel.receive() { received += messages }
                return received
            }
            #expect(received == [.invited(groups), .pong(2)])
        }
    }

    @Test("records cut into 1-byte TCP writes still work, both ways", .timeLimit(.minutes(5)))
    func oneByteWrites() async throws {
        let server = identity(1), client = identity(2)
        // A raw client writing one byte at a time to the listener, handshake included.
        try await withListener(identity: server, handler: pingHandler(count: Locked(0))) { port in
            let answers = try await withRawConnection(port: port, splitWrites: true) { raw in
                var random = SystemRandomNumberGenerator()
                var transport = try await raw.handshake(try LinkHandshake.initiator(identity: client, expectedPeer: server.id, random: &random))
                try await raw.send([.ping(7), .ping(8)], with: &transport)
                var answers: [SyncMessage] = []
                while answers.count < 2, let messages = try await raw.receive(with: &transport) { answers += messages }
                return answers
            }
            #expect(answers == [.pong(7), .pong(8)])
        }

        // A raw listener writing one byte at a time to the connector.
        let heard = Locked<[SyncMessage]>([])
        try await withRawServer(splitWrites: true, serve: { raw in
            var random = SystemRandomNumberGenerator()
            var transport = try await raw.handshake(try LinkHandshake.responder(identity: server, random: &random))
            try await raw.send([.ping(5)], with: &transport)
            while let messages = try await raw.receive(with: &transport) {
                heard.withLock { $0 += messages }
                if messages.contains(.pong(5)) { break }
            }
        }) { port in
            try await TCPLinks.connect(host: "127.0.0.1", port: port, identity: client, expectedPeer: server.id, handshakeTimeout: .seconds(60)) { channel in
                while let messages = try await channel.receive() {
                    for case .ping(let n) in messages { try await channel.link.send([.pong(n)]) }
                    if messages.contains(.ping(5)) { break }
                }
            }
            #expect(await poll(timeout: .seconds(60)) { heard.current.contains(.pong(5)) ? true : nil } == true)
        }
    }

    @Test("16 concurrent writers on one link: the peer opens everything, each writer's messages in order", .timeLimit(.minutes(5)))
    func concurrentWriters() async throws {
        let server = identity(1), client = identity(2)
        let writers = 16, perWriter = 20
        let received = Locked<[SyncMessage]>([])
        // 3,000 group IDs: a frame that takes two Noise messages, so seals of several records interleave too.
        let groups = (0..<3000).map { GroupID(Bytes32(Array(repeating: UInt8($0 % 256), count: 31) + [UInt8($0 / 256)])!) }
        try await withListener(identity: server, handler: { channel in
            while let messages = try await channel.receive() {
                received.withLock { $0 += messages }
                for case .ping(let n) in messages { try await channel.link.send([.pong(n)]) }
            }
        }) { port in
            let pongs = try await TCPLinks.connect(host: "127.0.0.1", port: port, identity: client, expectedPeer: server.id, handshakeTimeout: .seconds(60)) { channel in
                let link = channel.link
                return try await withThrowingTaskGroup(of: Void.self) { group in
                    for writer in 0..<writers {
                        group.addTask {
                            for k in 0..<perWriter {
                                if k == perWriter / 2 {
                                    try await link.send([.invited(groups), .ping(UInt64(writer * 1000 + k))])
                                } else {
                                    try await link.send([.ping(UInt64(writer * 1000 + k))])
                                }
                            }
                        }
                    }
                    // Read while they write, as a sync driver does.
                    var pongs = Set<UInt64>()
                    while pongs.count < writers * perWriter, let messages = try await channel.receive() {
                        for case .pong(let n) in messages { pongs.insert(n) }
                    }
                    try await group.waitForAll()
                    return pongs
                }
            }
            #expect(pongs.count == writers * perWriter)
            let all = received.current
            #expect(all.filter { $0 == .invited(groups) }.count == writers)
            let pings = all.compactMap { message -> UInt64? in if case .ping(let n) = message { n } else { nil } }
            #expect(pings.count == writers * perWriter)
            for writer in 0..<writers {
                let mine = pings.filter { Int($0) / 1000 == writer }
                #expect(mine == (0..<perWriter).map { UInt64(writer * 1000 + $0) })
            }
        }
    }

    @Test("at most maximumConnections at once: one more is closed before its handshake", .timeLimit(.minutes(5)))
    func connectionLimit() async throws {
        let server = identity(1), client = identity(2)
        let handled = Locked(0)
        try await withListener(identity: server, maximumConnections: 1, handler: pingHandler(count: handled)) { port in
            let holding = Locked(false)
            let release = Locked(false)
            let first = Task {
                try await TCPLinks.connect(host: "127.0.0.1", port: port, identity: client, expectedPeer: server.id, handshakeTimeout: .seconds(60)) { channel in
                    holding.withLock { $0 = true }
                    while !release.current { try await Task.sleep(for: .milliseconds(10)) }
                    return channel.link.peer
                }
            }
            #expect(await poll(timeout: .seconds(60)) { holding.current ? true : nil } == true)

            let start = ContinuousClock.now
            await #expect(throws: (any Error).self) {
                try await TCPLinks.connect(host: "127.0.0.1", port: port, identity: client, expectedPeer: server.id, handshakeTimeout: .seconds(60)) { _ in 0 }
            }
            #expect(ContinuousClock.now - start < .seconds(30), "refused at once, not after the handshake timeout")
            #expect(handled.current == 1)

            release.withLock { $0 = true }
            #expect(try await first.value == server.id)
            // Once the first is gone, there is room again.
            var ok = false
            for _ in 0..<50 where !ok {
                ok = (try? await pingPong(port: port, identity: client, server: server.id, n: 3)) ?? false
                if !ok { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(ok)
        }
    }

    @Test("the listener closes its connections and returns when its task is cancelled", .timeLimit(.minutes(5)))
    func listenerStopsOnCancel() async throws {
        let server = identity(1), client = identity(2)
        let ports = Locked<Int?>(nil)
        let inHandler = Locked(false)
        let failure = Locked<String?>(nil)
        let listener = Task {
            do { try await TCPLinks.listen(
                host: "127.0.0.1", port: 0, identity: server, handshakeTimeout: .seconds(60), bound: { port in ports.withLock { $0 = port } }
            ) { channel in
                inHandler.withLock { $0 = true }
                while try await channel.receive() != nil {}
            } } catch {
                failure.withLock { $0 = "\(error)" }
                throw error
            }
        }
        // Bound, or failed: a test process busy with other suites may take a while to start it.
        let port = try #require(await poll(timeout: .seconds(240)) { ports.current ?? (failure.current != nil ? -1 : nil) })
        try #require(port > 0, "the listener failed: \(failure.current ?? "")")
        let connected = Task {
            try await TCPLinks.connect(host: "127.0.0.1", port: port, identity: client, expectedPeer: server.id, handshakeTimeout: .seconds(60)) { channel in
                // Waits for the listener: nil when it closes the connection (or an error).
                while try await channel.receive() != nil {}
                return true
            }
        }
        #expect(await poll(timeout: .seconds(60)) { inHandler.current ? true : nil } == true)

        listener.cancel()
        try await listener.value  // returns, does not throw
        _ = try? await connected.value  // the open connection ended
        await #expect(throws: (any Error).self) {
            try await TCPLinks.connect(
                host: "127.0.0.1", port: port, identity: client, expectedPeer: server.id, handshakeTimeout: .seconds(2)
            ) { _ in 0 }
        }
    }

    @Test("cancelling the listener during a burst of connections closes them all and returns", .timeLimit(.minutes(5)))
    func cancelDuringBurst() async throws {
        let server = identity(1)
        let ports = Locked<Int?>(nil)
        let failure = Locked<String?>(nil)
        let listener = Task {
            do {
                try await TCPLinks.listen(
                    host: "127.0.0.1", port: 0, identity: server, handshakeTimeout: .seconds(60), bound: { port in ports.withLock { $0 = port } }
                ) { channel in
                    while try await channel.receive() != nil {}
                }
            } catch {
                failure.withLock { $0 = "\(error)" }
                throw error
            }
        }
        // Bound, or failed: a test process busy with other suites may take a while to start it.
        let port = try #require(await poll(timeout: .seconds(240)) { ports.current ?? (failure.current != nil ? -1 : nil) })
        try #require(port > 0, "the listener failed: \(failure.current ?? "")")
        // Connections accepted but not yet handed to the accept loop when it stops must be closed
        // too (NIO traps on ones that are dropped instead).
        // Each client gives up on its own only after 180 s: one that ends well before was closed
        // by the listener (or refused once it stopped), not left open.
        let start = ContinuousClock.now
        let closedAfter = Locked<[Duration]>([])
        let clients = (0..<32).map { _ in
            Task {
                _ = try? await withRawConnection(port: port, timeout: .seconds(180)) { raw in await raw.waitForClose() }
                closedAfter.withLock { $0.append(ContinuousClock.now - start) }
            }
        }
        try await Task.sleep(for: .milliseconds(5))
        listener.cancel()
        try await listener.value
        for client in clients { await client.value }
        let leftOpen = closedAfter.current.filter { $0 >= .seconds(90) }
        #expect(closedAfter.current.count == 32 && leftOpen.isEmpty, "\(leftOpen.count) connections were left open until their own deadline")
    }

    @Test("close(code, text) sends error(code, text) before closing", .timeLimit(.minutes(5)))
    func closeWithError() async throws {
        let server = identity(1), client = identity(2)
        try await withListener(identity: server, handler: { channel in
            await channel.link.close(.rateLimited, "slow down")
            while try await channel.receive() != nil {}
        }) { port in
            let received = try await TCPLinks.connect(host: "127.0.0.1", port: port, identity: client, expectedPeer: server.id, handshakeTimeout: .seconds(60)) { channel in
                var received: [SyncMessage] = []
                while let messages = try await channel.receive() { received += messages }
                return received
            }
            #expect(received == [.error(.rateLimited, "slow down")])
        }
    }
}

// MARK: - Helpers

private func identity(_ n: UInt8) -> IdentityKey {
    IdentityKey(seed: Bytes32(Array(repeating: n, count: 32))!)
}

private func varint(_ value: UInt64) -> [UInt8] {
    var value = value
    var out: [UInt8] = []
    while value >= 0x80 {
        out.append(UInt8(value & 0x7f) | 0x80)
        value >>= 7
    }
    out.append(UInt8(value))
    return out
}

/// A value shared between a connection's task and the test.
private final class Locked<Value: Sendable>: Sendable {
    private let value: Mutex<Value>
    init(_ value: Value) { self.value = Mutex(value) }
    func withLock<T: Sendable>(_ body: (inout Value) -> T) -> T { value.withLock { body(&$0) } }
    var current: Value { value.withLock { $0 } }
}

private struct TestFailure: Error, CustomStringConvertible {
    let description: String
}

/// Polls `check` until it gives a value or `timeout` passes.
private func poll<T>(timeout: Duration, every interval: Duration = .milliseconds(10), _ check: () -> T?) async -> T? {
    let deadline = ContinuousClock.now + timeout
    while true {
        if let value = check() { return value }
        if ContinuousClock.now >= deadline { return nil }
        try? await Task.sleep(for: interval)
    }
}

/// Whether `error` was recorded `count` times within a few seconds.
private func failure(in failures: Locked<[TCPLinkError]>, _ error: TCPLinkError, count: Int = 1) async -> Bool {
    await poll(timeout: .seconds(60)) { failures.current.filter { $0 == error }.count >= count ? true : nil } ?? false
}

/// A handler that answers `ping(n)` with `pong(n)` and counts the links it served.
private func pingHandler(count: Locked<Int>) -> @Sendable (inout TCPChannel) async throws -> Void {
    { channel in
        count.withLock { $0 += 1 }
        while let messages = try await channel.receive() {
            for case .ping(let n) in messages { try await channel.link.send([.pong(n)]) }
        }
    }
}

/// One link to the listener at `port`: `ping(n)` answered by `pong(n)`.
private func pingPong(port: Int, identity: IdentityKey, server: MemberID, n: UInt64) async throws -> Bool {
    try await TCPLinks.connect(host: "127.0.0.1", port: port, identity: identity, expectedPeer: server, handshakeTimeout: .seconds(60)) { channel in
        try await channel.link.send([.ping(n)])
        while let messages = try await channel.receive() {
            if messages.contains(.pong(n)) { return true }
        }
        return false
    }
}

/// Runs `TCPLinks.listen` on 127.0.0.1 with a free port for as long as `body` runs, then cancels it
/// and waits for it to return.
private func withListener<T: Sendable>(
    identity: IdentityKey, handshakeTimeout: Duration = .seconds(180), maximumConnections: Int = 64,
    maximumFrameBytes: Int = SyncFraming.defaultMaximumFrameBytes,
    handler: @escaping @Sendable (inout TCPChannel) async throws -> Void, _ body: (Int) async throws -> T
) async throws -> T {
    let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
            defer { continuation.finish() }
            try await TCPLinks.listen(
                host: "127.0.0.1", port: 0, identity: identity, handshakeTimeout: handshakeTimeout,
                maximumConnections: maximumConnections, maximumFrameBytes: maximumFrameBytes,
                bound: { continuation.yield($0) }, handler: handler)
        }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else {
            try await group.waitForAll()
            throw TestFailure(description: "the listener did not bind")
        }
        do {
            let result = try await body(port)
            group.cancelAll()
            try await group.waitForAll()
            return result
        } catch {
            group.cancelAll()
            throw error
        }
    }
}

/// One plain TCP connection driven by a test: it writes whatever it is told (one byte per write
/// with `splitWrites`) and runs either side of the handshake by hand.
private struct RawConnection {
    private var iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    private let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    private var records = LinkRecordFraming()
    private var frames = SyncFrameReader()
    let splitWrites: Bool

    init(inbound: NIOAsyncChannelInboundStream<ByteBuffer>, outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>, splitWrites: Bool) {
        iterator = inbound.makeAsyncIterator()
        self.outbound = outbound
        self.splitWrites = splitWrites
    }

    func write(_ bytes: [UInt8]) async throws {
        guard splitWrites else { return try await outbound.write(ByteBuffer(bytes: bytes)) }
        for byte in bytes {
            try await outbound.write(ByteBuffer(bytes: [byte]))
            // Give every byte its own segment, most of the time.
            try await Task.sleep(for: .microseconds(200))
        }
    }

    /// The next record's body; nil when the peer closed.
    mutating func readRecord() async throws -> [UInt8]? {
        while true {
            if let record = try records.next() { return record }
            guard let buffer = try await iterator.next() else { return nil }
            records.append(buffer.readableBytesView)
        }
    }

    /// Reads (and drops) everything until the peer closes the connection or it fails.
    mutating func waitForClose() async {
        while (try? await iterator.next()) != nil {}
    }

    /// Drives `handshake` to completion, one record per message.
    mutating func handshake(_ handshake: LinkHandshake) async throws -> LinkTransport {
        var handshake = handshake
        while true {
            switch handshake.action {
            case .write: try await write(try LinkRecordFraming.frame(try handshake.write()))
            case .read:
                guard let record = try await readRecord() else { throw TestFailure(description: "closed during the handshake") }
                try handshake.read(record)
            case .complete: return try handshake.finish()
            case .finished, .dead: throw TestFailure(description: "handshake dead")
            }
        }
    }

    mutating func send(_ messages: [SyncMessage], with transport: inout LinkTransport) async throws {
        let plaintext = messages.flatMap(SyncFraming.frame)
        try await write(try LinkRecordFraming.frame(try transport.seal(plaintext)))
    }

    /// The sync messages the next record completes; nil when the peer closed.
    mutating func receive(with transport: inout LinkTransport) async throws -> [SyncMessage]? {
        guard let record = try await readRecord() else { return nil }
        frames.append(try transport.open(record))
        var messages: [SyncMessage] = []
        while let message = try frames.next() { messages.append(message) }
        return messages
    }
}

private func wrap(_ channel: any Channel) -> EventLoopFuture<NIOAsyncChannel<ByteBuffer, ByteBuffer>> {
    channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
}

/// A raw connection to 127.0.0.1:`port` for `body`, closed afterwards, and closed under it after
/// `timeout` so that a test never waits forever for a peer. The default is generous: a test
/// process running every suite on two cores can take a minute for a handshake written byte by byte.
private func withRawConnection<T: Sendable>(
    port: Int, splitWrites: Bool = false, timeout: Duration = .seconds(180), _ body: (inout RawConnection) async throws -> T
) async throws -> T {
    let connection = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .connect(host: "127.0.0.1", port: port) { wrap($0) }
    let channel = connection.channel
    let deadline = channel.eventLoop.scheduleTask(in: TimeAmount(timeout)) { channel.close(promise: nil) }
    defer { deadline.cancel() }
    return try await connection.executeThenClose { inbound, outbound in
        var raw = RawConnection(inbound: inbound, outbound: outbound, splitWrites: splitWrites)
        return try await body(&raw)
    }
}

/// A raw TCP listener on 127.0.0.1 that runs `serve` for each connection, for as long as `body`
/// runs.
private func withRawServer<T: Sendable>(
    splitWrites: Bool = false, serve: @escaping @Sendable (inout RawConnection) async throws -> Void,
    _ body: (Int) async throws -> T
) async throws -> T {
    let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        .bind(host: "127.0.0.1", port: 0) { wrap($0) }
    let port = try #require(server.channel.localAddress?.port)
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
            try? await server.executeThenClose { inbound in
                try await withThrowingDiscardingTaskGroup { connections in
                    for try await connection in inbound {
                        connections.addTask {
                            try? await connection.executeThenClose { inbound, outbound in
                                var raw = RawConnection(inbound: inbound, outbound: outbound, splitWrites: splitWrites)
                                try await serve(&raw)
                            }
                        }
                    }
                }
            }
        }
        // Stopped by closing the listening socket, not by cancelling its loop: NIO traps on
        // accepted connections that a cancelled loop drops (apple/swift-nio#2813).
        do {
            let result = try await body(port)
            server.channel.close(promise: nil)
            try await group.waitForAll()
            return result
        } catch {
            server.channel.close(promise: nil)
            group.cancelAll()
            throw error
        }
    }
}
