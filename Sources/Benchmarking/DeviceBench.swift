import Foundation
import DCGKAEncoding
import DCGKACrypto
import CausalBroadcast
import DCGKAGroup
import Device
import DeviceStorage
import NetworkSimulation

/// Issue 9's device benchmarks (BENCHMARKS.md): importing a 64-member group's history into a
/// fresh device, with every check on, against the in-memory core processing the same envelopes;
/// database size per member and per envelope; opening a home with 100 groups.
public struct DeviceBench: Sendable {
    public struct Report: Sendable, Codable {
        public var members: Int
        public var envelopes: Int
        public var controlEnvelopes: Int
        public var coreSeconds: Double
        public var deviceSeconds: Double
        public var coreEnvelopesPerSecond: Double
        public var deviceEnvelopesPerSecond: Double
        public var storageOverhead: Double
        public var importBatch: Int
        public var databaseBytes: Int
        public var logBytes: Int
        public var groupStateBytes: Int
        public var bytesPerEnvelope: Double
        public var groupStateBytesPerMember: Double
        public var groupsInHome: Int
        public var openHomeSeconds: Double
        public var openHomeListSeconds: Double
    }

    /// Builds the history in memory: a create of `members` (the observer among them, silent),
    /// everyone's acknowledgment, `updates` updates each acknowledged by everyone, then
    /// application messages from random members up to `envelopes` in all. Only the observer
    /// ever processes the messages, which is all a history needs.
    static func history(
        members n: Int, envelopes total: Int, updates: Int, observer: KeyBundle, seed: UInt64, now: UInt64
    ) throws -> (log: [Envelope], creator: KeyBundle) {
        var rng = SeededRandom(seed: seed)
        var identities: [IdentityKey] = []
        var prekeys: [PrekeyStore] = []
        var bundles: [KeyBundle] = []
        for _ in 0..<(n - 1) {
            let identity = IdentityKey.generate(using: &rng)
            var store = PrekeyStore()
            bundles.append(store.generate(identity: identity, notAfter: now + 90 * 86_400, using: &rng))
            identities.append(identity)
            prekeys.append(store)
        }
        var log: [Envelope] = []
        var groups: [Group?] = Array(repeating: nil, count: n - 1)
        let (creator, create) = try Group.create(
            identity: identities[0], ownBundle: bundles[0], members: Array(bundles.dropFirst()) + [observer], prekeys: prekeys[0],
            now: now, using: &rng)
        groups[0] = creator
        log.append(create)
        // Everyone but the observer joins and acknowledges; every control envelope reaches every active member.
        var pending: [Envelope] = []
        for index in 1..<(n - 1) {
            let (group, output) = try Group.join(identity: identities[index], invitation: create, prekeys: prekeys[index], using: &rng)
            groups[index] = group
            pending += output.envelopes
        }
        func deliverControl(_ envelopes: [Envelope]) {
            var queue = envelopes
            while !queue.isEmpty {
                let batch = queue
                queue = []
                log += batch
                for index in 0..<(n - 1) {
                    guard var group = groups[index] else { continue }
                    for envelope in batch where envelope.sender != group.me {
                        queue += group.receive(envelope, prekeys: prekeys[index], using: &rng).envelopes
                    }
                    groups[index] = group
                }
            }
        }
        deliverControl(pending)
        // Updates first (members would otherwise have to process every message to reach a
        // later update in its sender's chain), then messages from random members.
        for round in 0..<updates {
            let index = round % (n - 1)
            guard var group = groups[index] else { continue }
            let update = try group.update(prekeys: prekeys[index], using: &rng)
            groups[index] = group
            deliverControl([update])
        }
        var sentMessages = 0
        while log.count < total {
            let index = Int(rng.next() % UInt64(n - 1))
            guard var group = groups[index] else { continue }
            let envelopes = try group.send(text: "message \(sentMessages) of a long history", prekeys: prekeys[index], now: now, using: &rng)
            groups[index] = group
            log += envelopes
            sentMessages += 1
        }
        return (Array(log.prefix(total)), bundles[0])
    }

    public static func run(
        members: Int = 64, envelopes: Int = 10_000, updates: Int = 20, groupsInHome: Int = 100, importBatch: Int? = nil,
        seed: UInt64 = 1, folder: String, progress: (String) -> Void = { _ in }
    ) throws -> Report {
        let now = UInt64(Date().timeIntervalSince1970)
        var configuration = DeviceConfiguration()
        if let importBatch { configuration.importBatch = importBatch }
        let importBatch = configuration.importBatch
        // The observer, then the busy home: strangers on SQLite files in `folder`, at a fixed time.
        var network = try DeviceNetwork(["observer"], .init(
            storage: .files(in: folder), clock: NetworkClock(start: now), randomness: .seeded(seed), exchangesContacts: false,
            configuration: configuration))
        var device = network["observer"]
        guard let path = try network.databasePath(of: "observer") else { throw CLIBenchError("the observer has no database file") }
        let observer = try device.profile().bundle
        progress("building a \(members)-member history of \(envelopes) envelopes")
        let (log, creatorBundle) = try history(members: members, envelopes: envelopes, updates: updates, observer: observer, seed: seed, now: now)
        let control = log.filter { $0.kind != .application }.count
        guard let creator = log.first, let profile = try device.store.read({ try $0.profile() }) else { throw CLIBenchError("no history") }
        let identity = try IdentityKey(wireBytes: profile.identity)
        let prekeys = try PrekeyStore(wireBytes: profile.prekeys)

        // The in-memory core: the same wire bytes decoded, the group joined by the create, then
        // every envelope received (signatures checked), nothing stored.
        progress("in-memory core")
        let wires = log.map(\.wireBytes)
        var rng = SeededRandom(seed: seed ^ 0xC0DE)
        let coreStart = DispatchTime.now()
        var (group, _) = try Group.join(
            identity: identity, invitation: try Envelope(wire: wires[0], groupID: creator.groupID), prekeys: prekeys, using: &rng)
        var coreMessages = 0
        for wire in wires.dropFirst() {
            let envelope = try Envelope(wire: wire, groupID: creator.groupID)
            for event in group.receive(envelope, prekeys: prekeys, using: &rng).events {
                if case .message(_, _, let bytes) = event, case .text = try? MessageContent(bytes: bytes).kind { coreMessages += 1 }
            }
        }
        let coreSeconds = Double(DispatchTime.now().uptimeNanoseconds - coreStart.uptimeNanoseconds) / 1e9

        // The device: the same envelopes through `receive` (the path `dcgka import` takes), batched commits.
        progress("device (SQLite, batches of \(importBatch))")
        _ = try device.addContact(code: ContactCode.encode(creatorBundle), name: "creator")
        let items = wires.map { ReceivedEnvelope(group: creator.groupID, wire: $0) }
        let deviceStart = DispatchTime.now()
        let report = try device.receive(items)
        let deviceSeconds = Double(DispatchTime.now().uptimeNanoseconds - deviceStart.uptimeNanoseconds) / 1e9
        guard report.new == log.count, report.messages == coreMessages else {
            throw CLIBenchError("the device read \(report.messages) messages of \(coreMessages) (new \(report.new) of \(log.count)): \(report.reasons)")
        }
        let databaseBytes = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        let logBytes = log.reduce(0) { $0 + $1.wireByteCount }
        let stateBytes = try device.store.read { try $0.group(creator.groupID)?.state?.count ?? 0 }

        // A home with 100 groups: opening it and listing them (which decodes every state).
        progress("a home with \(groupsInHome) groups")
        try network.addPerson("busy")
        var home = network["busy"]
        guard let homePath = try network.databasePath(of: "busy") else { throw CLIBenchError("the home has no database file") }
        var peers: [KeyBundle] = []
        var peerRng = SeededRandom(seed: seed ^ 0x200)
        for _ in 0..<3 {
            let identity = IdentityKey.generate(using: &peerRng)
            var store = PrekeyStore()
            peers.append(store.generate(identity: identity, notAfter: now + 90 * 86_400, using: &peerRng))
        }
        for (index, peer) in peers.enumerated() { _ = try home.addContact(code: ContactCode.encode(peer), name: "peer\(index)") }
        for index in 0..<groupsInHome {
            let id = try home.createGroup(title: "group \(index)", with: peers.map(\.identity))
            for n in 0..<5 { try home.send(text: "hello \(n)", to: id) }
        }
        let openStart = DispatchTime.now()
        let reopened = Device(store: try SQLiteDeviceStore(path: homePath), clock: { now }, random: SeededRandom(seed: 3))
        let openSeconds = Double(DispatchTime.now().uptimeNanoseconds - openStart.uptimeNanoseconds) / 1e9
        let listed = try reopened.groups()
        let listSeconds = Double(DispatchTime.now().uptimeNanoseconds - openStart.uptimeNanoseconds) / 1e9
        guard listed.count == groupsInHome else { throw CLIBenchError("listed \(listed.count) groups") }

        return Report(
            members: members, envelopes: log.count, controlEnvelopes: control, coreSeconds: coreSeconds, deviceSeconds: deviceSeconds,
            coreEnvelopesPerSecond: Double(log.count) / coreSeconds, deviceEnvelopesPerSecond: Double(log.count) / deviceSeconds,
            storageOverhead: deviceSeconds / coreSeconds, importBatch: importBatch, databaseBytes: databaseBytes, logBytes: logBytes,
            groupStateBytes: stateBytes, bytesPerEnvelope: Double(databaseBytes) / Double(log.count),
            groupStateBytesPerMember: Double(stateBytes) / Double(members), groupsInHome: groupsInHome,
            openHomeSeconds: openSeconds, openHomeListSeconds: listSeconds)
    }
}

struct CLIBenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
