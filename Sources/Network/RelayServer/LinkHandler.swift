internal import Relay
internal import Sync
internal import DCGKAEncoding
internal import DCGKACrypto
internal import Link
internal import LinkIO
internal import Logging
internal import HummingbirdWebSocket
internal import Metrics
internal import Synchronization

/// One WebSocket connection at the relay: cheap limits first (connections per address), then the
/// Noise handshake (§12) within its time limit, then the identity's limits, then the sync
/// session with the relay's rules (``RelayConnection``). A writer task drains the connection's
/// ``Outbox``; a peer that stops reading is cut off, and an idle one is closed.
struct LinkHandler {
    let identity: IdentityKey
    let environment: ServerEnvironment
    let state: ServerState
    let logger: Logger
    let clock: @Sendable () -> Double
    let remote: String

    func run(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async {
        let limits = environment.limits
        guard let connectionID = state.open(address: remote) else {
            Self.refused(.tooManyConnections)
            try? await outbound.close(.policyViolation, reason: "too many connections")
            return
        }
        Gauge(label: "dcgka_relay_connections").record(state.connectionCount)
        defer {
            state.close(address: remote)
            Gauge(label: "dcgka_relay_connections").record(state.connectionCount)
        }
        var iterator = inbound.messages(maxSize: WebSocketLink.maximumWebSocketFrame).makeAsyncIterator()
        // The handshake must finish in time; closing the socket ends the read it waits in.
        let watchdog = Task {
            try await Task.sleep(for: .seconds(limits.handshakeSeconds))
            try? await outbound.close(.policyViolation, reason: "handshake timeout")
        }
        let link: WebSocketLink
        do {
            var random = SystemRandomNumberGenerator()
            let handshake = try LinkHandshake.responder(identity: identity, random: &random)
            link = try await WebSocketLink.establish(handshake, inbound: &iterator, outbound: outbound, maximumFrameBytes: limits.maximumFrameBytes)
            watchdog.cancel()
        } catch {
            watchdog.cancel()
            Counter(label: "dcgka_relay_handshake_failures_total").increment()
            logger.debug("handshake failed", metadata: ["remote": "\(remote)", "error": "\(error)"])
            try? await outbound.close(.policyViolation, reason: nil)
            return
        }
        let peer = link.peer
        let isNew = !((try? await environment.store.noteIdentity(peer, now: UInt64(max(0, clock())))) ?? true)
        if let refusal = state.open(identity: peer, isNew: isNew, now: clock()) {
            Self.refused(refusal)
            await link.close(refusal.code, refusal.description)
            return
        }
        defer { state.close(identity: peer) }
        logger.debug("link up", metadata: ["peer": "\(RelayAddress.encode(peer))", "connection": "\(connectionID)"])
        let outbox = Outbox(limit: limits.pendingOutboundBytesPerConnection)
        var connection = RelayConnection(relay: identity.id, peer: peer, environment: environment, now: clock())
        for output in connection.start() { if case .send(let message) = output { outbox.enqueue(message) } }
        let lastHeard = LastHeard(clock())
        let hub = state.hub
        let clock = clock
        let logger = logger

        await withTaskGroup(of: Void.self) { group in
            // The writer: seals and sends what the outbox holds, in order.
            group.addTask {
                while let frames = await outbox.next() {
                    do { try await link.write(frames: frames) } catch { break }
                    let bytes = frames.reduce(0) { $0 + $1.count }
                    outbox.sent(bytes)
                    Counter(label: "dcgka_relay_bytes_out_total").increment(by: bytes)
                }
                if outbox.overflowed {
                    Self.refused(.slowReader)
                    logger.info("slow reader cut off", metadata: ["peer": "\(RelayAddress.encode(peer))"])
                }
                try? await outbound.close(.normalClosure, reason: nil)
            }
            // The idle watchdog.
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(min(5, limits.idleSeconds)))
                    if clock() - lastHeard.get() > limits.idleSeconds {
                        Self.refused(.idle)
                        outbox.enqueue(.error(RelayRefusal.idle.code, RelayRefusal.idle.description))
                        outbox.finish()
                        return
                    }
                }
            }
            // The reader: everything the peer sends, in order.
            reading: while true {
                let message: WebSocketMessage?
                do { message = try await iterator.next() } catch { break }
                guard let message else { break }
                lastHeard.set(clock())
                let messages: [SyncMessage]
                do {
                    messages = try link.receive(message)
                } catch {
                    let refusal: RelayRefusal
                    if case .frame(.frameTooLarge) = error as? WebSocketLinkError { refusal = .frameTooLarge } else { refusal = .malformedFrame("\(error)") }
                    Self.refused(refusal)
                    outbox.enqueue(.error(refusal.code, refusal.description))
                    break reading
                }
                for received in messages {
                    let outputs: [RelayConnection.Output]
                    do {
                        outputs = try await connection.receive(received, now: clock())
                    } catch {
                        logger.error("store failed", metadata: ["error": "\(error)"])
                        outbox.enqueue(.error(.internal, "the relay could not store or read; retry later"))
                        break reading
                    }
                    for output in outputs {
                        switch output {
                        case .send(let message):
                            outbox.enqueue(message)
                        case .subscribe(let group):
                            await hub.subscribe(group, connection: connectionID, outbox: outbox)
                        case .published(let group, let wires):
                            Counter(label: "dcgka_relay_envelopes_in_total").increment(by: wires.count)
                            await hub.publish(group, wires, except: connectionID)
                        case .close(let refusal):
                            Self.refused(refusal)
                            outbox.enqueue(.error(refusal.code, refusal.description))
                            break reading
                        case .closed:
                            break reading
                        }
                    }
                }
            }
            outbox.finish()
            await hub.remove(connection: connectionID)
            group.cancelAll()
        }
        logger.debug("link down", metadata: ["peer": "\(RelayAddress.encode(peer))", "connection": "\(connectionID)"])
    }

    static func refused(_ refusal: RelayRefusal) {
        Counter(label: "dcgka_relay_refusals_total", dimensions: [("reason", refusal.reason)]).increment()
    }
}

/// When the peer last said something (for the idle watchdog).
final class LastHeard: Sendable {
    private let time: Mutex<Double>
    init(_ now: Double) { time = Mutex(now) }
    func get() -> Double { time.withLock { $0 } }
    func set(_ now: Double) { time.withLock { $0 = now } }
}
