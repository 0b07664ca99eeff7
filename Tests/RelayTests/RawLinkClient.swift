import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif
import DCGKAEncoding
import DCGKACrypto
import CausalBroadcast
import Device
import DeviceStorage
import Link
import LinkIO
import Logging
import NIOCore
import RelayClient
import Sync
import WSClient
import DCGKATestSupport

// Test support for the relay's rules and abuse tests (NETWORK.md §11–§13): a raw WebSocket client
// that does the link handshake itself and then sends whatever a test wants (sync messages, bytes
// sealed in a valid Noise transport message, raw WebSocket frames), a launcher for a real
// `dcgka relay serve` process, an honest pair of devices that syncs through the relay while a
// test misbehaves, and envelope forgery helpers.

// MARK: - Small utilities

/// A value guarded by a lock, for state shared between a connection's task and the test.
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func withLock<T>(_ body: (inout Value) throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
    var current: Value { withLock { $0 } }
}

/// Polls `check` until it gives a value or `timeout` passes.
func poll<T>(timeout: Duration, every interval: Duration = .milliseconds(10), _ check: () throws -> T?) async rethrows -> T? {
    let deadline = ContinuousClock.now + timeout
    while true {
        if let value = try check() { return value }
        if ContinuousClock.now >= deadline { return nil }
        try? await Task.sleep(for: interval)
    }
}

/// Raises the soft limit of open files (the relay process inherits it).
func raiseOpenFileLimit(to wanted: UInt64) -> UInt64 {
    #if canImport(Glibc)
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
    if limit.rlim_cur < wanted {
        limit.rlim_cur = min(rlim_t(wanted), limit.rlim_max)
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        _ = getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }
    return UInt64(limit.rlim_cur)
    #else
    return wanted
    #endif
}

let quietLogger: Logger = {
    var logger = Logger(label: "dcgka.relay-tests")
    logger.logLevel = .critical
    return logger
}()

// MARK: - The raw client

/// How a raw connection ended or what it received last: the typed `error(code, text)` of §11.1,
/// or the connection closed without one.
enum RawOutcome: Equatable, CustomStringConvertible {
    case error(SyncErrorCode, String)
    case closed
    case timedOut

    var code: SyncErrorCode? { if case .error(let code, _) = self { code } else { nil } }

    var description: String {
        switch self {
        case .error(let code, let text): "error(\(code), \(text))"
        case .closed: "closed"
        case .timedOut: "timed out"
        }
    }
}

/// One WebSocket connection to a relay's `/link`, driven by a test. With an identity it runs the
/// initiator's side of the link handshake (§12) through ``WebSocketLink/establish``; without one
/// it stays a bare WebSocket. A background loop reads what the relay sends (unless `reading` is
/// false: then nothing is read from the socket until ``resumeReading()``, a slow reader).
final class RawLinkClient: Sendable {
    enum Event: Sendable {
        case messages([SyncMessage])
        /// A WebSocket message that did not open or decode as sync frames.
        case undecodable(String)
        case binary(Int)
        case text(String)
        case closed
        case failed(String)
    }

    struct Connected: Sendable {
        let outbound: WebSocketOutboundWriter
        let link: WebSocketLink?
    }

    let outbound: WebSocketOutboundWriter
    let link: WebSocketLink?
    let identity: IdentityKey?
    private let events: Locked<[Event]>
    private let bytesRead: Locked<Int>
    private let stop: Locked<Bool>
    private let paused: Locked<Bool>
    private let finished: Locked<Bool>
    private let task: Task<Void, Never>
    private let nonce = Locked<UInt64>(0)

    private init(
        connected: Connected, identity: IdentityKey?, events: Locked<[Event]>, bytesRead: Locked<Int>, stop: Locked<Bool>,
        paused: Locked<Bool>, finished: Locked<Bool>, task: Task<Void, Never>
    ) {
        outbound = connected.outbound
        link = connected.link
        self.identity = identity
        self.events = events
        self.bytesRead = bytesRead
        self.stop = stop
        self.paused = paused
        self.finished = finished
        self.task = task
    }

    /// Connects to `ws://127.0.0.1:PORT/link`; with `identity`, completes the handshake with the
    /// relay `relay` first. Throws what the connection or the handshake threw.
    static func connect(
        port: UInt16, relay: MemberID, identity: IdentityKey?, reading: Bool = true, timeout: Duration = .seconds(30)
    ) async throws -> RawLinkClient {
        let events = Locked<[Event]>([])
        let bytesRead = Locked(0)
        let stop = Locked(false)
        let paused = Locked(!reading)
        let finished = Locked(false)
        let ready = Locked<Result<Connected, any Error>?>(nil)
        let task = Task {
            do {
                try await WebSocketClient.connect(
                    url: "ws://127.0.0.1:\(port)/link",
                    configuration: .init(maxFrameSize: 1 << 20),
                    logger: quietLogger
                ) { inbound, outbound, _ in
                    var iterator = inbound.messages(maxSize: 1 << 20).makeAsyncIterator()
                    var link: WebSocketLink?
                    if let identity {
                        do {
                            var random = SystemRandomNumberGenerator()
                            let handshake = try LinkHandshake.initiator(identity: identity, expectedPeer: relay, random: &random)
                            link = try await WebSocketLink.establish(handshake, inbound: &iterator, outbound: outbound)
                        } catch {
                            ready.withLock { $0 = .failure(error) }
                            return
                        }
                    }
                    ready.withLock { $0 = .success(Connected(outbound: outbound, link: link)) }
                    // A paused reader reads nothing: the socket's buffers fill and the relay's
                    // writes stop (NIO reads no more once its small inbound buffer is full).
                    while paused.current, !stop.current { try? await Task.sleep(for: .milliseconds(20)) }
                    while !stop.current {
                        let message: WebSocketMessage?
                        do { message = try await iterator.next() } catch {
                            events.withLock { $0.append(.failed("\(error)")) }
                            return
                        }
                        guard let message else {
                            events.withLock { $0.append(.closed) }
                            return
                        }
                        switch message {
                        case .binary(let buffer):
                            bytesRead.withLock { $0 += buffer.readableBytes }
                            if let link {
                                let event: Event
                                do { event = .messages(try link.receive(message)) } catch { event = .undecodable("\(error)") }
                                events.withLock { $0.append(event) }
                            } else {
                                events.withLock { $0.append(.binary(buffer.readableBytes)) }
                            }
                        case .text(let text):
                            events.withLock { $0.append(.text(text)) }
                        }
                    }
                }
            } catch {
                ready.withLock { if case .none = $0 { $0 = .failure(error) } }
                events.withLock { $0.append(.failed("\(error)")) }
            }
            ready.withLock { if case .none = $0 { $0 = .failure(RawClientError.closedBeforeReady) } }
            events.withLock { $0.append(.closed) }
            finished.withLock { $0 = true }
        }
        guard let result = await poll(timeout: timeout, { ready.current }) else {
            task.cancel()
            throw RawClientError.timedOut
        }
        let connected = try result.get()
        return RawLinkClient(
            connected: connected, identity: identity, events: events, bytesRead: bytesRead, stop: stop, paused: paused,
            finished: finished, task: task)
    }

    // MARK: Sending

    /// Sync messages, framed and sealed (§11 inside §12).
    func send(_ messages: [SyncMessage]) async throws {
        guard let link else { throw RawClientError.noLink }
        try await link.send(messages)
    }

    /// The `hello` of this client's identity.
    func hello(_ groups: [GroupID] = []) async throws {
        guard let identity else { throw RawClientError.noLink }
        try await send([.hello(Hello(holder: identity.id, groups: groups))])
    }

    /// Arbitrary bytes as the sealed stream: each element is taken as already framed, so garbage
    /// arrives inside a valid Noise transport message.
    func sendSealed(_ plaintext: [[UInt8]]) async throws {
        guard let link else { throw RawClientError.noLink }
        try await link.write(frames: plaintext)
    }

    /// One raw binary WebSocket frame (a Noise message or anything else).
    func sendBinary(_ bytes: [UInt8]) async throws {
        try await outbound.write(.binary(ByteBuffer(bytes: bytes)))
    }

    func sendText(_ text: String) async throws {
        try await outbound.write(.text(text))
    }

    // MARK: Receiving

    var received: [Event] { events.current }
    var messages: [SyncMessage] {
        events.current.flatMap { event -> [SyncMessage] in if case .messages(let m) = event { m } else { [] } }
    }
    var totalBytesRead: Int { bytesRead.current }
    var isClosed: Bool {
        events.current.contains { event in
            switch event {
            case .closed, .failed: true
            default: false
            }
        }
    }

    /// Waits for the relay's `error(code, text)` or the end of the connection, whichever comes first.
    func outcome(within timeout: Duration = .seconds(30)) async -> RawOutcome {
        await poll(timeout: timeout) { () -> RawOutcome? in
            for event in events.current {
                switch event {
                case .messages(let messages):
                    for message in messages { if case .error(let code, let text) = message { return .error(code, text) } }
                case .closed, .failed:
                    return .closed
                default:
                    break
                }
            }
            return nil
        } ?? .timedOut
    }

    /// Waits until the connection is closed.
    func closed(within timeout: Duration = .seconds(30)) async -> Bool {
        await poll(timeout: timeout) { isClosed ? true : nil } ?? false
    }

    /// Waits for a message the predicate picks.
    func message(within timeout: Duration = .seconds(30), _ predicate: @escaping (SyncMessage) -> Bool) async -> SyncMessage? {
        await poll(timeout: timeout) { messages.first(where: predicate) }
    }

    /// `ping(n)` answered by `pong(n)`: the relay handled everything sent before and still serves this link.
    func ping(within timeout: Duration = .seconds(30)) async -> Bool {
        let n = nonce.withLock { $0 += 1; return $0 + 1_000_000 }
        do { try await send([.ping(n)]) } catch { return false }
        return await message(within: timeout) { $0 == .pong(n) } != nil
    }

    /// Starts reading a paused connection.
    func resumeReading() { paused.withLock { $0 = false } }

    /// Ends the connection: a close frame, then the task is stopped.
    func close() async {
        stop.withLock { $0 = true }
        paused.withLock { $0 = false }
        try? await outbound.close(.normalClosure, reason: nil)
        if await poll(timeout: .seconds(5), { finished.current ? true : nil }) == nil { task.cancel() }
    }
}

enum RawClientError: Error {
    case timedOut
    case noLink
    case closedBeforeReady
}

/// A bare WebSocket to `/link` handed to `body` (for a handshake driven by hand), closed after.
func withRawSocket<T: Sendable>(
    port: UInt16, timeout: Duration = .seconds(30),
    _ body: @escaping @Sendable (inout WebSocketInboundMessageStream.AsyncIterator, WebSocketOutboundWriter) async throws -> T
) async throws -> T {
    let result = Locked<Result<T, any Error>?>(nil)
    try await withThrowingTaskGroup(of: Bool.self) { group in
        group.addTask {
            try await WebSocketClient.connect(
                url: "ws://127.0.0.1:\(port)/link", configuration: .init(maxFrameSize: 1 << 20), logger: quietLogger
            ) { inbound, outbound, _ in
                var iterator = inbound.messages(maxSize: 1 << 20).makeAsyncIterator()
                let outcome: Result<T, any Error>
                do { outcome = .success(try await body(&iterator, outbound)) } catch { outcome = .failure(error) }
                result.withLock { $0 = outcome }
                try? await outbound.close(.normalClosure, reason: nil)
            }
            return true
        }
        group.addTask {
            try await Task.sleep(for: timeout)
            return false
        }
        let finished = try await group.next() ?? false
        group.cancelAll()
        if !finished { throw RawClientError.timedOut }
    }
    guard let outcome = result.current else { throw RawClientError.closedBeforeReady }
    return try outcome.get()
}

// MARK: - A real relay process

/// The shared ``RelayProcess`` (DCGKATestSupport) in its own folder, with its address parsed
/// and what the abuse tests measure of it: resident memory and open files.
final class AbuseRelay: Sendable {
    let relay: RelayProcess
    let address: RelayAddress
    let directory: URL

    var port: UInt16 { address.port }
    var pid: Int32 { relay.pid }
    /// What the relay logged so far (standard error).
    var log: String { relay.logs }

    private init(relay: RelayProcess, address: RelayAddress, directory: URL) {
        self.relay = relay
        self.address = address
        self.directory = directory
    }

    /// Starts a relay with exactly these `relay serve` options and waits (at most `timeout`
    /// seconds) for its address.
    static func start(_ options: [String], timeout: Double = 60) async throws -> AbuseRelay {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dcgka-relay-abuse-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        do {
            let relay = try await blocking { try RelayProcess.start(data: directory.path, options: options, timeout: timeout) }
            guard let address = try? RelayAddress(parsing: relay.address) else {
                relay.crash()
                relay.cleanUp()
                throw RelayLaunchError(text: "the relay printed an address that does not parse: \(relay.address)")
            }
            return AbuseRelay(relay: relay, address: address, directory: directory)
        } catch {
            try? FileManager.default.removeItem(at: directory)
            throw error
        }
    }

    /// The relay's resident memory in KiB (`VmRSS` of /proc/PID/status).
    func residentKiB() -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ").dropFirst().first ?? "")
        }
        return nil
    }

    /// The relay's open file descriptors (its sockets among them).
    func openFiles() -> Int? {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd"))?.count
    }

    /// SIGTERM (graceful shutdown), SIGKILL if it is still running after `grace` seconds; the
    /// folder goes. Returns the exit status, nil if it had to be killed.
    @discardableResult
    func stop(grace: Double = 15) -> Int32? {
        let result = relay.stop(grace: grace)
        relay.cleanUp()
        try? FileManager.default.removeItem(at: directory)
        return result.signaled ? nil : result.status
    }

    /// SIGKILL at once (a failed test leaves nothing running).
    func killNow() {
        relay.crash()
        relay.cleanUp()
        try? FileManager.default.removeItem(at: directory)
    }
}

struct RelayLaunchError: Error, CustomStringConvertible {
    let text: String
    var description: String { text }
}

/// Runs `body` with a relay: SIGTERM afterwards, SIGKILL if `body` threw.
///
/// The honest clients of these tests run inside the test process, which shares two cores with every
/// other suite running at the same time; so unless a test is about the handshake's time limit, the
/// relay allows a generous one (a starved client that finishes its half of the handshake late
/// would otherwise see its link closed right after it, as the relay's timeout).
func withRelayProcess<T>(_ options: [String], _ body: (AbuseRelay) async throws -> T) async throws -> T {
    var options = options + ["--log-level", "debug"]
    if !options.contains("--handshake-seconds") { options += ["--handshake-seconds", "120"] }
    let relay = try await AbuseRelay.start(options)
    do {
        let value = try await body(relay)
        let status = relay.stop()
        if status != 0 {
            Issue.record("the relay did not shut down gracefully on SIGTERM (status \(status.map(String.init) ?? "killed")); its output: \(relay.log.suffix(2_000))")
        }
        return value
    } catch {
        relay.killNow()
        Issue.record("the relay's log when the test failed: \(relay.log.suffix(4_000))")
        throw error
    }
}

// MARK: - Honest devices

typealias TestDevice = Device<SystemRandomNumberGenerator>

/// A device on an in-memory store with the real clock.
func makeTestDevice(_ name: String) throws -> TestDevice {
    var device = TestDevice(
        store: try SQLiteDeviceStore(path: nil), clock: { UInt64(Date().timeIntervalSince1970) }, random: SystemRandomNumberGenerator())
    _ = try device.initialize(name: name)
    return device
}

/// Makes every device a contact of every other.
func introduce(_ devices: inout [TestDevice], names: [String]) throws {
    for index in devices.indices {
        let code = try devices[index].profile().contactCode
        for other in devices.indices where other != index { _ = try devices[other].addContact(code: code, name: names[index]) }
    }
}

/// Two honest members, Alice and Bob, in one group synced through the relay: what a test checks
/// still works while something else misbehaves at the same relay.
struct HonestPair: Sendable {
    let alice: TestDevice
    let bob: TestDevice
    let group: GroupID
    let address: RelayAddress

    static func make(at address: RelayAddress) async throws -> HonestPair {
        var devices = [try makeTestDevice("alice"), try makeTestDevice("bob")]
        try introduce(&devices, names: ["alice", "bob"])
        for index in devices.indices { try devices[index].addRelay(address) }
        let group = try devices[0].createGroup(title: "Honest", with: [try devices[1].me().id])
        let pair = HonestPair(alice: devices[0], bob: devices[1], group: group, address: address)
        _ = try await pair.sync(pair.alice)
        let report = try await pair.sync(pair.bob)
        guard report.joined == 1 else { throw HonestPairError(text: "Bob did not join through the relay: \(report)") }
        return pair
    }

    func sync(_ device: TestDevice) async throws -> SyncReport {
        let report = try await RelayClient(device: device, identity: try device.identityKey(), logger: quietLogger)
            .sync(with: address, timeout: .seconds(60))
        if let error = report.error { throw HonestPairError(text: "sync failed: \(error)") }
        return report
    }

    /// Alice sends `text` and syncs; Bob syncs and must read it. Throws otherwise.
    func roundTrip(_ text: String) async throws {
        var alice = alice
        try alice.send(text: text, to: group)
        _ = try await sync(alice)
        _ = try await sync(bob)
        let texts = try bob.history(of: group).filter { $0.kind == .message }.map(\.text)
        guard texts.contains(text) else { throw HonestPairError(text: "Bob does not see \"\(text)\"; he has \(texts)") }
    }

    /// Round trips, one after another, until `stop` says so (at least one); returns how many succeeded.
    func keepTalking(until stop: Locked<Bool>, label: String) async throws -> Int {
        var count = 0
        repeat {
            try await roundTrip("\(label) \(count)")
            count += 1
        } while !stop.current
        return count
    }
}

struct HonestPairError: Error, CustomStringConvertible {
    let text: String
    var description: String { text }
}

// MARK: - Envelopes made by hand

enum Forge {
    /// `count` application envelopes signed by `identity` for `group`, chained from `prev` at
    /// `seq` (the relay checks signatures and participants, not chains), payloads of
    /// `payloadBytes` random bytes.
    static func applications(
        identity: IdentityKey, group: GroupID, from seq: UInt64, prev: Bytes32?, count: Int, payloadBytes: Int = 32
    ) -> [Envelope] {
        var random = SystemRandomNumberGenerator()
        var previous = prev
        var envelopes: [Envelope] = []
        envelopes.reserveCapacity(count)
        for index in 0..<UInt64(count) {
            let position = seq + index
            let envelope = Envelope.sign(
                identity: identity, suite: .suite1, groupID: group, seq: position, prev: position > 1 ? (previous ?? .zero) : nil,
                kind: .application, acked: nil,
                application: ApplicationFields(epoch: 0, index: index, hour: ApplicationFields.hour(ofSeconds: 1_800_000_000)),
                payload: random.bytes(payloadBytes))
            envelopes.append(envelope)
            previous = envelope.hash
        }
        return envelopes
    }

    /// The same header and payload signed again by `identity` for `group` (another group, or
    /// another signer: the group ID then no longer binds the creator).
    static func resigned(_ envelope: Envelope, by identity: IdentityKey, group: GroupID, seq: UInt64? = nil, prev: Bytes32? = nil) -> Envelope {
        let position = seq ?? envelope.seq
        return Envelope.sign(
            identity: identity, suite: envelope.suite, groupID: group, seq: position, prev: position > 1 ? (prev ?? envelope.prev ?? .zero) : nil,
            kind: envelope.kind, acked: envelope.acked, application: envelope.application, payload: envelope.payload ?? [])
    }

    static func payloadPart(_ envelope: Envelope) -> Int {
        guard let payload = envelope.payload else { return 1 }
        var size = 1, value = UInt64(payload.count)
        while value >= 0x80 { value >>= 7; size += 1 }
        return 1 + size + payload.count
    }

    /// The wire form with one bit of the signature flipped.
    static func badSignature(_ envelope: Envelope) -> [UInt8] {
        var wire = envelope.wireBytes
        let signatureStart = wire.count - payloadPart(envelope) - Signature.byteCount
        wire[signatureStart + 7] ^= 0x01
        return wire
    }

    /// The wire form without its payload (presence byte 0), as a pruned envelope travels.
    static func withoutPayload(_ envelope: Envelope) -> [UInt8] {
        let wire = envelope.wireBytes
        return Array(wire[..<(wire.count - payloadPart(envelope))]) + [0]
    }
}

extension Array where Element == SyncMessage {
    /// Every envelope wire these messages carry for `group` (envelopes, push and evidence).
    func wires(of group: GroupID) -> [[UInt8]] {
        flatMap { message -> [[UInt8]] in
            switch message {
            case .envelopes(let g, let wires) where g == group, .push(let g, let wires) where g == group: wires
            case .evidence(let g, let first, let second) where g == group: [first, second].filter { !$0.isEmpty }
            default: []
            }
        }
    }
}
