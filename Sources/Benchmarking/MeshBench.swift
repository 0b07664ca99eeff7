internal import Foundation
internal import DCGKAEncoding
internal import DCGKACrypto
internal import DCGKAGroup
internal import CausalBroadcast
internal import Device
internal import NetworkSimulation
internal import Sync
internal import RelayClient
internal import Logging
internal import Synchronization
#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// `dcgka bench mesh` (issue 11): direct links between devices (NETWORK.md §14.2, §14.3), with
/// real device engines on SQLite files in a temporary folder (a ``DeviceNetwork``) and real TCP
/// links on 127.0.0.1 (``PeerClient``), all in this process.
///
/// - *hops*: a chain D0—D1—D2—D3 of followed links (made anew at random moments, so that their
///   250 ms push ticks fall at independent phases); D0 sends, and the time until D1, D2 and D3
///   show the message in their history is taken;
/// - *traffic*: two devices sharing a group of `commonEnvelopes` envelopes, each with
///   `differingPerSide` envelopes the other lacks, make one sync pass through a byte-counting TCP
///   proxy; the bytes on the wire against the differing envelopes' bytes plus one `have` vector;
/// - *forwarding*: the process CPU time of a pass A→B against passes A→M and C→M (M receives and
///   passes on every envelope); the difference is what a middle device costs per envelope.
public enum MeshBench {
    public struct Options: Sendable {
        /// Messages sent through the chain (0 skips the hops).
        public var repetitions = 50
        /// Envelopes both devices of the traffic run hold (0 skips the traffic run).
        public var commonEnvelopes = 10_000
        /// Envelopes each of them has that the other lacks.
        public var differingPerSide = 5
        /// Envelopes a middle device forwards (0 skips the forwarding run).
        public var forwardEnvelopes = 2_000
        /// Trials of the forwarding run (each with fresh receivers).
        public var forwardTrials = 3
        /// How often the receiving devices' histories are read while a message travels.
        public var pollMilliseconds = 5
        /// The chain's links are made anew (at random phases) before every this many messages;
        /// 0 keeps the first links for the whole run.
        public var relinkEvery = 1
        public init() {}
    }

    public struct HopLatency: Sendable, Codable, Equatable {
        public var hops: Int
        public var samples: Int
        public var medianMs: Double
        public var p90Ms: Double
        public var p99Ms: Double
        public var minMs: Double
        public var maxMs: Double
        public var meanMs: Double
    }

    public struct Traffic: Sendable, Codable, Equatable {
        public var commonEnvelopes: Int
        /// Senders in the group's `have` vector.
        public var vectorSenders: Int
        public var differingEnvelopes: Int
        /// The differing envelopes' wire bytes.
        public var differingEnvelopeBytes: Int
        /// One framed `have` message of the group.
        public var vectorBytes: Int
        /// TCP payload bytes, from the connecting device to the listening one and back.
        public var bytesToListener: Int
        public var bytesToConnector: Int
        public var totalBytes: Int
        /// The three Noise handshake messages with their record headers.
        public var handshakeBytes: Int
        /// Transport records (each adds a 2-byte length and a 16-byte tag).
        public var transportRecords: Int
        /// The sync frames inside the records: total − handshake − 18 per transport record.
        public var syncFrameBytes: Int
        /// totalBytes / (differingEnvelopeBytes + vectorBytes); the target is at most 2.
        public var ratio: Double
        /// A second pass right after, nothing differing: what any pass costs.
        public var idlePassBytes: Int
        /// Sizes of frames every pass carries (each side sends one of each), for the breakdown:
        /// `hello`, my key bundle (`bundles`), the request for my contacts' bundles, and an `ack`
        /// of one side's differing envelopes.
        public var helloFrameBytes: Int
        public var bundlesFrameBytes: Int
        public var bundleRequestFrameBytes: Int
        public var ackFrameBytes: Int
        public var passSeconds: Double
        /// One read of the group's holdings (every hash it holds, what a `have` is made from and
        /// a received one is compared with), median of 5.
        public var holdingsReadSeconds: Double
        /// Envelopes the connecting device reported new to it (the listener's differing ones).
        public var newAtConnector: Int
    }

    public struct Forwarding: Sendable, Codable, Equatable {
        public var envelopes: Int
        public var trials: Int
        /// Medians over the trials. A→B: one pass (A serves, B receives and stores).
        public var directCPUSeconds: Double
        public var directWallSeconds: Double
        /// A→M, then C→M: M receives and stores every envelope, then serves it.
        public var chainCPUSeconds: Double
        public var chainWallSeconds: Double
        public var directMicrosecondsPerEnvelope: Double
        /// (chain − direct) / envelopes: what the middle device adds (median of the trials).
        public var forwardingMicrosecondsPerEnvelope: Double
        public var forwardingMicrosecondsPerTrial: [Double]
        /// A→K, then C→K, where K is not in the group and carries it on a grant from A (§14.3):
        /// K checks each envelope as a relay would and stores it, then serves it.
        public var carrierCPUSeconds: Double
        public var carrierWallSeconds: Double
        /// (carrier chain − direct) / envelopes: what carrying costs the carrier (median).
        public var carrierMicrosecondsPerEnvelope: Double
        public var carrierMicrosecondsPerTrial: [Double]
        /// Bytes the carrier's log holds for the group (wire bytes of what it carries).
        public var carriedBytes: Int
    }

    public struct Report: Sendable, Codable, Equatable {
        public var repetitions: Int
        /// A followed link pushes its log's growth on this tick (LinkPass.startFollowing).
        public var pushIntervalMs = 250
        public var pollIntervalMs: Int
        /// Messages per set of links (0: one set for the whole run).
        public var relinkEvery: Int
        public var hops: [HopLatency] = []
        public var traffic: Traffic?
        public var forwarding: Forwarding?
    }

    typealias MeshDevice = NetworkDevice

    static let logger: Logger = {
        var logger = Logger(label: "dcgka.bench.mesh")
        logger.logLevel = .critical
        return logger
    }()

    static let host = "127.0.0.1"

    public static func run(options: Options, folder: String, progress: @Sendable (String) -> Void = { _ in }) async throws -> Report {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        var report = Report(repetitions: options.repetitions, pollIntervalMs: options.pollMilliseconds, relinkEvery: options.relinkEvery)
        if options.repetitions > 0 {
            report.hops = try await hops(options: options, folder: (folder as NSString).appendingPathComponent("hops"), progress: progress)
        }
        if options.commonEnvelopes > 0 {
            report.traffic = try await traffic(options: options, folder: (folder as NSString).appendingPathComponent("traffic"), progress: progress)
        }
        if options.forwardEnvelopes > 0 {
            report.forwarding = try await forwarding(
                options: options, folder: (folder as NSString).appendingPathComponent("forwarding"), progress: progress)
        }
        return report
    }

    // MARK: - 1. Send to read across 1, 2 and 3 hops

    static func hops(options: Options, folder: String, progress: @Sendable (String) -> Void) async throws -> [HopLatency] {
        var devices = try makeDevices(["d0", "d1", "d2", "d3"], folder: folder)
        let ids = try devices.map { try $0.me().id }
        let group = try devices[0].createGroup(title: "mesh", with: Array(ids.dropFirst()))
        var listeners: [Task<Void, Never>] = []
        var links: [Task<Void, Never>] = []
        do {
            // D1 and D2 listen; D0 and D2 keep a link to D1, D3 one to D2.
            let (listener1, port1) = try await listen(devices[1])
            listeners.append(listener1)
            let (listener2, port2) = try await listen(devices[2])
            listeners.append(listener2)
            let chain = [(devices[0], port1), (devices[2], port1), (devices[3], port2)]
            links = try await link(chain)
            progress("chain D0—D1—D2—D3: waiting for the group to reach every device")
            for index in 1...3 {
                let device = devices[index]
                try await waitUntil("d\(index) to join", timeout: 60) { try device.groups().contains { $0.id == group && $0.isMember } }
            }
            // Warm-up both ways (the acknowledgments of the create settle meanwhile).
            try devices[0].send(text: "warm-up", to: group)
            let last = devices[3]
            try await waitUntil("the warm-up to reach d3", timeout: 30) { try texts(last, group).contains("warm-up") }
            try devices[3].send(text: "warm-up back", to: group)
            let first = devices[0]
            try await waitUntil("the warm-up to come back to d0", timeout: 30) { try texts(first, group).contains("warm-up back") }

            progress("\(options.repetitions) messages from D0, polling every \(options.pollMilliseconds) ms"
                     + (options.relinkEvery > 0 ? ", links made anew every \(options.relinkEvery)" : ""))
            var seen = [Int64](repeating: 0, count: 4)
            for index in 1...3 { seen[index] = try devices[index].history(of: group).last?.id ?? 0 }
            var samples: [[Double]] = [[], [], []]
            var random = SystemRandomNumberGenerator()
            let clock = ContinuousClock()
            for repetition in 0..<options.repetitions {
                if options.relinkEvery > 0, repetition > 0, repetition % options.relinkEvery == 0 {
                    await stop(links)
                    links = try await link(chain)
                }
                // A random phase against the links' push ticks.
                try await Task.sleep(for: .milliseconds(Int.random(in: 0..<250, using: &random)))
                let text = "probe \(repetition)"
                let start = clock.now
                try devices[0].send(text: text, to: group)
                // As `dcgka chat` does after a send: this process's links push at once.
                LogActivity.shared.changed()
                var arrived: [Int: Double] = [:]
                while arrived.count < 3 {
                    for index in 1...3 where arrived[index] == nil {
                        let lines = try devices[index].history(of: group, after: seen[index])
                        if let line = lines.last { seen[index] = line.id }
                        if lines.contains(where: { $0.kind == .message && $0.text == text }) {
                            arrived[index] = seconds(start.duration(to: clock.now))
                        }
                    }
                    if arrived.count == 3 { break }
                    guard start.duration(to: clock.now) < .seconds(30) else {
                        throw MeshBenchError("probe \(repetition) reached only hops \(arrived.keys.sorted()) in 30 s")
                    }
                    try await Task.sleep(for: .milliseconds(options.pollMilliseconds))
                }
                for index in 1...3 { samples[index - 1].append(arrived[index]! * 1000) }
            }
            await stop(links + listeners)
            return samples.enumerated().map { index, values in
                HopLatency(
                    hops: index + 1, samples: values.count, medianMs: percentile(values, 0.5), p90Ms: percentile(values, 0.9),
                    p99Ms: percentile(values, 0.99), minMs: values.min() ?? 0, maxMs: values.max() ?? 0,
                    meanMs: values.isEmpty ? 0 : values.reduce(0, +) / Double(values.count))
            }
        } catch {
            await stop(links + listeners)
            throw error
        }
    }

    /// Starts a followed link from each device to its port, each after a random delay under one
    /// push interval (so the links' push ticks fall at independent phases), and waits until every
    /// one finished its first pass.
    static func link(_ chain: [(MeshDevice, Int)]) async throws -> [Task<Void, Never>] {
        var random = SystemRandomNumberGenerator()
        var tasks: [Task<Void, Never>] = []
        var tallies: [Tally] = []
        for (device, port) in chain {
            let peer = try client(device)
            let tally = Tally()
            let delay = Int.random(in: 0..<250, using: &random)
            tallies.append(tally)
            tasks.append(Task {
                try? await Task.sleep(for: .milliseconds(delay))
                guard !Task.isCancelled else { return }
                await peer.followAll([(host: host, port: port)]) { _, error in if error == nil { _ = tally.increment() } }
            })
        }
        do {
            try await waitUntil("the links to come up", timeout: 30) { tallies.allSatisfy { $0.value > 0 } }
        } catch {
            await stop(tasks)
            throw error
        }
        return tasks
    }

    // MARK: - 2. Sync traffic when two holders of a large group meet

    static func traffic(options: Options, folder: String, progress: @Sendable (String) -> Void) async throws -> Traffic {
        var devices = try makeDevices(["x", "y"], folder: folder)
        progress("a group of \(options.commonEnvelopes) envelopes held by two devices")
        let (group, _) = try commonHistory(devices: &devices, envelopes: options.commonEnvelopes, imports: [0, 1])
        try exchangeOwn(&devices, group)
        guard try devices[0].holdings(of: group).chains == devices[1].holdings(of: group).chains else {
            throw MeshBenchError("the two devices do not hold the same envelopes before the differences")
        }
        let common = try holdingCount(devices[0], group)
        // The differences: each sends messages the other lacks.
        var differing: [[UInt8]] = []
        var perSide: [Int] = []
        for index in 0..<2 {
            let before = try devices[index].lastLogPosition(of: group)
            for number in 0..<options.differingPerSide {
                try devices[index].send(text: "only on \(index == 0 ? "x" : "y"): \(number)", to: group)
            }
            let new = try allWires(devices[index], group, after: before)
            perSide.append(new.count)
            differing += new
        }
        let differingBytes = differing.reduce(0) { $0 + $1.count }
        let vector = try devices[0].holdings(of: group).vector()
        let vectorBytes = SyncFraming.frame(.have(group, vector)).count
        let xID = try devices[0].me().id
        let helloBytes = SyncFraming.frame(.hello(Hello(holder: xID, groups: [group]))).count
        let bundlesBytes = SyncFraming.frame(.bundles([try devices[0].profile().bundle.wireBytes])).count
        let requestBytes = SyncFraming.frame(.bundleRequest(try devices[0].contacts().map(\.id))).count
        let yHashes = differing.suffix(perSide[1]).compactMap { try? Envelope(wire: $0, groupID: group).hash }
        let ackBytes = SyncFraming.frame(.ack(group, yHashes)).count
        var holdingsReads: [Double] = []
        for _ in 0..<5 {
            let started = ContinuousClock.now
            _ = try devices[0].holdings(of: group)
            holdingsReads.append(seconds(started.duration(to: .now)))
        }

        let (listener, port) = try await listen(devices[1])
        let proxy = try ByteCountingProxy(upstreamPort: port)
        do {
            let connector = PeerClient(device: devices[0], identity: try devices[0].identityKey(), logger: logger)
            let yID = try devices[1].me().id
            progress("one sync pass through a byte-counting proxy")
            let started = ContinuousClock.now
            let pass = try await connector.sync(host: host, port: proxy.port, expectedPeer: yID)
            let passSeconds = seconds(started.duration(to: .now))
            try await proxy.waitClosed()
            let (x, y) = (devices[0], devices[1])
            try await waitUntil("both devices to hold the same envelopes", timeout: 30) {
                try x.holdings(of: group).chains == y.holdings(of: group).chains
            }
            let counts = proxy.counts
            guard pass.new == perSide[1] else { throw MeshBenchError("the pass brought \(pass.new) new envelopes, not \(perSide[1])") }
            // The same pass again: nothing differs now.
            proxy.reset()
            let idle = try await connector.sync(host: host, port: proxy.port, expectedPeer: yID)
            try await proxy.waitClosed()
            let idleCounts = proxy.counts
            guard idle.new == 0 else { throw MeshBenchError("the second pass brought \(idle.new) new envelopes") }
            proxy.stop()
            await stop([listener])
            let total = counts.toUpstream + counts.toClient
            let handshake = counts.handshakeBytes
            return Traffic(
                commonEnvelopes: common, vectorSenders: vector.heads.count, differingEnvelopes: differing.count,
                differingEnvelopeBytes: differingBytes, vectorBytes: vectorBytes, bytesToListener: counts.toUpstream,
                bytesToConnector: counts.toClient, totalBytes: total, handshakeBytes: handshake,
                transportRecords: counts.records - 3, syncFrameBytes: total - handshake - 18 * (counts.records - 3),
                ratio: Double(total) / Double(differingBytes + vectorBytes),
                idlePassBytes: idleCounts.toUpstream + idleCounts.toClient, helloFrameBytes: helloBytes,
                bundlesFrameBytes: bundlesBytes, bundleRequestFrameBytes: requestBytes, ackFrameBytes: ackBytes, passSeconds: passSeconds,
                holdingsReadSeconds: percentile(holdingsReads, 0.5),
                newAtConnector: pass.new)
        } catch {
            proxy.stop()
            await stop([listener])
            throw error
        }
    }

    // MARK: - 3. The CPU cost of forwarding

    static func forwarding(options: Options, folder: String, progress: @Sendable (String) -> Void) async throws -> Forwarding {
        // a holds the envelopes. In each trial b gets them directly; m gets them from a and
        // passes them to c. Trials alternate which of the two runs first.
        let trials = max(1, options.forwardTrials)
        var names = ["a"]
        for trial in 0..<trials { names += ["m\(trial)", "b\(trial)", "c\(trial)"] }
        // Then, per trial, the member the carrier serves and the carrier, who is a contact of
        // everyone and not in the group.
        for trial in 0..<trials { names.append("d\(trial)") }
        for trial in 0..<trials { names.append("k\(trial)") }
        var devices = try makeDevices(names, folder: folder)
        progress("forwarding: \(options.forwardEnvelopes) envelopes, \(trials) trials")
        let memberCount = 1 + 4 * trials
        let (group, _) = try commonHistory(
            devices: &devices, envelopes: options.forwardEnvelopes + 1, imports: [0], members: Set(0..<memberCount))
        var carriers = Array(devices[memberCount...])
        devices = Array(devices[..<memberCount])
        try exchangeOwn(&devices, group)
        let served = Array(devices[(1 + 3 * trials)...])
        let a = devices[0]
        let target = try a.holdings(of: group).chains
        let sent = try holdingCount(a, group) - holdingCount(devices[1], group)
        let clock = ContinuousClock()

        /// Passes from each source in turn with a listening device; process CPU and wall seconds.
        func passes(_ sources: [MeshDevice], via listening: MeshDevice) async throws -> (cpu: Double, wall: Double) {
            let (listener, port) = try await listen(listening)
            do {
                let cpu = processCPUSeconds()
                let started = clock.now
                for source in sources {
                    _ = try await client(source).sync(host: host, port: port, expectedPeer: try listening.me().id, timeout: .seconds(600))
                    for holder in [source, listening] {
                        try await waitUntil("every envelope to arrive", timeout: 60) { try holder.holdings(of: group).chains == target }
                    }
                }
                let result = (processCPUSeconds() - cpu, seconds(started.duration(to: clock.now)))
                await stop([listener])
                return result
            } catch {
                await stop([listener])
                throw error
            }
        }

        var direct: [(cpu: Double, wall: Double)] = []
        var chain: [(cpu: Double, wall: Double)] = []
        var carried: [(cpu: Double, wall: Double)] = []
        var grantor = devices[0]
        for trial in 0..<trials {
            try grantor.grant(group, to: try carriers[trial].me().id, days: 1)
            carried.append(try await passes([a, served[trial]], via: carriers[trial]))
        }
        let carriedBytes = try allWires(carriers[0], group).reduce(0) { $0 + $1.count }
        carriers.removeAll()
        for trial in 0..<trials {
            let (m, b, c) = (devices[1 + 3 * trial], devices[2 + 3 * trial], devices[3 + 3 * trial])
            if trial % 2 == 0 {
                direct.append(try await passes([a], via: b))
                chain.append(try await passes([a, c], via: m))
            } else {
                chain.append(try await passes([a, c], via: m))
                direct.append(try await passes([a], via: b))
            }
        }
        let perEnvelope = zip(direct, chain).map { ($1.cpu - $0.cpu) / Double(sent) * 1e6 }
        let perCarried = zip(direct, carried).map { ($1.cpu - $0.cpu) / Double(sent) * 1e6 }
        let directCPU = percentile(direct.map(\.cpu), 0.5)
        return Forwarding(
            envelopes: sent, trials: trials, directCPUSeconds: directCPU, directWallSeconds: percentile(direct.map(\.wall), 0.5),
            chainCPUSeconds: percentile(chain.map(\.cpu), 0.5), chainWallSeconds: percentile(chain.map(\.wall), 0.5),
            directMicrosecondsPerEnvelope: directCPU / Double(sent) * 1e6,
            forwardingMicrosecondsPerEnvelope: percentile(perEnvelope, 0.5), forwardingMicrosecondsPerTrial: perEnvelope,
            carrierCPUSeconds: percentile(carried.map(\.cpu), 0.5), carrierWallSeconds: percentile(carried.map(\.wall), 0.5),
            carrierMicrosecondsPerEnvelope: percentile(perCarried, 0.5), carrierMicrosecondsPerTrial: perCarried,
            carriedBytes: carriedBytes)
    }

    // MARK: - Devices

    static func makeDevices(_ names: [String], folder: String) throws -> [MeshDevice] {
        try DeviceNetwork(names, .init(storage: .files(in: folder), clock: .system, randomness: .system)).devices
    }

    /// A group made in memory by a creator who is every device's contact: the create, the title,
    /// then application messages up to `envelopes` in all. The devices at `imports` receive all
    /// of it; the others only the create (they join, and lack the rest).
    static func commonHistory(
        devices: inout [MeshDevice], envelopes: Int, imports: Set<Int>, members: Set<Int>? = nil
    ) throws -> (GroupID, MemberID) {
        let members = members ?? Set(devices.indices)
        var random = SystemRandomNumberGenerator()
        let now = UInt64(Date().timeIntervalSince1970)
        let identity = IdentityKey.generate(using: &random)
        var prekeys = PrekeyStore()
        let bundle = prekeys.generate(identity: identity, notAfter: now + 90 * 86_400, using: &random)
        var bundles: [KeyBundle] = []
        for index in devices.indices {
            _ = try devices[index].addContact(code: ContactCode.encode(bundle), name: "creator")
            if members.contains(index) { bundles.append(try devices[index].profile().bundle) }
        }
        var (group, create) = try Group.create(
            identity: identity, ownBundle: bundle, members: bundles, prekeys: prekeys, now: now, using: &random)
        var wires = [create.wireBytes]
        for envelope in try group.send(MessageContent(.title("mesh"), sentAt: now).bytes, prekeys: prekeys, now: now, using: &random) {
            wires.append(envelope.wireBytes)
        }
        var number = 0
        while wires.count < envelopes {
            let content = MessageContent(.text("message \(number) of a long history"), sentAt: now)
            for envelope in try group.send(content.bytes, prekeys: prekeys, now: now, using: &random) { wires.append(envelope.wireBytes) }
            number += 1
        }
        for index in devices.indices where members.contains(index) {
            let items = (imports.contains(index) ? wires : [wires[0]]).map { ReceivedEnvelope(group: group.groupID, wire: $0) }
            let report = try devices[index].receive(items)
            guard report.new == items.count, report.joined == [group.groupID] else {
                throw MeshBenchError("device \(index) took \(report.new) of \(items.count) envelopes: \(report.reasons)")
            }
        }
        return (group.groupID, identity.id)
    }

    /// Every device gives every other its own envelopes (its acknowledgments), until nothing moves.
    static func exchangeOwn(_ devices: inout [MeshDevice], _ group: GroupID) throws {
        for _ in 0..<8 {
            var moved = 0
            for source in devices.indices {
                let me = try devices[source].me().id
                let own = try allWires(devices[source], group).filter { (try? Envelope(wire: $0, groupID: group).sender) == me }
                guard !own.isEmpty else { continue }
                for target in devices.indices where target != source {
                    moved += try devices[target].receive(own.map { ReceivedEnvelope(group: group, wire: $0) }).new
                }
            }
            if moved == 0 { return }
        }
        throw MeshBenchError("the devices' own envelopes did not settle")
    }

    static func allWires(_ device: MeshDevice, _ group: GroupID, after start: Int64 = 0) throws -> [[UInt8]] {
        var wires: [[UInt8]] = []
        var after = start
        while true {
            let (page, last) = try device.log(of: group, after: after)
            guard !page.isEmpty else { return wires }
            wires += page
            after = last
        }
    }

    static func holdingCount(_ device: MeshDevice, _ group: GroupID) throws -> Int {
        try device.holdings(of: group).chains.values.reduce(0) { $0 + $1.count }
    }

    static func texts(_ device: MeshDevice, _ group: GroupID) throws -> [String] {
        try device.history(of: group).filter { $0.kind == .message }.map(\.text)
    }

    static func client(_ device: MeshDevice) throws -> PeerClient<SharedRandom> {
        PeerClient(device: device, identity: try device.identityKey(), logger: logger)
    }

    /// `PeerClient.listen` on 127.0.0.1:0 in a task, and the port it bound.
    static func listen(_ device: MeshDevice) async throws -> (Task<Void, Never>, Int) {
        let peer = try client(device)
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let task = Task {
            do {
                try await peer.listen(host: host, port: 0, bound: { continuation.yield($0) }, onLink: { _, _, _ in })
            } catch {}
            continuation.finish()
        }
        for await port in ports { return (task, port) }
        throw MeshBenchError("a listener did not start")
    }

    /// Cancels the tasks and waits (at most 5 s) for them to end.
    static func stop(_ tasks: [Task<Void, Never>]) async {
        for task in tasks { task.cancel() }
        let done = Tally()
        Task {
            for task in tasks { await task.value }
            _ = done.increment()
        }
        let deadline = ContinuousClock.now + .seconds(5)
        while done.value == 0, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(10)) }
    }

    static func waitUntil(_ what: String, timeout: Double, _ condition: () throws -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(timeout)
        while try !condition() {
            guard ContinuousClock.now < deadline else { throw MeshBenchError("timed out waiting for \(what)") }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    static func seconds(_ duration: Duration) -> Double { BenchStatistics.seconds(duration) }
    static func percentile(_ values: [Double], _ p: Double) -> Double { BenchStatistics.percentile(values, p) }

    /// CPU time of the whole process (every thread), in seconds.
    static func processCPUSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}

/// A counter shared between tasks or threads.
final class Tally: Sendable {
    private let count = Mutex(0)
    var value: Int { count.withLock { $0 } }
    func increment() -> Int { count.withLock { $0 += 1; return $0 } }
}

struct MeshBenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A TCP proxy on 127.0.0.1 that counts the bytes passing each way, and the link records
/// (`length (2 bytes) ‖ Noise message`, NETWORK.md §12) in them. Plain sockets and a thread per
/// direction: it is in the benchmark's process, between one connecting device and a listener.
final class ByteCountingProxy: @unchecked Sendable {
    struct Counts: Sendable {
        var toUpstream = 0
        var toClient = 0
        var records = 0
        /// Noise handshake messages 1 and 3 (client to upstream) and 2 (back), record headers included.
        var handshakeBytes = 0
        var accepted = 0
        var closed = 0
    }

    /// Splits one direction's bytes into records.
    struct RecordCounter {
        var header: [UInt8] = []
        var remaining = 0
        var records = 0
        var firstRecordBytes: [Int] = []

        mutating func consume(_ bytes: UnsafeBufferPointer<UInt8>) {
            var index = 0
            while index < bytes.count {
                if remaining == 0 {
                    header.append(bytes[index])
                    index += 1
                    if header.count == 2 {
                        remaining = Int(header[0]) << 8 | Int(header[1])
                        header = []
                        records += 1
                        if firstRecordBytes.count < 2 { firstRecordBytes.append(remaining + 2) }
                    }
                } else {
                    let take = min(remaining, bytes.count - index)
                    index += take
                    remaining -= take
                }
            }
        }
    }

    let port: Int
    private let listener: Int32
    private let upstreamPort: Int
    private let state = Mutex(Counts())
    private let stopped = Tally()

    init(upstreamPort: Int) throws {
        self.upstreamPort = upstreamPort
        let fd = socket(AF_INET, Self.streamType, 0)
        guard fd >= 0 else { throw MeshBenchError("proxy: socket() failed (\(errno))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = Self.loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            close(fd)
            throw MeshBenchError("proxy: bind/listen failed (\(errno))")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        listener = fd
        port = Int(UInt16(bigEndian: address.sin_port))
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    #if canImport(Glibc)
    static let streamType = Int32(SOCK_STREAM.rawValue)
    #else
    static let streamType = SOCK_STREAM
    #endif

    static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port)).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }

    var counts: Counts { state.withLock { $0 } }

    func reset() { state.withLock { $0 = Counts(accepted: $0.accepted - $0.closed) } }

    /// Waits until every accepted connection has closed both ways (at most 10 s).
    func waitClosed() async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while state.withLock({ $0.closed < $0.accepted || $0.accepted == 0 }) {
            guard ContinuousClock.now < deadline else { throw MeshBenchError("proxy: a connection stayed open") }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    func stop() {
        _ = stopped.increment()
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    private func acceptLoop() {
        while stopped.value == 0 {
            let client = accept(listener, nil, nil)
            guard client >= 0 else {
                if errno == EINTR { continue }
                return
            }
            let upstream = socket(AF_INET, Self.streamType, 0)
            var address = Self.loopback(port: upstreamPort)
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard connected == 0 else {
                close(client)
                close(upstream)
                continue
            }
            state.withLock { $0.accepted += 1 }
            let finished = Tally()
            let end: @Sendable () -> Void = { [self] in
                guard finished.increment() == 2 else { return }
                close(client)
                close(upstream)
                state.withLock { $0.closed += 1 }
            }
            Thread { [self] in pump(from: client, to: upstream, toUpstream: true); end() }.start()
            Thread { [self] in pump(from: upstream, to: client, toUpstream: false); end() }.start()
        }
    }

    private func pump(from source: Int32, to destination: Int32, toUpstream: Bool) {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        var records = RecordCounter()
        var handshakeCounted = false
        while true {
            let count = buffer.withUnsafeMutableBytes { read(source, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { break }
            buffer.withUnsafeBufferPointer { records.consume(UnsafeBufferPointer(rebasing: $0[0..<count])) }
            let handshake: Int
            if !handshakeCounted, records.firstRecordBytes.count >= (toUpstream ? 2 : 1) {
                handshakeCounted = true
                handshake = toUpstream ? records.firstRecordBytes[0] + records.firstRecordBytes[1] : records.firstRecordBytes[0]
            } else {
                handshake = 0
            }
            let newRecords = records.records
            records.records = 0
            state.withLock {
                if toUpstream { $0.toUpstream += count } else { $0.toClient += count }
                $0.records += newRecords
                $0.handshakeBytes += handshake
            }
            var written = 0
            while written < count {
                let result = buffer.withUnsafeBytes { raw in
                    send(destination, raw.baseAddress! + written, count - written, Self.noSignal)
                }
                if result < 0, errno == EINTR { continue }
                guard result > 0 else { break }
                written += result
            }
            if written < count { break }
        }
        shutdown(destination, Int32(SHUT_WR))
    }

    #if os(Linux)
    static let noSignal = Int32(MSG_NOSIGNAL)
    #else
    static let noSignal: Int32 = 0
    #endif
}
