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
    /// Closes the connection's socket at once (no close handshake: the peer may not be reading).
    let closeConnection: @Sendable () -> Void

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
        let closeConnection = closeConnection
        // A peer too far behind is cut off at once: its socket is closed, since a writer
        // waiting on a peer that does not read would wait forever.
        let outbox = Outbox(limit: limits.pendingOutboundBytesPerConnection) { [logger] in
            Self.refused(.slowReader)
            logger.info("slow reader cut off", metadata: ["peer": "\(RelayAddress.encode(peer))"])
            closeConnection()
        }
        var starting = RelayConnection(relay: identity.id, peer: peer, environment: environment, now: clock())
        for output in starting.start() { if case .send(let message) = output { outbox.enqueue(message) } }
        let connection = starting
        let lastHeard = LastHeard(clock())
        let hub = state.hub
        await hub.register(connectionID, peer: peer, outbox: outbox)
        let clock = clock
        let logger = logger

        // The idle watchdog. While something is pending the peer must be reading it (the reader
        // may be waiting for room meanwhile): one that takes nothing for as long is a slow reader.
        let idleWatchdog = Task {
            var sent = outbox.sentBytes
            var progressed = clock()
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(min(5, limits.idleSeconds)))
                guard !Task.isCancelled else { return }
                let now = clock()
                if outbox.sentBytes != sent || outbox.pendingBytes == 0 {
                    sent = outbox.sentBytes
                    progressed = now
                } else if now - progressed > limits.idleSeconds {
                    outbox.overflow()
                    return
                }
                if outbox.pendingBytes == 0, now - lastHeard.get() > limits.idleSeconds {
                    Self.refused(.idle)
                    outbox.enqueue(.error(RelayRefusal.idle.code, RelayRefusal.idle.description))
                    outbox.finish()
                    return
                }
            }
        }
        await withTaskGroup(of: Void.self) { group in
            // The writer: seals and sends what the outbox holds, in order.
            group.addTask {
                while let frames = await outbox.next() {
                    do { try await link.write(frames: frames) } catch { break }
                    let bytes = frames.reduce(0) { $0 + $1.count }
                    outbox.sent(bytes)
                    Counter(label: "dcgka_relay_bytes_out_total").increment(by: bytes)
                }
                // Nothing more can be sent (the socket closed, or the relay shuts down): an answer
                // waiting for room gives up instead of waiting for a writer that is gone.
                outbox.finish()
                try? await outbound.close(.normalClosure, reason: nil)
            }
            // The processor: takes whatever arrived since its last turn, merges runs of one
            // group's envelopes into one admission and one commit (so a busy link is not held to
            // one commit per message), and handles it all in order.
            let inbox = Inbox(capacity: 256, bytes: limits.maximumFrameBytes)
            group.addTask { [connection] in
                var connection = connection
                processing: while let items = await inbox.takeAll() {
                    for item in Inbox.coalesce(items) {
                        let received: SyncMessage
                        switch item {
                        case .refused(let refusal):
                            Self.refused(refusal)
                            outbox.enqueue(.error(refusal.code, refusal.description))
                            break processing
                        case .message(let message):
                            received = message
                        }
                        let outputs: [RelayConnection.Output]
                        do {
                            outputs = try await connection.receive(received, now: clock())
                        } catch {
                            logger.error("store failed", metadata: ["error": "\(error)"])
                            outbox.enqueue(.error(.internal, "the relay could not store or read; retry later"))
                            break processing
                        }
                        for output in outputs {
                            switch output {
                            case .send(let message):
                                // The peer's own answers wait for room: nothing more is taken from
                                // a peer that is behind.
                                guard await outbox.enqueueWhenRoom(message) else { break processing }
                                // The session's own `error` (a first message that is not hello, a
                                // second hello, an unsupported version): typed, then the link closes.
                                if case .error = message { break processing }
                            case .subscribe(let group):
                                await hub.subscribe(group, connection: connectionID, outbox: outbox)
                            case .published(let group, let wires):
                                Counter(label: "dcgka_relay_envelopes_in_total").increment(by: wires.count)
                                await hub.publish(group, wires, except: connectionID)
                            case .named(let group, let members):
                                await hub.invite(group, participants: members, except: connectionID)
                            case .close(let refusal):
                                Self.refused(refusal)
                                outbox.enqueue(.error(refusal.code, refusal.description))
                                break processing
                            case .closed:
                                break processing
                            }
                        }
                    }
                }
                // Ended by the relay (a refusal) rather than by the peer: the writer sends the typed
                // error and closes; a peer that does not take it is closed on.
                if !inbox.isFinished {
                    Task {
                        try await Task.sleep(for: .seconds(5))
                        closeConnection()
                    }
                }
                inbox.stop()
                outbox.finish()
            }
            // The reader: everything the peer sends, in order, into the inbox (which holds a
            // bounded number of messages: a peer that sends faster than the relay stores waits).
            reading: while true {
                let message: WebSocketMessage?
                do { message = try await iterator.next() } catch { break }
                guard let message else { break }
                lastHeard.set(clock())
                do {
                    let messages = try link.receive(message)
                    guard await inbox.put(messages.map { .message($0) }) else { break reading }
                } catch {
                    let refusal: RelayRefusal
                    if case .frame(.frameTooLarge) = error as? WebSocketLinkError { refusal = .frameTooLarge } else { refusal = .malformedFrame("\(error)") }
                    _ = await inbox.put([.refused(refusal)])
                    break reading
                }
            }
            // The processor finishes what was read (and so the outbox) before the link goes down.
            inbox.finish()
            await inbox.drained()
            outbox.finish()
            await hub.remove(connection: connectionID)
            idleWatchdog.cancel()
            // The writer sends what is queued (a typed error last), then closes; a peer that
            // does not take it is closed on.
            let linger = Task {
                try await Task.sleep(for: .seconds(5))
                closeConnection()
            }
            await group.waitForAll()
            linger.cancel()
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

/// What the reader hands the processor: messages in order, or why the stream broke.
final class Inbox: Sendable {
    enum Item: Sendable {
        case message(SyncMessage)
        case refused(RelayRefusal)
    }

    struct State {
        var items: [Item] = []
        var finished = false
        var taker: CheckedContinuation<[Item]?, Never>?
        var putters: [CheckedContinuation<Void, Never>] = []
        /// The processor saw the end (takeAll returned nil).
        var processorDone = false
        /// Envelope bytes the queued messages carry.
        var bytes = 0
    }

    let capacity: Int
    /// Bytes of envelopes the inbox holds at most (one batch more may be with the processor): a
    /// peer that writes while the relay cannot answer it (it does not read) is not read further.
    let capacityBytes: Int
    private let state = Mutex(State())

    init(capacity: Int, bytes: Int = .max) {
        self.capacity = capacity
        capacityBytes = bytes
    }

    /// About what a message holds in memory: its envelopes' bytes.
    static func size(of items: [Item]) -> Int {
        items.reduce(0) { total, item in
            guard case .message(let message) = item else { return total + 64 }
            switch message {
            case .envelopes(_, let wires), .push(_, let wires): return total + 64 + wires.reduce(0) { $0 + $1.count }
            case .evidence(_, let first, let second): return total + 64 + first.count + second.count
            default: return total + 64
            }
        }
    }

    /// Appends, waiting while the inbox is full; false once it is finished.
    func put(_ items: [Item]) async -> Bool {
        while true {
            enum Step { case done(Bool), wait }
            let (step, taker, batch) = state.withLock { state -> (Step, CheckedContinuation<[Item]?, Never>?, [Item]) in
                if state.finished { return (.done(false), nil, []) }
                if state.items.count < capacity, state.bytes < capacityBytes {
                    state.items += items
                    state.bytes += Self.size(of: items)
                    if let taker = state.taker {
                        state.taker = nil
                        let batch = state.items
                        state.items = []
                        state.bytes = 0
                        return (.done(true), taker, batch)
                    }
                    return (.done(true), nil, [])
                }
                return (.wait, nil, [])
            }
            if let taker { wakePutters(); taker.resume(returning: batch) }
            switch step {
            case .done(let accepted): return accepted
            case .wait:
                await withCheckedContinuation { continuation in
                    let now = state.withLock { state -> Bool in
                        if state.finished || (state.items.count < capacity && state.bytes < capacityBytes) { return true }
                        state.putters.append(continuation)
                        return false
                    }
                    if now { continuation.resume() }
                }
            }
        }
    }

    /// Everything queued, waiting for something; nil once finished and drained.
    func takeAll() async -> [Item]? {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> [Item]?? in
                if !state.items.isEmpty {
                    let batch = state.items
                    state.items = []
                    state.bytes = 0
                    return .some(batch)
                }
                if state.finished { return .some(nil) }
                state.taker = continuation
                return .none
            }
            if let ready {
                wakePutters()
                continuation.resume(returning: ready)
            }
        }
    }

    /// Waits until the processor stopped.
    func drained() async {
        while !state.withLock({ $0.processorDone }) {
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    var isFinished: Bool { state.withLock { $0.finished } }

    /// The processor stopped: nothing more is taken.
    func stop() {
        state.withLock { $0.processorDone = true }
        finish()
    }

    func finish() {
        let taker = state.withLock { state -> CheckedContinuation<[Item]?, Never>? in
            state.finished = true
            let taker = state.taker
            state.taker = nil
            return taker
        }
        taker?.resume(returning: nil)
        wakePutters()
    }

    private func wakePutters() {
        let putters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            defer { state.putters = [] }
            return state.putters
        }
        for putter in putters { putter.resume() }
    }

    /// Merges adjacent `push`/`envelopes` messages of one group into one (the relay admits and
    /// commits them together; its acknowledgment then names them all), up to 1 MiB and 4,096
    /// envelopes, so that what is pushed on to subscribers and the acknowledgment stay far below
    /// the frame limit.
    static func coalesce(_ items: [Item]) -> [Item] {
        var out: [Item] = []
        var bytes = 0
        for item in items {
            if case .message(let message) = item, let (group, wires) = deliverable(message),
               case .message(let previous)? = out.last, let (lastGroup, lastWires) = deliverable(previous), lastGroup == group,
               lastWires.count + wires.count <= 4_096, bytes + wires.reduce(0, { $0 + $1.count }) <= 1 << 20 {
                out[out.count - 1] = .message(.push(group, lastWires + wires))
                bytes += wires.reduce(0) { $0 + $1.count }
            } else {
                out.append(item)
                if case .message(let message) = item, let (_, wires) = deliverable(message) {
                    bytes = wires.reduce(0) { $0 + $1.count }
                }
            }
        }
        return out
    }

    static func deliverable(_ message: SyncMessage) -> (GroupID, [[UInt8]])? {
        switch message {
        case .push(let group, let wires), .envelopes(let group, let wires): (group, wires)
        default: nil
        }
    }
}
