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
