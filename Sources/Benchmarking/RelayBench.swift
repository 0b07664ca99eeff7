public import Sync
public import DCGKAEncoding
internal import DCGKACrypto
internal import DCGKAGroup
internal import CausalBroadcast
internal import RelayClient
internal import LinkIO
internal import Logging
internal import Foundation
internal import Synchronization

/// `dcgka bench relay` (issue 10): durable ingest, accept-to-ack latency, fan-out, catch-up and
/// the memory of idle connections, against a running relay (the command starts one unless
/// given `--relay`). Clients are in this process; envelopes are real signed group envelopes,
/// made before timing starts.
public enum RelayBench {
    public struct Options: Sendable {
        public var ingestEnvelopes = 100_000
        public var writers = 4
        public var batch = 64
        public var pipeline = 8
        public var pacedRate = 1_000
        public var pacedSeconds = 3.0
        public var readers = 100
        public var fanoutMessages = 300
        public var fanoutRate = 100
        public var idleConnections = 1_000
        public init() {}
    }

    public struct Report: Sendable, Codable {
        public var store: String
        public var ingestEnvelopes = 0
        public var ingestEnvelopesPerS = 0.0
        /// Per pushed batch (`batch` envelopes), unpaced.
        public var ingestBatchAckP50Ms = 0.0
        public var ingestBatchAckP99Ms = 0.0
        /// Single envelopes at `paced_rate` per second.
        public var pacedRate = 0
        public var ackP50Ms = 0.0
        public var ackP99Ms = 0.0
        public var fanoutReaders = 0
        public var fanoutMessages = 0
        public var fanoutP50Ms = 0.0
        public var fanoutP99Ms = 0.0
        public var catchupEnvelopes = 0
        public var catchupEnvelopesPerS = 0.0
        /// The same pull, every envelope decoded and its signature checked by the client.
        public var catchupVerifiedEnvelopesPerS = 0.0
        public var idleConnections = 0
        public var idleConnectionBytes: Double?
        public var relayRssBytes: Int?
    }

    static let logger: Logger = {
        var logger = Logger(label: "dcgka.bench.relay")
        logger.logLevel = .critical
        return logger
    }()

    /// One writer's group: its identity, the group, and envelopes ready to push.
    struct Stream: Sendable {
        let identity: IdentityKey
        let group: GroupID
        let create: [UInt8]
        var wires: [[UInt8]]
        var hashes: [Bytes32]
    }

    /// A group of two (the writer and a member that never speaks), then `count` messages.
    static func makeStream(count: Int, seed: UInt64) throws -> Stream {
        var rng = SeededRandom(seed: seed)
        let now = UInt64(Date().timeIntervalSince1970)
        let identity = IdentityKey.generate(using: &rng)
        var prekeys = PrekeyStore()
        let bundle = prekeys.generate(identity: identity, notAfter: now + 86_400, using: &rng)
        let other = IdentityKey.generate(using: &rng)
        var otherPrekeys = PrekeyStore()
        let otherBundle = otherPrekeys.generate(identity: other, notAfter: now + 86_400, using: &rng)
        var (group, create) = try Group.create(
            identity: identity, ownBundle: bundle, members: [otherBundle], prekeys: prekeys, now: now, using: &rng)
        var wires: [[UInt8]] = []
        var hashes: [Bytes32] = []
        wires.reserveCapacity(count)
        let text = Array(repeating: UInt8(ascii: "m"), count: 100)
        for _ in 0..<count {
            let envelope = try group.send(text, now: now)
            wires.append(envelope.wireBytes)
            hashes.append(envelope.hash)
        }
        return Stream(identity: identity, group: group.groupID, create: create.wireBytes, wires: wires, hashes: hashes)
    }

    static func hello(_ id: MemberID, _ groups: [GroupID]) -> SyncMessage { .hello(Hello(holder: id, groups: groups)) }

    /// Pushes a stream with up to `pipeline` batches in flight; returns per-batch ack latencies (s).
    static func push(_ stream: Stream, to relay: RelayAddress, batch: Int, pipeline: Int) async throws -> [Double] {
        try await RelayLink.with(relay, identity: stream.identity, timeout: .seconds(600), logger: logger) { channel in
            let link = channel.link
            try await link.send([hello(stream.identity.id, [stream.group]), .push(stream.group, [stream.create])])
            var sentAt: [Bytes32: ContinuousClock.Instant] = [:]
            var latencies: [Double] = []
            var next = 0
            var inFlight = 0
            var acked = 0
            let clock = ContinuousClock()
            func sendBatch() async throws {
                let end = min(stream.wires.count, next + batch)
                sentAt[stream.hashes[next]] = clock.now
                try await link.send([.push(stream.group, Array(stream.wires[next..<end]))])
                next = end
                inFlight += 1
            }
            while inFlight < pipeline, next < stream.wires.count { try await sendBatch() }
            while acked < stream.wires.count + 1 {
                guard let messages = try await channel.receive() else { throw RelayClientError.link("closed during ingest") }
                for message in messages {
                    switch message {
                    case .ack(_, let hashes):
                        for hash in hashes {
                            if let start = sentAt.removeValue(forKey: hash) {
                                latencies.append(seconds(start.duration(to: clock.now)))
                                inFlight -= 1
                            }
                        }
                        acked += hashes.count
                        while inFlight < pipeline, next < stream.wires.count { try await sendBatch() }
                    case .error(let code, let text):
                        throw RelayClientError.refused(code, text)
                    default:
                        break
                    }
                }
            }
            return latencies
        }
    }

    static func seconds(_ duration: Duration) -> Double { BenchStatistics.seconds(duration) }
    static func percentile(_ values: [Double], _ p: Double) -> Double { BenchStatistics.percentile(values, p) }

    public static func run(
        relay: RelayAddress, store: String, options: Options, relayRSS: (@Sendable () -> Int?)?,
        progress: @Sendable (String) -> Void
    ) async throws -> Report {
        var report = Report(store: store)
        // Memory of idle connections, first, on a fresh relay (later phases leave freed pages
        // in the relay's heap that idle connections would reuse unseen).
        if options.idleConnections > 0 {
            progress("\(options.idleConnections) idle connections")
            report.idleConnections = options.idleConnections
            let before = relayRSS?()
            try await idle(options.idleConnections, relay: relay) {
                let after = relayRSS?()
                if let before, let after {
                    report.idleConnectionBytes = Double(after - before) / Double(options.idleConnections)
                    report.relayRssBytes = after
                }
            }
        }
        // Ingest: `writers` links, each its own group, batches pipelined.
        progress("making \(options.ingestEnvelopes) envelopes in \(options.writers) groups")
        let perWriter = max(1, options.ingestEnvelopes / options.writers)
        var streams: [Stream] = []
        for index in 0..<options.writers { streams.append(try makeStream(count: perWriter, seed: UInt64(100 + index))) }
        progress("ingest")
        let started = ContinuousClock.now
        let latencies = try await withThrowingTaskGroup(of: [Double].self) { group in
            for stream in streams { group.addTask { try await push(stream, to: relay, batch: options.batch, pipeline: options.pipeline) } }
            var all: [Double] = []
            for try await part in group { all += part }
            return all
        }
        let elapsed = seconds(started.duration(to: .now))
        report.ingestEnvelopes = perWriter * options.writers
        report.ingestEnvelopesPerS = Double(report.ingestEnvelopes) / elapsed
        report.ingestBatchAckP50Ms = percentile(latencies, 0.5) * 1000
        report.ingestBatchAckP99Ms = percentile(latencies, 0.99) * 1000

        // Paced: single envelopes at a fixed rate, accept-to-ack per envelope.
        progress("paced acks at \(options.pacedRate)/s")
        let pacedCount = Int(Double(options.pacedRate) * options.pacedSeconds)
        let paced = try makeStream(count: pacedCount, seed: 200)
        report.pacedRate = options.pacedRate
        let pacedLatencies = try await pacedPush(paced, to: relay, rate: options.pacedRate)
        report.ackP50Ms = percentile(pacedLatencies, 0.5) * 1000
        report.ackP99Ms = percentile(pacedLatencies, 0.99) * 1000

        // Fan-out: one writer, `readers` subscribers holding grants.
        progress("fan-out to \(options.readers) readers")
        let fanout = try makeStream(count: options.fanoutMessages, seed: 300)
        let fanLatencies = try await fanOut(fanout, to: relay, readers: options.readers, rate: options.fanoutRate)
        report.fanoutReaders = options.readers
        report.fanoutMessages = options.fanoutMessages
        report.fanoutP50Ms = percentile(fanLatencies, 0.5) * 1000
        report.fanoutP99Ms = percentile(fanLatencies, 0.99) * 1000

        // Catch-up: a fresh holder (grants from the writers) pulls every ingested envelope.
        progress("catch-up of \(report.ingestEnvelopes) envelopes")
        report.catchupEnvelopes = report.ingestEnvelopes + streams.count
        report.catchupEnvelopesPerS = try await catchUp(streams, from: relay, verify: false)
        report.catchupVerifiedEnvelopesPerS = try await catchUp(streams, from: relay, verify: true)

        return report
    }

    static func pacedPush(_ stream: Stream, to relay: RelayAddress, rate: Int) async throws -> [Double] {
        try await RelayLink.with(relay, identity: stream.identity, timeout: .seconds(600), logger: logger) { channel in
            let link = channel.link
            try await link.send([hello(stream.identity.id, [stream.group]), .push(stream.group, [stream.create])])
            let times = SentTimes()
            let clock = ContinuousClock()
            let start = clock.now
            let sender = Task {
                for (index, wire) in stream.wires.enumerated() {
                    try await clock.sleep(until: start.advanced(by: .seconds(Double(index) / Double(rate))))
                    times.set(stream.hashes[index], clock.now)
                    try await link.send([.push(stream.group, [wire])])
                }
            }
            defer { sender.cancel() }
            var latencies: [Double] = []
            while latencies.count < stream.wires.count {
                guard let messages = try await channel.receive() else { throw RelayClientError.link("closed during paced ingest") }
                let now = clock.now
                for case .ack(_, let hashes) in messages {
                    for hash in hashes { if let sent = times.take(hash) { latencies.append(seconds(sent.duration(to: now))) } }
                }
            }
            try await sender.value
            return latencies
        }
    }

    static func fanOut(_ stream: Stream, to relay: RelayAddress, readers: Int, rate: Int) async throws -> [Double] {
        let times = SentTimes()
        let clock = ContinuousClock()
        let notAfter = UInt64(Date().timeIntervalSince1970) + 3_600
        // The group must exist before anyone subscribes: the writer brings its create first.
        try await RelayLink.with(relay, identity: stream.identity, timeout: .seconds(60), logger: logger) { channel in
            try await channel.link.send([hello(stream.identity.id, [stream.group]), .push(stream.group, [stream.create]), .ping(1)])
            while let messages = try await channel.receive() { if messages.contains(.pong(1)) { return } }
        }
        let ready = Countdown(readers)
        let latencies = LatencyLog()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<readers {
                group.addTask {
                    var rng = SeededRandom(seed: 10_000 + UInt64(index))
                    let reader = IdentityKey.generate(using: &rng)
                    let grant = Grant(group: stream.group, holder: reader.id, notAfter: notAfter, granter: stream.identity)
                    try await RelayLink.with(relay, identity: reader, timeout: .seconds(600), logger: logger) { channel in
                        try await channel.link.send([hello(reader.id, []), .grant(grant), .subscribe(stream.group), .ping(1)])
                        var received = 0
                        while received < stream.wires.count {
                            guard let messages = try await channel.receive() else { throw RelayClientError.link("reader closed") }
                            let now = clock.now
                            for message in messages {
                                switch message {
                                case .pong(1): ready.done()
                                case .push(let group, let wires):
                                    for wire in wires {
                                        guard let hash = try? Envelope(wire: wire, groupID: group).hash, let sent = times.get(hash) else { continue }
                                        latencies.append(seconds(sent.duration(to: now)))
                                        received += 1
                                    }
                                default: break
                                }
                            }
                        }
                    }
                }
            }
            group.addTask {
                await ready.wait()
                try await RelayLink.with(relay, identity: stream.identity, timeout: .seconds(600), logger: logger) { channel in
                    let link = channel.link
                    try await link.send([hello(stream.identity.id, [])])
                    let start = clock.now
                    for (index, wire) in stream.wires.enumerated() {
                        try await clock.sleep(until: start.advanced(by: .seconds(Double(index) / Double(rate))))
                        times.set(stream.hashes[index], clock.now)
                        try await link.send([.push(stream.group, [wire])])
                    }
                    try await link.send([.ping(2)])
                    while let messages = try await channel.receive() { if messages.contains(.pong(2)) { return } }
                }
            }
            try await group.waitForAll()
        }
        return latencies.values
    }

    /// A fresh holder with grants pulls everything; returns envelopes per second.
    static func catchUp(_ streams: [Stream], from relay: RelayAddress, verify: Bool) async throws -> Double {
        var rng = SeededRandom(seed: verify ? 20_001 : 20_000)
        let holder = IdentityKey.generate(using: &rng)
        let notAfter = UInt64(Date().timeIntervalSince1970) + 3_600
        let expected = streams.reduce(0) { $0 + $1.wires.count + 1 }
        return try await RelayLink.with(relay, identity: holder, timeout: .seconds(1200), logger: logger) { channel in
            var messages: [SyncMessage] = [hello(holder.id, [])]
            for stream in streams {
                messages.append(.grant(Grant(group: stream.group, holder: holder.id, notAfter: notAfter, granter: stream.identity)))
            }
            messages += streams.map { .have($0.group, Frontier()) }
            let start = ContinuousClock.now
            try await channel.link.send(messages)
            var received = 0
            while received < expected {
                guard let batch = try await channel.receive() else { throw RelayClientError.link("closed during catch-up") }
                for case .envelopes(let group, let wires) in batch {
                    if verify {
                        for wire in wires {
                            guard let envelope = try? Envelope(wire: wire, groupID: group), envelope.hasValidSignature() else {
                                throw RelayClientError.link("a bad envelope in catch-up")
                            }
                        }
                    }
                    received += wires.count
                }
            }
            return Double(received) / seconds(start.duration(to: .now))
        }
    }

    /// Opens `count` authenticated links that say hello and then nothing, runs `measure`, closes them.
    static func idle(_ count: Int, relay: RelayAddress, measure: () async -> Void) async throws {
        let opened = Countdown(count)
        let release = Countdown(1)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<count {
                group.addTask {
                    var rng = SeededRandom(seed: 30_000 + UInt64(index))
                    let identity = IdentityKey.generate(using: &rng)
                    try await RelayLink.with(relay, identity: identity, timeout: nil, logger: logger) { channel in
                        try await channel.link.send([hello(identity.id, []), .ping(1)])
                        while let messages = try await channel.receive() { if messages.contains(.pong(1)) { break } }
                        opened.done()
                        await release.wait()
                    }
                }
            }
            await opened.wait()
            try await Task.sleep(for: .seconds(1))
            await measure()
            release.done()
            try await group.waitForAll()
        }
    }
}

/// Send times by envelope hash, shared between a sending task and a receiving one.
final class SentTimes: Sendable {
    private let times = Mutex<[Bytes32: ContinuousClock.Instant]>([:])
    func set(_ hash: Bytes32, _ time: ContinuousClock.Instant) { times.withLock { $0[hash] = time } }
    func get(_ hash: Bytes32) -> ContinuousClock.Instant? { times.withLock { $0[hash] } }
    func take(_ hash: Bytes32) -> ContinuousClock.Instant? { times.withLock { $0.removeValue(forKey: hash) } }
}

final class LatencyLog: Sendable {
    private let log = Mutex<[Double]>([])
    func append(_ value: Double) { log.withLock { $0.append(value) } }
    var values: [Double] { log.withLock { $0 } }
}

/// Waits until `done()` was called `count` times.
final class Countdown: Sendable {
    private struct State {
        var remaining: Int
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state: Mutex<State>
    init(_ count: Int) { state = Mutex(State(remaining: count)) }

    func done() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.remaining -= 1
            guard state.remaining <= 0 else { return [] }
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func wait() async {
        await withCheckedContinuation { continuation in
            let now = state.withLock { state -> Bool in
                if state.remaining <= 0 { return true }
                state.waiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }
}
