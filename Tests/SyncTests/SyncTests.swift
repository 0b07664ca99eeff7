import Testing
import DCGKAEncoding
import DCGKACrypto
import CausalBroadcast
@testable import Sync

/// NETWORK.md §11: the messages, their framing, and what a holder sends a peer.
@Suite struct SyncMessageTests {
    static func id(_ n: UInt8) -> MemberID { MemberID(Bytes32(Array(repeating: n, count: 32))!) }
    static func group(_ n: UInt8) -> GroupID { GroupID(Bytes32(Array(repeating: n, count: 32))!) }
    static func hash(_ n: UInt64) -> Bytes32 {
        var rng = SeededRandom(seed: n &+ 0x5151)
        return rng.bytes32()
    }

    static let samples: [SyncMessage] = [
        .hello(Hello(holder: id(1), groups: [group(2), group(3)])),
        .invited([group(4)]),
        .have(group(2), Frontier(heads: [id(1): .init(seq: 7, hash: hash(7)), id(9): .init(seq: 1, hash: hash(1))])),
        .want(group(2), ranges: [SeqRange(sender: id(1), from: 2, through: 5)], hashes: [hash(3)]),
        .summary(group(2), count: 10, bytes: 12_345),
        .envelopes(group(2), [[1, 2, 3], [], Array(repeating: 7, count: 300)]),
        .ack(group(2), [hash(1), hash(2)]),
        .subscribe(group(2)),
        .push(group(2), [[9, 9]]),
        .pruned(group(2), [SeqRange(sender: id(3), from: 1, through: 1)]),
        .evidence(group(2), [1], [2]),
        .error(.rateLimited, "slow down"),
        .grant(Grant(group: group(2), holder: id(7), notAfter: 99, granter: IdentityKey(seed: Bytes32(Array(repeating: 3, count: 32))!))),
    ]

    @Test("every message round-trips through its canonical encoding and a frame")
    func roundTrip() throws {
        for message in Self.samples {
            #expect(try SyncMessage(wireBytes: message.wireBytes) == message)
            var reader = SyncFrameReader()
            reader.append(SyncFraming.frame(message))
            #expect(try reader.next() == message)
            #expect(try reader.next() == nil)
            #expect(reader.isAtFrameBoundary)
        }
    }

    @Test("frames split at every byte boundary reassemble")
    func framesInPieces() throws {
        let stream = Self.samples.flatMap(SyncFraming.frame)
        var rng = SeededRandom(seed: 11)
        for _ in 0..<50 {
            var reader = SyncFrameReader()
            var received: [SyncMessage] = []
            var offset = 0
            while offset < stream.count {
                let step = Int(rng.next() % 40) + 1
                reader.append(stream[offset..<min(stream.count, offset + step)])
                offset += step
                while let message = try reader.next() { received.append(message) }
            }
            #expect(received == Self.samples)
            #expect(reader.bufferedBytes == 0)
        }
    }

    @Test("a frame longer than the limit is refused from its length alone, before its body arrives")
    func oversizedFrame() throws {
        var reader = SyncFrameReader(maximumFrameBytes: 1024)
        var writer = WireWriter()
        writer.writeVarint(UInt64(1 << 30))
        reader.append(writer.bytes)
        #expect(throws: SyncFrameError.frameTooLarge(limit: 1024, announced: 1 << 30)) { try reader.next() }
        // No limit above the hard one is accepted.
        #expect(SyncFrameReader(maximumFrameBytes: Int.max).maximumFrameBytes == SyncFraming.hardMaximumFrameBytes)
        var padded = SyncFrameReader()
        padded.append([0x80, 0x00])  // zero in two bytes: not the shortest form
        #expect(throws: SyncFrameError.malformedLength) { try padded.next() }
    }

    @Test("decoding is total: truncations, bit flips and random bytes give typed errors, never a crash")
    func totality() {
        var rng = SeededRandom(seed: 5)
        for message in Self.samples {
            let bytes = message.wireBytes
            for cut in 0..<bytes.count { _ = try? SyncMessage(wireBytes: Array(bytes[0..<cut])) }
            for _ in 0..<64 {
                var flipped = bytes
                let index = Int(rng.next() % UInt64(flipped.count))
                flipped[index] ^= UInt8(1 << (rng.next() % 8))
                _ = try? SyncMessage(wireBytes: flipped)
            }
        }
        for _ in 0..<2000 {
            let count = Int(rng.next() % 64)
            let bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            _ = try? SyncMessage(wireBytes: bytes)
            var reader = SyncFrameReader(maximumFrameBytes: 4096)
            reader.append(bytes)
            while (try? reader.next()) != nil {}
        }
    }

    @Test("error texts: invalid UTF-8 is refused (fuzz finding), long texts are cut at a character boundary")
    func errorText() throws {
        let found: [UInt8] = [0x0c, 0x00, 0x05, 0x09, 0x07, 0xf3, 0x6f, 0x77, 0x20, 0x64, 0x6f, 0x77, 0x6e]
        #expect(throws: WireError.invalidValue(field: "error.text")) { try SyncMessage(wireBytes: found) }
        let long = String(repeating: "é", count: 2000)
        let message = SyncMessage.error(.internal, long)
        guard case .error(_, let text) = try SyncMessage(wireBytes: message.wireBytes) else { Issue.record("not an error"); return }
        #expect(text == String(repeating: "é", count: SyncMessage.maximumErrorText / 2))
    }

    @Test("a huge announced count in a small message is refused without allocating for it")
    func hugeCount() {
        var writer = WireWriter()
        writer.writeUInt8(6)  // envelopes
        Self.group(1).encode(to: &writer)
        writer.writeVarint(UInt64(SyncMessage.maximumItems))
        #expect(throws: WireError.truncated) { try SyncMessage(wireBytes: writer.bytes) }
    }
}

/// Property tests of the planner with two and three holders: random chains, random holdings
/// with gaps, duplicates and forks.
@Suite struct SyncPlannerTests {
    struct Truth {
        var chains: [MemberID: [Bytes32]]
    }

    static func randomTruth(_ rng: inout SeededRandom, senders: Int) -> Truth {
        var chains: [MemberID: [Bytes32]] = [:]
        for s in 0..<senders {
            let length = Int(rng.next() % 30) + 1
            chains[SyncMessageTests.id(UInt8(s + 1))] = (0..<length).map { _ in rng.bytes32() }
        }
        return Truth(chains: chains)
    }

    /// A holder with a random part of the truth: a contiguous prefix per sender plus random
    /// envelopes above a gap.
    static func randomHolder(_ truth: Truth, _ rng: inout SeededRandom) -> Holdings {
        var holdings = Holdings()
        for (sender, chain) in truth.chains {
            let prefix = Int(rng.next() % UInt64(chain.count + 1))
            for seq in 0..<prefix { holdings.insert(sender: sender, seq: UInt64(seq + 1), hash: chain[seq]) }
            for seq in prefix..<chain.count where rng.next() % 3 == 0 {
                holdings.insert(sender: sender, seq: UInt64(seq + 1), hash: chain[seq])
            }
        }
        return holdings
    }

    /// Gives `to` what `from` plans for it, then what `to` asks for with `want` (its gaps).
    static func sync(_ from: Holdings, into to: inout Holdings) {
        let plan = SyncPlanner.plan(from, peer: to.vector())
        #expect(plan.forks.isEmpty)
        for reference in plan.send { to.insert(sender: reference.sender, seq: reference.seq, hash: reference.hash) }
        for range in SyncPlanner.gaps(to) {
            for seq in range.from...range.through {
                if let hash = from.chains[range.sender]?[seq] { to.insert(sender: range.sender, seq: seq, hash: hash) }
            }
        }
    }

    static func union(_ holders: [Holdings]) -> [MemberID: [UInt64: Bytes32]] {
        var all: [MemberID: [UInt64: Bytes32]] = [:]
        for holder in holders { all.merge(holder.chains) { $0.merging($1) { a, _ in a } } }
        return all
    }

    @Test("after one exchange each way, two holders hold the union; a second exchange sends nothing new", arguments: 0..<40)
    func twoHolders(seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        let truth = Self.randomTruth(&rng, senders: Int(rng.next() % 5) + 1)
        var a = Self.randomHolder(truth, &rng)
        var b = Self.randomHolder(truth, &rng)
        let expected = Self.union([a, b])
        Self.sync(a, into: &b)
        Self.sync(b, into: &a)
        #expect(a.chains == expected)
        #expect(b.chains == expected)
        // Above a gap nobody can fill, a vector cannot say what is held, so such envelopes are
        // offered again (and dropped by hash); nothing else is.
        for reference in SyncPlanner.plan(a, peer: b.vector()).send {
            #expect(b.chains[reference.sender]?[reference.seq] == reference.hash)
            #expect(reference.seq > (b.vector().heads[reference.sender]?.seq ?? 0) + 1)
        }
        #expect(SyncPlanner.gaps(a) == SyncPlanner.gaps(b))
    }

    @Test("three holders in a line A–B–C converge through B (the mesh rule)", arguments: 0..<30)
    func threeHolders(seed: UInt64) {
        var rng = SeededRandom(seed: 1000 + seed)
        let truth = Self.randomTruth(&rng, senders: Int(rng.next() % 4) + 2)
        var a = Self.randomHolder(truth, &rng)
        var b = Self.randomHolder(truth, &rng)
        var c = Self.randomHolder(truth, &rng)
        let expected = Self.union([a, b, c])
        Self.sync(a, into: &b)
        Self.sync(c, into: &b)
        Self.sync(b, into: &a)
        Self.sync(b, into: &c)
        #expect(a.chains == expected)
        #expect(b.chains == expected)
        #expect(c.chains == expected)
    }

    @Test("a joiner's assumed frontier counts as held: nobody sends it the history before its add")
    func assumedFrontier() {
        var rng = SeededRandom(seed: 77)
        let truth = Self.randomTruth(&rng, senders: 3)
        var full = Holdings()
        for (sender, chain) in truth.chains {
            for (index, hash) in chain.enumerated() { full.insert(sender: sender, seq: UInt64(index + 1), hash: hash) }
        }
        var joiner = Holdings()
        var heads: [MemberID: Frontier.Head] = [:]
        for (sender, chain) in truth.chains {
            let at = (chain.count + 1) / 2
            heads[sender] = Frontier.Head(seq: UInt64(at), hash: chain[at - 1])
        }
        joiner.assumed = Frontier(heads: heads)
        let plan = SyncPlanner.plan(full, peer: joiner.vector())
        for reference in plan.send { #expect(reference.seq > heads[reference.sender]!.seq) }
        #expect(plan.send.count == truth.chains.values.reduce(0) { $0 + $1.count - ($1.count + 1) / 2 })
    }

    @Test("a peer whose head differs from mine at the same seq is a fork, reported before any transfer")
    func forkAtHead() {
        let sender = SyncMessageTests.id(1)
        var mine = Holdings()
        var theirs = Holdings()
        for seq in 1...3 {
            mine.insert(sender: sender, seq: UInt64(seq), hash: SyncMessageTests.hash(UInt64(seq)))
            theirs.insert(sender: sender, seq: UInt64(seq), hash: SyncMessageTests.hash(UInt64(seq)))
        }
        theirs.insert(sender: sender, seq: 4, hash: SyncMessageTests.hash(400))
        mine.insert(sender: sender, seq: 4, hash: SyncMessageTests.hash(4))
        let plan = SyncPlanner.plan(mine, peer: theirs.vector())
        #expect(plan.forks == [Fork(sender: sender, seq: 4, mine: SyncMessageTests.hash(4), theirs: SyncMessageTests.hash(400))])
        #expect(plan.send.isEmpty)
    }

    @Test("gaps lists exactly the missing runs below held envelopes")
    func gaps() {
        let sender = SyncMessageTests.id(2)
        var holdings = Holdings()
        for seq: UInt64 in [1, 2, 5, 9] { holdings.insert(sender: sender, seq: seq, hash: SyncMessageTests.hash(seq)) }
        #expect(SyncPlanner.gaps(holdings) == [
            SeqRange(sender: sender, from: 3, through: 4), SeqRange(sender: sender, from: 6, through: 8),
        ])
        #expect(holdings.vector().heads[sender]?.seq == 2)
    }
}

/// Grants (§11.2): a participant lets a relay or carrier have a group's envelopes.
@Suite struct GrantTests {
    @Test("a grant verifies for a participant granter until it expires; anything else is refused")
    func grants() throws {
        var rng = SeededRandom(seed: 4)
        let alice = IdentityKey.generate(using: &rng)
        let mallory = IdentityKey.generate(using: &rng)
        let relay = IdentityKey.generate(using: &rng).id
        let group = SyncMessageTests.group(9)
        let grant = Grant(group: group, holder: relay, notAfter: 1000, granter: alice)
        let participants: Set = [alice.id]
        try grant.verify(now: 1000, isParticipant: participants.contains)
        #expect(throws: GrantError.expired(notAfter: 1000)) { try grant.verify(now: 1001, isParticipant: participants.contains) }
        let stranger = Grant(group: group, holder: relay, notAfter: 1000, granter: mallory)
        #expect(throws: GrantError.granterNotParticipant) { try stranger.verify(now: 0, isParticipant: participants.contains) }
        // Another holder, group or expiry under Alice's signature does not verify.
        var bytes = grant.wireBytes
        bytes[40] ^= 1  // inside the holder
        let forged = try Grant(wireBytes: bytes)
        #expect(throws: GrantError.badSignature) { try forged.verify(now: 0, isParticipant: participants.contains) }
        #expect(try Grant(wireBytes: grant.wireBytes) == grant)
    }
}

/// A holder of fake envelopes for session tests: a wire is `sender ‖ seq (8) ‖ hash`.
final class MemoryHolder: SyncHolder {
    let me: MemberID
    var holdings = Holdings()
    var participants: [GroupID: Set<MemberID>] = [:]
    let group: GroupID
    var forks: [[UInt8]] = []

    init(me: MemberID, group: GroupID, holdings: Holdings, participants: Set<MemberID>) {
        self.me = me
        self.group = group
        self.holdings = holdings
        self.participants[group] = participants
    }

    static func wire(_ sender: MemberID, _ seq: UInt64, _ hash: Bytes32) -> [UInt8] {
        var writer = WireWriter()
        writer.write(sender)
        writer.writeUInt64(seq)
        writer.write(hash)
        return writer.bytes
    }

    func groups(sharedWith peer: MemberID) throws -> [GroupID] {
        participants.filter { $0.value.contains(peer) }.map(\.key)
    }

    func holdings(of group: GroupID) throws -> Holdings { holdings }

    func wires(of group: GroupID, _ references: [EnvelopeReference]) throws -> [[UInt8]] {
        references.filter { holdings.chains[$0.sender]?[$0.seq] == $0.hash }.map { Self.wire($0.sender, $0.seq, $0.hash) }
    }

    func wire(of group: GroupID, sender: MemberID, seq: UInt64) throws -> [UInt8]? {
        holdings.chains[sender]?[seq].map { Self.wire(sender, seq, $0) }
    }

    /// Stores what arrived; a different hash at a held position is a fork, kept apart.
    func store(_ wires: [[UInt8]]) throws -> [Bytes32] {
        var stored: [Bytes32] = []
        for wire in wires {
            var reader = WireReader(wire)
            let sender = try reader.read(MemberID.self)
            let seq = try reader.readUInt64()
            let hash = try reader.read(Bytes32.self)
            if let held = holdings.chains[sender]?[seq] {
                if held != hash { forks.append(wire) }
                continue
            }
            holdings.insert(sender: sender, seq: seq, hash: hash)
            stored.append(hash)
        }
        return stored
    }
}

/// Two sessions talking over in-memory queues until neither has anything to say.
func runLink(_ a: MemoryHolder, _ b: MemoryHolder, wantedByA: [GroupID], wantedByB: [GroupID]) async throws -> (messages: Int, acks: Int, invited: [GroupID]) {
    var sessionA = SyncSession(me: a.me, wanted: wantedByA)
    var sessionB = SyncSession(me: b.me, wanted: wantedByB)
    var toB: [SyncMessage] = []
    var toA: [SyncMessage] = []
    var messages = 0, acks = 0
    var invited: [GroupID] = []
    func handle(_ outputs: [SyncSession.Output], holder: MemoryHolder, session: inout SyncSession, outbox: inout [SyncMessage]) async throws {
        var pending = outputs
        while !pending.isEmpty {
            let output = pending.removeFirst()
            switch output {
            case .send(let message):
                // Every message goes through its frame, as on a real link.
                var reader = SyncFrameReader()
                reader.append(SyncFraming.frame(message))
                outbox.append(try #require(try reader.next()))
            case .deliver(let group, let wires):
                let stored = try holder.store(wires)
                pending += try await session.committed(group, hashes: stored, holder: holder)
            case .acknowledged:
                acks += 1
            case .invited(let groups):
                invited += groups
            case .prunedAtPeer, .closed, .subscribed, .granted, .pong, .bundles, .bundlesRequested:
                break
            }
        }
    }
    try await handle(sessionA.start(), holder: a, session: &sessionA, outbox: &toB)
    try await handle(sessionB.start(), holder: b, session: &sessionB, outbox: &toA)
    var rounds = 0
    while !toA.isEmpty || !toB.isEmpty {
        rounds += 1
        #expect(rounds < 1000, "the link does not quiesce")
        if rounds >= 1000 { break }
        let forB = toB
        toB = []
        for message in forB {
            messages += 1
            try await handle(try await sessionB.receive(message, holder: b), holder: b, session: &sessionB, outbox: &toA)
        }
        let forA = toA
        toA = []
        for message in forA {
            messages += 1
            try await handle(try await sessionA.receive(message, holder: a), holder: a, session: &sessionA, outbox: &toB)
        }
    }
    return (messages, acks, invited)
}

@Suite struct SyncSessionTests {
    static let group = SyncMessageTests.group(5)

    @Test("two holders with random logs (gaps, duplicates) converge over one link, every delivery acknowledged", arguments: 0..<25)
    func twoHolders(seed: UInt64) async throws {
        var rng = SeededRandom(seed: 500 + seed)
        let truth = SyncPlannerTests.randomTruth(&rng, senders: Int(rng.next() % 4) + 1)
        let a = MemoryHolder(me: SyncMessageTests.id(201), group: Self.group, holdings: SyncPlannerTests.randomHolder(truth, &rng), participants: [])
        let b = MemoryHolder(me: SyncMessageTests.id(202), group: Self.group, holdings: SyncPlannerTests.randomHolder(truth, &rng), participants: [])
        a.participants[Self.group] = [a.me, b.me]
        b.participants[Self.group] = [a.me, b.me]
        let expected = SyncPlannerTests.union([a.holdings, b.holdings])
        let result = try await runLink(a, b, wantedByA: [Self.group], wantedByB: [Self.group])
        #expect(a.holdings.chains == expected)
        #expect(b.holdings.chains == expected)
        #expect(a.forks.isEmpty && b.forks.isEmpty)
        // Running the link again moves no envelope that is new to anyone.
        let before = (a.holdings, b.holdings)
        _ = try await runLink(a, b, wantedByA: [Self.group], wantedByB: [Self.group])
        #expect(a.holdings == before.0 && b.holdings == before.1)
        _ = result
    }

    @Test("three holders in a line converge through the middle one, which forwards what it got (the mesh rule)", arguments: 0..<15)
    func threeHolders(seed: UInt64) async throws {
        var rng = SeededRandom(seed: 900 + seed)
        let truth = SyncPlannerTests.randomTruth(&rng, senders: 3)
        let ids = [SyncMessageTests.id(211), SyncMessageTests.id(212), SyncMessageTests.id(213)]
        let holders = ids.map { MemoryHolder(me: $0, group: Self.group, holdings: SyncPlannerTests.randomHolder(truth, &rng), participants: Set(ids)) }
        let expected = SyncPlannerTests.union(holders.map(\.holdings))
        _ = try await runLink(holders[0], holders[1], wantedByA: [Self.group], wantedByB: [Self.group])
        _ = try await runLink(holders[1], holders[2], wantedByA: [Self.group], wantedByB: [Self.group])
        _ = try await runLink(holders[0], holders[1], wantedByA: [Self.group], wantedByB: [Self.group])
        for holder in holders { #expect(holder.holdings.chains == expected) }
    }

    @Test("a holder that may not have a group gets nothing, not even its existence; a participant that did not ask is told it is invited")
    func authorization() async throws {
        var rng = SeededRandom(seed: 31)
        let truth = SyncPlannerTests.randomTruth(&rng, senders: 2)
        var full = Holdings()
        for (sender, chain) in truth.chains {
            for (index, hash) in chain.enumerated() { full.insert(sender: sender, seq: UInt64(index + 1), hash: hash) }
        }
        let member = SyncMessageTests.id(221), stranger = SyncMessageTests.id(222), invitee = SyncMessageTests.id(223)
        let a = MemoryHolder(me: member, group: Self.group, holdings: full, participants: [member, invitee])
        let outsider = MemoryHolder(me: stranger, group: SyncMessageTests.group(6), holdings: Holdings(), participants: [])
        let result = try await runLink(a, outsider, wantedByA: [Self.group], wantedByB: [Self.group])
        #expect(outsider.holdings.chains.isEmpty)
        #expect(result.invited.isEmpty)
        let newcomer = MemoryHolder(me: invitee, group: SyncMessageTests.group(7), holdings: Holdings(), participants: [])
        let joined = try await runLink(a, newcomer, wantedByA: [], wantedByB: [])
        #expect(joined.invited == [Self.group])
    }

    @Test("a fork at the peer's head is answered with my envelope at that seq, so the peer holds the evidence")
    func forkEvidence() async throws {
        let sender = SyncMessageTests.id(1)
        var mine = Holdings(), theirs = Holdings()
        for seq: UInt64 in 1...3 {
            mine.insert(sender: sender, seq: seq, hash: SyncMessageTests.hash(seq))
            theirs.insert(sender: sender, seq: seq, hash: SyncMessageTests.hash(seq))
        }
        mine.insert(sender: sender, seq: 4, hash: SyncMessageTests.hash(4))
        theirs.insert(sender: sender, seq: 4, hash: SyncMessageTests.hash(44))
        let ids: Set = [SyncMessageTests.id(231), SyncMessageTests.id(232)]
        let a = MemoryHolder(me: SyncMessageTests.id(231), group: Self.group, holdings: mine, participants: ids)
        let b = MemoryHolder(me: SyncMessageTests.id(232), group: Self.group, holdings: theirs, participants: ids)
        _ = try await runLink(a, b, wantedByA: [Self.group], wantedByB: [Self.group])
        #expect(b.forks == [MemoryHolder.wire(sender, 4, SyncMessageTests.hash(4))])
        #expect(a.forks == [MemoryHolder.wire(sender, 4, SyncMessageTests.hash(44))])
    }

    @Test("the first message must be hello; a wrong version ends the link with a typed error")
    func handshake() async throws {
        let holder = MemoryHolder(me: SyncMessageTests.id(1), group: Self.group, holdings: Holdings(), participants: [])
        var session = SyncSession(me: holder.me, wanted: [])
        #expect(try await session.receive(.ack(Self.group, []), holder: holder) == [.send(.error(.malformed, "the first message must be hello"))])
        #expect(session.isClosed)
        var other = SyncSession(me: holder.me, wanted: [])
        let outputs = try await other.receive(.hello(Hello(version: 9, holder: SyncMessageTests.id(2), groups: [])), holder: holder)
        #expect(outputs == [.send(.error(.unsupportedVersion, "version 9"))])
    }
}

/// NETWORK.md §13.1 addresses (finding F4 of the `link` fuzz target: a host with control
/// characters was accepted and did not print back as it was read).
@Suite struct RelayAddressTests {
    static let id = RelayAddress.encode(SyncMessageTests.id(7))

    @Test("names, IPv4 and bracketed IPv6 hosts parse and print back as they were read")
    func roundTrip() throws {
        for text in ["dcgka-relay://127.0.0.1:7447/\(Self.id)", "dcgka-relay://relay.example-news.org:443/\(Self.id)",
                     "dcgka-relay://[::1]:7447/\(Self.id)", "dcgka-relay://[fe80::1:2]:9/\(Self.id)"] {
            let address = try RelayAddress(parsing: text)
            #expect(address.description == text)
            #expect(try RelayAddress(parsing: address.description) == address)
        }
        #expect(try RelayAddress(parsing: "dcgka-relay://[::1]:7447/\(Self.id)").host == "::1")
    }

    @Test("control characters, bad hosts, ports and IDs are refused in words")
    func refusals() {
        for text in ["dcgka-relay://:6\u{0}\u{0}:7/\(Self.id)", "dcgka-relay://a\u{7}b:7447/\(Self.id)", "dcgka-relay://a b:7447/\(Self.id)",
                     "dcgka-relay://::1:7447/\(Self.id)", "dcgka-relay://[zz::1]:7447/\(Self.id)", "dcgka-relay://[]:7447/\(Self.id)",
                     "dcgka-relay://host:0/\(Self.id)", "dcgka-relay://host:70000/\(Self.id)", "dcgka-relay://host/\(Self.id)",
                     "http://host:7447/\(Self.id)", "dcgka-relay://host:7447/abc", "dcgka-relay://h\u{e9}:7447/\(Self.id)"] {
            #expect(throws: RelayAddressError.self, "\(text.debugDescription)") { try RelayAddress(parsing: text) }
        }
    }
}
