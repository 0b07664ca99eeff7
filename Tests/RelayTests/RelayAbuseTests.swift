import Testing
import Foundation
import DCGKAEncoding
import DCGKACrypto
import CausalBroadcast
import Device
import Link
import LinkIO
import NIOCore
import Sync
import WSClient

// Abuse of a real relay process (NETWORK.md §13.2, §13.5, §15): `dcgka relay serve` on loopback,
// raw clients that misbehave, and for every case the typed outcome (the relay's
// `error(code, text)`, or the connection closed) and no effect on an honest pair of devices
// syncing through the same relay at the same time.

/// `varint length` of a sync frame (§11), for frames built by hand.
func frameLength(_ length: UInt64) -> [UInt8] {
    var writer = WireWriter()
    writer.writeVarint(length)
    return writer.bytes
}

func randomIdentity() -> IdentityKey {
    var random = SystemRandomNumberGenerator()
    return IdentityKey.generate(using: &random)
}

/// A device with a group of its own (it alone is a member), and the group's envelopes so far.
func soloGroup(_ name: String) throws -> (device: TestDevice, group: GroupID, envelopes: [Envelope]) {
    var device = try makeTestDevice(name)
    let group = try device.createGroup(title: name, with: [])
    let envelopes = try device.log(of: group, after: 0).wires.map { try Envelope(wire: $0, groupID: group) }
    return (device, group, envelopes)
}

/// The hashes a link's `ack` messages acknowledged for `group`.
func acknowledged(_ messages: [SyncMessage], _ group: GroupID) -> Set<Bytes32> {
    Set(messages.flatMap { message -> [Bytes32] in if case .ack(let g, let hashes) = message, g == group { hashes } else { [] } })
}

/// Runs the honest pair's round trips while `abuse` runs, and once more after it; both must work.
func whileHonestPairTalks<T>(_ pair: HonestPair, label: String, _ abuse: () async throws -> T) async throws -> T {
    let stop = Locked(false)
    async let rounds = pair.keepTalking(until: stop, label: "\(label), during")
    let value: T
    do {
        value = try await abuse()
    } catch {
        stop.withLock { $0 = true }
        _ = try? await rounds
        throw error
    }
    stop.withLock { $0 = true }
    let count = try await rounds
    #expect(count >= 1, "the honest pair talked during \(label)")
    try await pair.roundTrip("\(label), after")
    return value
}

@Suite("Relay abuse: a real relay process and misbehaving clients (NETWORK.md §13.5, §15)", .serialized)
struct RelayAbuseTests {
    @Test("a sync frame announcing more than the 2 MiB limit: error frameTooLarge, then closed", .timeLimit(.minutes(5)))
    func oversizedFrame() async throws {
        try await withRelayProcess([]) { relay in
            let pair = try await HonestPair.make(at: relay.address)
            try await whileHonestPairTalks(pair, label: "oversized frames") {
                // Announced lengths just over the limit and far over it: refused as soon as the
                // varint says so, before anything is allocated.
                for announced in [UInt64(2 << 20) + 1, UInt64(1) << 30, UInt64(Int64.max)] {
                    let attacker = try await RawLinkClient.connect(port: relay.port, relay: relay.address.relay, identity: randomIdentity())
                    try await attacker.hello()
                    #expect(await attacker.ping(), "the link works before")
                    try await attacker.sendSealed([frameLength(announced) + [1, 2, 3, 4]])
                    let outcome = await attacker.outcome()
                    #expect(outcome.code == .frameTooLarge, "announced \(announced): \(outcome)")
                    #expect(await attacker.closed(), "the relay closes the link after the error")
                    await attacker.close()
                }
                // A real message whose frame is larger than the limit (three 900 KB envelopes).
                let attacker = try await RawLinkClient.connect(port: relay.port, relay: relay.address.relay, identity: randomIdentity())
                try await attacker.hello()
                var random = SystemRandomNumberGenerator()
                let frame = SyncFraming.frame(.envelopes(pair.group, (0..<3).map { _ in random.bytes(900_000) }))
                #expect(frame.count > 2 << 20)
                try await attacker.sendSealed([frame])
                let outcome = await attacker.outcome()
                #expect(outcome.code == .frameTooLarge, "\(outcome)")
                #expect(await attacker.closed())
                await attacker.close()
            }
        }
    }

    @Test("many tasks writing on one link at once: every message opens at the relay, in nonce order", .timeLimit(.minutes(5)))
    func concurrentWriters() async throws {
        try await withRelayProcess([]) { relay in
            let client = try await RawLinkClient.connect(port: relay.port, relay: relay.address.relay, identity: randomIdentity())
            try await client.hello()
            let writers = 32
            let pingsEach = 25
            try await withThrowingTaskGroup(of: Void.self) { group in
                for writer in 0..<writers {
                    group.addTask {
                        for n in 0..<pingsEach { try await client.send([.ping(UInt64(writer * 1_000 + n))]) }
                    }
                }
                try await group.waitForAll()
            }
            let expected = Set((0..<writers).flatMap { w in (0..<pingsEach).map { UInt64(w * 1_000 + $0) } })
            let answered = await poll(timeout: .seconds(60)) { () -> Set<UInt64>? in
                let pongs = Set(client.messages.compactMap { if case .pong(let n) = $0 { n } else { nil } })
                return pongs == expected || client.isClosed ? pongs : nil
            }
            #expect(!client.isClosed, "the relay could open every message: \(client.received.suffix(3))")
            #expect(answered?.count == expected.count, "pongs for \(answered?.count ?? 0) of \(expected.count) pings")
            await client.close()
        }
    }

    @Test("malformed frames: garbage in a valid Noise message, text frames, non-Noise binary frames, frames larger than a Noise message", .timeLimit(.minutes(5)))
    func malformedFrames() async throws {
        try await withRelayProcess([]) { relay in
            let pair = try await HonestPair.make(at: relay.address)
            let bystander = try await RawLinkClient.connect(port: relay.port, relay: relay.address.relay, identity: randomIdentity())
            try await bystander.hello()
            try await whileHonestPairTalks(pair, label: "malformed frames") {
                var random = SystemRandomNumberGenerator()
                let identity = randomIdentity()
                typealias Abuse = @Sendable (RawLinkClient) async throws -> Void
                let cases: [(String, SyncErrorCode?, Abuse)] = [
                    ("an unknown message tag inside a valid Noise transport message", .malformed, { try await $0.sendSealed([[5, 0xff, 1, 2, 3, 4]]) }),
                    ("a frame length that is not the shortest varint", .malformed, { try await $0.sendSealed([[0x80, 0x00]]) }),
                    ("a truncated message inside its frame", .malformed, { try await $0.sendSealed([[3, 3, 0, 0]]) }),
                    ("a WebSocket text frame", .malformed, { try await $0.sendText("hello, relay") }),
                    // A message that fails to open kills the relay's transport in both directions
                    // (LinkTransport: every error ends it), so no sealed error can follow: closed.
                    ("a binary frame that is not a Noise message", nil, { [bytes = random.bytes(100)] in try await $0.sendBinary(bytes) }),
                    ("a binary frame of 16 bytes that fails its tag", nil, { try await $0.sendBinary(Array(repeating: 0, count: 16)) }),
                    ("a binary frame shorter than a tag", nil, { try await $0.sendBinary([1, 2, 3]) }),
                    ("a binary frame larger than a Noise message", .malformed, { [bytes = random.bytes(LinkTransport.maximumMessageBytes + 16)] in try await $0.sendBinary(bytes) }),
                    ("a binary frame larger than the WebSocket frame limit", nil, { [bytes = random.bytes(200_000)] in try await $0.sendBinary(bytes) }),
                    ("a hello naming another identity than the link's", .unauthorized, { try await $0.send([.hello(Hello(holder: identity.id, groups: []))]) }),
                ]
                for (name, expected, abuse) in cases {
                    let attacker = try await RawLinkClient.connect(port: relay.port, relay: relay.address.relay, identity: randomIdentity())
                    if expected != .unauthorized {
                        try await attacker.hello()
                        #expect(await attacker.ping(), "\(name): the link works before")
                    }
                    try await abuse(attacker)
                    let outcome = await attacker.outcome()
                    if let expected {
                        #expect(outcome.code == expected, "\(name): \(outcome)")
                    } else {
                        #expect(outcome == .closed, "\(name): \(outcome)")
                    }
                    #expect(await attacker.closed(), "\(name): the relay closes the link")
                    await attacker.close()
                    #expect(await bystander.ping(), "\(name): another link is unaffected")
                }
                // The first message must be hello, and only one hello.
                let early = try await RawLinkClient.connect(port: relay.port, relay: relay.address.relay, identity: randomIdentity())
                try await early.send([.have(pair.group, Frontier())])
                #expect(await early.outcome().code == .malformed)
                #expect(await early.closed())
                await early.close()
                let twice = try await RawLinkClient.connect(port: relay.port, relay: relay.address.relay, identity: randomIdentity())
                try await twice.hello()
                try await twice.hello()
                #expect(await twice.outcome().code == .malformed)
                #expect(await twice.closed())
                await twice.close()
                // Garbage instead of the handshake's first message (too short for a key, or a
                // key with a payload message 1 cannot have): closed, nothing served.
                for garbage in [random.bytes(5), random.bytes(100)] {
                    let bare = try await RawLinkClient.connect(port: relay.port, relay: relay.address.relay, identity: nil)
                    try await bare.sendBinary(garbage)
                    #expect(await bare.closed(), "\(garbage.count) bytes")
                    #expect(!bare.received.contains { if case .binary = $0 { true } else { false } }, "\(garbage.count) bytes")
                    await bare.close()
                }
            }
            #expect(await bystander.ping())
            await bystander.close()
        }
    }

    @Test("a flood of envelopes from one identity is refused (rateLimited) on all its links; other identities are unaffected", .timeLimit(.minutes(5)))
    func floodFromOneIdentity() async throws {
        // 100 envelopes a second per identity, a burst of 1,000 (`relay serve` makes the burst ten seconds' worth).
        try await withRelayProcess(["--envelopes-per-second", "100"]) { relay in
            let pair = try await HonestPair.make(at: relay.address)
            let (flooderDevice, floodGroup, floodStart) = try soloGroup("flooder")
            let flooderKey = try flooderDevice.identityKey()
            let (otherDevice, otherGroup, otherStart) = try soloGroup("other")
            let otherKey = try otherDevice.identityKey()
            let (backlogDevice, backlogGroup, backlogStart) = try soloGroup("backlog")
            let backlogKey = try backlogDevice.identityKey()
            try await whileHonestPairTalks(pair, label: "a flood") {
                let flooder = try await RawLinkClient.connect(port: relay.port, relay: relay.address.relay, identity: flooderKey)
                try await flooder.hello([floodGroup])
                try await flooder.send([.envelopes(floodGroup, floodStart.map(\.wireBytes))])
                #expect(await flooder.ping())
                #expect(acknowledged(flooder.messages, floodGroup) == Set(floodStart.map(\.hash)))
                // 5,000 envelopes, 100 per message, as fast as the socket takes them.
                let last = floodStart.last!
                let flood = Forge.applications(identity: flooderKey, group: floodGroup, from: last.seq + 1, prev: last.hash, count: 5_000)
                let started = ContinuousClock.now
                for start in stride(from: 0, to: flood.count, by: 100) {
                    do {
                        try await flooder.send([.envelopes(floodGroup, flood[start..<min(flood.count, start + 100)].map(\.wireBytes))])
                    } catch {
                        break  // the relay closed the link
                    }
                }
                let outcome = await flooder.outcome()
                #expect(outcome.code == .rateLimited, "\(outcome)")
                #expect(await flooder.closed())
                let stored = acknowledged(flooder.messages, floodGroup).count - floodStart.count
                print("flood: \(stored) of \(flood.count) envelopes stored before rateLimited, in \(started.duration(to: .now))")
                // What passes is about the burst (1,000), or one merged admission of up to 4,096
                // envelopes that leaves the bucket in debt; never the whole flood.
                #expect(stored >= 100)
                #expect(stored < flood.count, "the flood is refused")
                await flooder.close()

                // The bucket is the identity's, not the link's: a new link of the flooder is refused too.
                let again = try await RawLinkClient.connect(port: relay.port, relay: relay.address.relay, identity: flooderKey)
                try await again.hello([floodGroup])
                // A burst's worth needs a full bucket, which the flood emptied by at least 100
                // envelopes, a second's worth: not yet refilled.
                let rest = Array(flood[stored...].prefix(1_000))
                try? await again.send([.envelopes(floodGroup, rest.map(\.wireBytes))])
                #expect(await again.outcome().code == .rateLimited)
                await again.close()

                // Another identity sends 300 envelopes in messages of 100 at the same time, untouched.
                let other = try await RawLinkClient.connect(port: relay.port, relay: relay.address.relay, identity: otherKey)
                try await other.hello([otherGroup])
                let otherLast = otherStart.last!
                let batch = otherStart + Forge.applications(identity: otherKey, group: otherGroup, from: otherLast.seq + 1, prev: otherLast.hash, count: 300)
                for start in stride(from: 0, to: batch.count, by: 100) {
                    try await other.send([.envelopes(otherGroup, batch[start..<min(batch.count, start + 100)].map(\.wireBytes))])
                }
                #expect(await other.ping())
                #expect(acknowledged(other.messages, otherGroup) == Set(batch.map(\.hash)), "every envelope of the other identity stored")
                #expect(!other.messages.contains { if case .error = $0 { true } else { false } })
                await other.close()

                // A backlog larger than the burst in one message (1,500 envelopes) passes whole
                // with a full bucket; the identity then waits for the debt to be repaid.
                let backlog = try await RawLinkClient.connect(port: relay.port, relay: relay.address.relay, identity: backlogKey)
                try await backlog.hello([backlogGroup])
                let backlogLast = backlogStart.last!
                let history = backlogStart + Forge.applications(identity: backlogKey, group: backlogGroup, from: backlogLast.seq + 1, prev: backlogLast.hash, count: 1_500)
                try await backlog.send([.envelopes(backlogGroup, history.map(\.wireBytes))])
                #expect(await backlog.ping())
                #expect(acknowledged(backlog.messages, backlogGroup) == Set(history.map(\.hash)), "the whole backlog is stored")
                await backlog.close()
            }
        }
    }

    @Test("a flood of messages on one link is refused (rateLimited); other links are unaffected", .timeLimit(.minutes(5)))
    func messageFlood() async throws {
        try await withRelayProcess([]) { relay in
            let pair = try await HonestPair.make(at: relay.address)
            try await whileHonestPairTalks(pair, label: "a message flood") {
                let bystander = try await RawLinkClient.connect(port: relay.port, relay: relay.address.relay, identity: randomIdentity())
                try await bystander.hello()
                let attacker = try await RawLinkClient.connect(port: relay.port, relay: relay.address.relay, identity: randomIdentity())
                try await attacker.hello()
                // 20,000 pings in a few writes: the link's bucket allows a burst of 5,000 and 500 a second.
                for _ in 0..<4 { try? await attacker.send((0..<5_000).map { SyncMessage.ping(UInt64($0)) }) }
                let outcome = await attacker.outcome()
                #expect(outcome.code == .rateLimited, "\(outcome)")
                #expect(await attacker.closed())
                let answered = attacker.messages.filter { if case .pong = $0 { true } else { false } }.count
                print("message flood: \(answered) of 20000 pings answered before rateLimited")
                #expect(answered < 20_000)
                await attacker.close()
                #expect(await bystander.ping())
                await bystander.close()
            }
        }
    }

    @Test("1,000 idle connections (half authenticated, half never starting the handshake): the relay serves an honest client", .timeLimit(.minutes(10)))
    func idleConnections() async throws {
        let files = raiseOpenFileLimit(to: 8192)
        #expect(files >= 2_500, "open files limit \(files)")
        try await withRelayProcess(["--connections-per-address", "1100", "--handshake-seconds", "600", "--idle-seconds", "600"]) { relay in
            let pair = try await HonestPair.make(at: relay.address)
            try await pair.roundTrip("warm up")
            try await Task.sleep(for: .milliseconds(500))
            let before = try #require(relay.residentKiB())
            let filesBefore = relay.openFiles() ?? 0
            let started = ContinuousClock.now
            let clients = Locked<[RawLinkClient]>([])
            // 500 that complete the handshake (distinct identities: the relay allows 16 links
            // per identity and 600 new identities a minute) and say hello, 500 bare WebSockets.
            for chunk in stride(from: 0, to: 1_000, by: 50) {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for index in chunk..<(chunk + 50) {
                        group.addTask {
                            let client = try await RawLinkClient.connect(
                                port: relay.port, relay: relay.address.relay, identity: index % 2 == 0 ? randomIdentity() : nil)
                            if client.link != nil { try await client.hello() }
                            clients.withLock { $0.append(client) }
                        }
                    }
                    try await group.waitForAll()
                }
            }
            let opened = started.duration(to: .now)
            #expect(clients.current.count == 1_000)
            // Every authenticated one is still served.
            let authenticated = clients.current.filter { $0.link != nil }
            #expect(authenticated.count == 500)
            let answering = await withTaskGroup(of: Bool.self) { group in
                for client in authenticated.prefix(100) { group.addTask { await client.ping() } }
                return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            #expect(answering == 100)
            let honestStarted = ContinuousClock.now
            try await pair.roundTrip("among 1000 idle connections")
            let honest = honestStarted.duration(to: .now)
            try await Task.sleep(for: .milliseconds(500))
            let after = try #require(relay.residentKiB())
            let filesAfter = relay.openFiles() ?? 0
            let perConnection = Double(after - before) / 1_000
            print("""
                idle connections: relay RSS \(before) KiB before, \(after) KiB with 1000 idle connections \
                (\(String(format: "%.1f", perConnection)) KiB per connection); open files \(filesBefore) -> \(filesAfter); \
                opened in \(opened); honest round trip \(honest)
                """)
            #expect(filesAfter - filesBefore >= 1_000, "the relay holds every connection open")
            #expect(perConnection < 200, "under 200 KiB per idle connection")
            #expect(!clients.current.contains { $0.isClosed }, "no connection was dropped")
            await withTaskGroup(of: Void.self) { group in
                for client in clients.current { group.addTask { await client.close() } }
            }
            if await poll(timeout: .seconds(30), { (relay.openFiles() ?? 0) <= filesBefore + 10 ? true : nil }) == nil {
                Issue.record("the relay still holds \(relay.openFiles() ?? -1) files after the clients left (before: \(filesBefore))")
            }
            print("idle connections: relay RSS \(relay.residentKiB() ?? -1) KiB after they closed")
            try await pair.roundTrip("after the idle connections left")
        }
    }

    @Test("slow readers (one asking for a lot, one subscribed) that never read are disconnected; memory stays bounded; a reader that reads gets everything", .timeLimit(.minutes(8)))
    func slowReader() async throws {
        let pending = 4 << 20
        // A link with bytes pending that takes none of them for the idle time is a slow reader.
        try await withRelayProcess(["--pending-outbound-bytes", "\(pending)", "--idle-seconds", "5"]) { relay in
            let pair = try await HonestPair.make(at: relay.address)
            // A group of the reader's own with 16 MB of envelopes (16 of about 1 MB).
            let (readerDevice, group, start) = try soloGroup("reader")
            let readerKey = try readerDevice.identityKey()
            // Forged before the link is up: forging 40 MB takes seconds in a debug build on a busy
            // machine, longer than the relay's 5 s idle limit for a link that sends nothing.
            let last = start.last!
            let big = start + Forge.applications(identity: readerKey, group: group, from: last.seq + 1, prev: last.hash, count: 40, payloadBytes: 1_000_000)
            let uploader = try await RawLinkClient.connect(port: relay.port, relay: relay.address.relay, identity: readerKey)
            try await uploader.hello([group])
            let stored = big.prefix(start.count + 16)
            for envelope in stored { try await uploader.send([.envelopes(group, [envelope.wireBytes])]) }
            #expect(await uploader.ping(within: .seconds(120)))
            #expect(acknowledged(uploader.messages, group).count == stored.count)
            let groupBytes = stored.reduce(0) { $0 + $1.wireBytes.count }
            try await Task.sleep(for: .milliseconds(500))
            let before = try #require(relay.residentKiB())
            let peak = Locked(before)
            func cutOffs() -> Int { relay.log.components(separatedBy: "slow reader cut off").count - 1 }

            try await whileHonestPairTalks(pair, label: "slow readers") {
                // One that asks for the whole group 40 times (640 MB) and reads nothing. The relay
                // answers one request at a time, at the reader's pace: it stops reading the
                // link's requests while its answer waits, then cuts the link off.
                let requests = 40
                let asking = try await RawLinkClient.connect(port: relay.port, relay: relay.address.relay, identity: readerKey, reading: false)
                try await asking.hello([group])
                try await asking.send(Array(repeating: .have(group, Frontier()), count: requests))
                let askingStarted = ContinuousClock.now
                let cutAsking = await poll(timeout: .seconds(60), every: .milliseconds(50)) { () -> Bool? in
                    if let rss = relay.residentKiB() { peak.withLock { $0 = max($0, rss) } }
                    return cutOffs() >= 1 ? true : nil
                }
                #expect(cutAsking == true, "the relay cut the asking reader off while it read nothing")
                let askingTime = askingStarted.duration(to: .now)
                asking.resumeReading()
                #expect(await asking.closed(within: .seconds(60)), "its connection is closed")
                let askingRead = asking.totalBytesRead
                await asking.close()

                // One that subscribes and reads nothing while 24 MB are pushed to the group.
                let subscribed = try await RawLinkClient.connect(port: relay.port, relay: relay.address.relay, identity: readerKey, reading: false)
                try await subscribed.hello([group])
                try await subscribed.send([.subscribe(group)])
                try await Task.sleep(for: .milliseconds(200))
                let pusher = try await RawLinkClient.connect(port: relay.port, relay: relay.address.relay, identity: readerKey)
                try await pusher.hello([group])
                let pushed = big.suffix(from: stored.endIndex)
                let pushStarted = ContinuousClock.now
                for envelope in pushed { try await pusher.send([.push(group, [envelope.wireBytes])]) }
                #expect(await pusher.ping(within: .seconds(120)), "the writer is not held up by the slow subscriber")
                #expect(acknowledged(pusher.messages, group).count == pushed.count)
                let cutSubscribed = await poll(timeout: .seconds(60), every: .milliseconds(50)) { () -> Bool? in
                    if let rss = relay.residentKiB() { peak.withLock { $0 = max($0, rss) } }
                    return cutOffs() >= 2 ? true : nil
                }
                #expect(cutSubscribed == true, "the relay cut the subscriber off while it read nothing")
                let pushTime = pushStarted.duration(to: .now)
                subscribed.resumeReading()
                #expect(await subscribed.closed(within: .seconds(60)))
                let subscribedRead = subscribed.totalBytesRead
                await subscribed.close()
                await pusher.close()

                let after = relay.residentKiB() ?? 0
                print("""
                    slow readers (pending limit \(pending) bytes): one asked for \(requests * groupBytes / 1_000_000) MB, was cut off after \(askingTime) \
                    and had \(askingRead / 1_000) KB on its way; one subscribed to \(pushed.count) MB of pushes, was cut off \(pushTime) after they began \
                    and had \(subscribedRead / 1_000) KB on its way; relay RSS \(before) KiB before, peak \(peak.current) KiB, \(after) KiB after
                    """)
                #expect(askingRead < 64 << 20, "the relay did not keep answering the slow reader")
                let pushedBytes = pushed.reduce(0) { $0 + $1.wireBytes.count }
                #expect(subscribedRead < pushedBytes / 2, "the relay did not keep pushing to the slow subscriber")
                #expect(peak.current - before < 128 << 10, "the relay's memory grew by \(peak.current - before) KiB")
            }
            // A reader that reads gets the whole group (40 MB), ten times the pending limit: the
            // limit bounds memory, not what a link may ask for.
            let reader = try await RawLinkClient.connect(port: relay.port, relay: relay.address.relay, identity: readerKey)
            try await reader.hello([group])
            try await reader.send([.have(group, Frontier())])
            #expect(await reader.ping(within: .seconds(120)))
            #expect(reader.messages.wires(of: group).count == big.count)
            #expect(!reader.messages.contains { if case .error = $0 { true } else { false } })
            await reader.close()
        }
    }

    @Test("a peer that keeps writing while it reads nothing cannot make the relay buffer what it writes", .timeLimit(.minutes(5)))
    func writerThatDoesNotRead() async throws {
        try await withRelayProcess(["--pending-outbound-bytes", "\(4 << 20)"]) { relay in
            let pair = try await HonestPair.make(at: relay.address)
            let (readerDevice, group, start) = try soloGroup("reader")
            let readerKey = try readerDevice.identityKey()
            let uploader = try await RawLinkClient.connect(port: relay.port, relay: relay.address.relay, identity: readerKey)
            try await uploader.hello([group])
            let last = start.last!
            let big = start + Forge.applications(identity: readerKey, group: group, from: last.seq + 1, prev: last.hash, count: 16, payloadBytes: 1_000_000)
            for envelope in big { try await uploader.send([.envelopes(group, [envelope.wireBytes])]) }
            #expect(await uploader.ping(within: .seconds(120)))
            await uploader.close()
            try await Task.sleep(for: .milliseconds(500))
            let before = try #require(relay.residentKiB())
            let peak = Locked(before)

            try await whileHonestPairTalks(pair, label: "a writer that does not read") {
                // A request whose answer (16 MB) it never reads, then 200 messages of 900 KB (180 MB).
                let writer = try await RawLinkClient.connect(port: relay.port, relay: relay.address.relay, identity: readerKey, reading: false)
                try await writer.hello([group])
                try await writer.send([.have(group, Frontier())])
                let written = Locked(0)
                let writing = Task {
                    var random = SystemRandomNumberGenerator()
                    for _ in 0..<200 {
                        do { try await writer.send([.envelopes(group, [random.bytes(900_000)])]) } catch { return }
                        written.withLock { $0 += 900_000 }
                    }
                }
                _ = await poll(timeout: .seconds(15), every: .milliseconds(50)) { () -> Bool? in
                    if let rss = relay.residentKiB() { peak.withLock { $0 = max($0, rss) } }
                    return nil
                }
                print("""
                    writer that does not read: wrote \(written.current / 1_000_000) MB in 15 s while reading nothing; \
                    relay RSS \(before) KiB before, peak \(peak.current) KiB
                    """)
                #expect(written.current < 64 << 20, "the relay stopped reading the peer")
                #expect(peak.current - before < 64 << 10, "the relay's memory grew by \(peak.current - before) KiB")
                writing.cancel()
                await writer.close()
            }
        }
    }

    @Test("a replayed handshake (messages 1 and 3 of an earlier connection) cannot complete; nothing is served", .timeLimit(.minutes(5)))
    func replayedHandshake() async throws {
        try await withRelayProcess([]) { relay in
            let pair = try await HonestPair.make(at: relay.address)
            let identity = randomIdentity()
            let relayID = relay.address.relay
            try await whileHonestPairTalks(pair, label: "replayed handshakes") {
                // A genuine connection, recorded.
                let recorded = try await withRawSocket(port: relay.port) { inbound, outbound in
                    var random = SystemRandomNumberGenerator()
                    var handshake = try LinkHandshake.initiator(identity: identity, expectedPeer: relayID, random: &random)
                    let first = try handshake.write()
                    try await outbound.write(.binary(ByteBuffer(bytes: first)))
                    guard case .binary(let buffer)? = try await inbound.next() else { throw RawClientError.closedBeforeReady }
                    let second = Array(buffer.readableBytesView)
                    try handshake.read(second)
                    let third = try handshake.write()
                    try await outbound.write(.binary(ByteBuffer(bytes: third)))
                    var transport = try handshake.finish()
                    for message in try transport.seal(SyncFraming.frame(.hello(Hello(holder: identity.id, groups: [])))) {
                        try await outbound.write(.binary(ByteBuffer(bytes: message)))
                    }
                    // The relay's hello: the link was served.
                    guard case .binary(let reply)? = try await inbound.next() else { throw RawClientError.closedBeforeReady }
                    var reader = SyncFrameReader()
                    reader.append(try transport.open(Array(reply.readableBytesView)))
                    guard case .hello(let hello)? = try reader.next() else { throw RawClientError.closedBeforeReady }
                    #expect(hello.holder == relayID)
                    return (first, second, third)
                }

                /// Replays messages 1 and 3; returns what the relay sent after its message 2 and whether it closed.
                @Sendable func replay(waitForSecond: Bool) async throws -> (second: [UInt8]?, after: Int, closed: Bool) {
                    try await withRawSocket(port: relay.port) { inbound, outbound in
                        try await outbound.write(.binary(ByteBuffer(bytes: recorded.0)))
                        var second: [UInt8]?
                        if waitForSecond, case .binary(let buffer)? = try await inbound.next() { second = Array(buffer.readableBytesView) }
                        try await outbound.write(.binary(ByteBuffer(bytes: recorded.2)))
                        // Then a hello sealed under the old link's keys.
                        var after = 0
                        while true {
                            let message: WebSocketMessage?
                            do { message = try await inbound.next() } catch { return (second, after, true) }
                            guard let message else { return (second, after, true) }
                            if !waitForSecond, second == nil, case .binary(let buffer) = message {
                                second = Array(buffer.readableBytesView)
                                continue
                            }
                            after += 1
                        }
                    }
                }
                for waitForSecond in [true, false] {
                    let result = try await replay(waitForSecond: waitForSecond)
                    #expect(result.second != nil, "the relay answers message 1 with a fresh message 2")
                    #expect(result.second != recorded.1, "its ephemeral key is fresh")
                    #expect(result.closed, "the relay closes the connection")
                    #expect(result.after == 0, "nothing is served after the failed handshake")
                }
            }
        }
    }

    @Test("a non-participant can neither read nor write a group: empty answers, unauthorized, nothing stored", .timeLimit(.minutes(5)))
    func nonParticipant() async throws {
        try await withRelayProcess([]) { relay in
            let pair = try await HonestPair.make(at: relay.address)
            let group = pair.group
            let intruderKey = randomIdentity()
            let aliceID = try pair.alice.me().id
            let bobID = try pair.bob.me().id
            var random = SystemRandomNumberGenerator()
            let unknown = GroupID(random.bytes32())
            try await whileHonestPairTalks(pair, label: "a non-participant") {
                // Reads: what comes back for the group is exactly what comes back for a group that does not exist.
                func probe(_ target: GroupID) async throws -> [SyncMessage] {
                    let intruder = try await RawLinkClient.connect(port: relay.port, relay: relay.address.relay, identity: intruderKey)
                    try await intruder.hello([target])
                    try await intruder.send([
                        .have(target, Frontier()), .want(target, ranges: [SeqRange(sender: aliceID, from: 1, through: 1_000)], hashes: []),
                        .subscribe(target),
                    ])
                    #expect(await intruder.ping())
                    let messages = intruder.messages
                    await intruder.close()
                    return messages
                }
                let existing = try await probe(group)
                let absent = try await probe(unknown)
                #expect(existing.wires(of: group).isEmpty)
                #expect(existing.filter { if case .hello = $0 { false } else { true } } == [.have(group, Frontier()), .pong(1_000_001)])
                #expect(absent.filter { if case .hello = $0 { false } else { true } } == [.have(unknown, Frontier()), .pong(1_000_001)])

                // Writes: its own envelopes, a genuine member's, as envelopes or push: unauthorized.
                let own = Forge.applications(identity: intruderKey, group: group, from: 1, prev: nil, count: 3).map(\.wireBytes)
                let genuine = try pair.alice.log(of: group, after: 0).wires
                for message in [SyncMessage.envelopes(group, own), .push(group, own), .envelopes(group, genuine)] {
                    let intruder = try await RawLinkClient.connect(port: relay.port, relay: relay.address.relay, identity: intruderKey)
                    try await intruder.hello([group])
                    try await intruder.send([message])
                    let outcome = await intruder.outcome()
                    #expect(outcome.code == .unauthorized, "\(outcome)")
                    #expect(await intruder.closed())
                    #expect(acknowledged(intruder.messages, group).isEmpty)
                    await intruder.close()
                }
            }
            // Nothing of the intruder's reached the members: Bob's log and everything the relay serves Alice.
            _ = try await pair.sync(pair.bob)
            let senders = Set(try pair.bob.log(of: group, after: 0).wires.map { try Envelope(wire: $0, groupID: group).sender })
            #expect(senders.isSubset(of: [aliceID, bobID]))
            let alice = try await RawLinkClient.connect(port: relay.port, relay: relay.address.relay, identity: try pair.alice.identityKey())
            try await alice.hello([group])
            try await alice.send([.have(group, Frontier())])
            #expect(await alice.ping())
            let served = try alice.messages.wires(of: group).map { try Envelope(wire: $0, groupID: group) }
            #expect(!served.isEmpty)
            #expect(!served.contains { $0.sender == intruderKey.id })
            await alice.close()
        }
    }

    @Test("a handshake that never completes is closed after the handshake time limit", .timeLimit(.minutes(5)))
    func handshakeTimeout() async throws {
        try await withRelayProcess(["--handshake-seconds", "2"]) { relay in
            let pair = try await HonestPair.make(at: relay.address)
            // An authenticated link is not subject to the handshake limit.
            let good = try await RawLinkClient.connect(port: relay.port, relay: relay.address.relay, identity: randomIdentity())
            try await good.hello()
            try await whileHonestPairTalks(pair, label: "stalled handshakes") {
                // A WebSocket that never sends message 1.
                let started = ContinuousClock.now
                let silent = try await RawLinkClient.connect(port: relay.port, relay: relay.address.relay, identity: nil)
                #expect(await silent.closed(within: .seconds(60)), "closed after the limit")
                let silentTime = started.duration(to: .now)
                #expect(silentTime >= .milliseconds(1_500), "not before the limit: \(silentTime)")
                #expect(!silent.received.contains { if case .binary = $0 { true } else { false } })
                await silent.close()
                // One that sends message 1 and stops.
                let identity = randomIdentity()
                let relayID = relay.address.relay
                let halfway = ContinuousClock.now
                let (answered, closed) = try await withRawSocket(port: relay.port, timeout: .seconds(60)) { inbound, outbound in
                    var random = SystemRandomNumberGenerator()
                    var handshake = try LinkHandshake.initiator(identity: identity, expectedPeer: relayID, random: &random)
                    try await outbound.write(.binary(ByteBuffer(bytes: try handshake.write())))
                    var frames = 0
                    while true {
                        let message: WebSocketMessage?
                        do { message = try await inbound.next() } catch { return (frames, true) }
                        guard message != nil else { return (frames, true) }
                        frames += 1
                    }
                }
                let halfwayTime = halfway.duration(to: .now)
                print("handshake timeout (2 s): silent connection closed after \(silentTime), half a handshake after \(halfwayTime)")
                #expect(closed)
                #expect(answered == 1, "message 2 only")
                #expect(halfwayTime >= .milliseconds(1_500))
            }
            #expect(await good.ping(), "the authenticated link outlived the handshake limit")
            await good.close()
        }
    }
}
