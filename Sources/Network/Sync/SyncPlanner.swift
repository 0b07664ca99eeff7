public import DCGKAEncoding
public import CausalBroadcast

/// What one holder holds of one group, as sync needs it (NETWORK.md §11.1): per sender, the
/// hash at each seq it holds, and the heads it counts as held without holding them (a member
/// that joined by a welcome needs nothing up to its welcome's frontier; a device counts what its
/// group delivered).
public struct Holdings: Sendable, Equatable {
    public var chains: [MemberID: [UInt64: Bytes32]]
    public var assumed: Frontier

    public init(chains: [MemberID: [UInt64: Bytes32]] = [:], assumed: Frontier = Frontier()) {
        self.chains = chains
        self.assumed = assumed
    }

    public mutating func insert(sender: MemberID, seq: UInt64, hash: Bytes32) {
        chains[sender, default: [:]][seq] = hash
    }

    /// The version vector: per sender, the highest seq held without a gap from the start of its
    /// chain (seq 1, or the assumed head), and that envelope's hash. A sender whose held envelopes
    /// all lie above a gap is left out, so a peer sends its whole chain (PROTOCOL-NOTES.md, "Sync").
    public func vector() -> Frontier {
        var heads: [MemberID: Frontier.Head] = [:]
        for sender in Set(chains.keys).union(assumed.heads.keys) {
            let chain = chains[sender] ?? [:]
            var head = assumed.heads[sender]
            var seq = head?.seq ?? 0
            while let hash = chain[seq + 1] {
                seq += 1
                head = Frontier.Head(seq: seq, hash: hash)
            }
            if let head { heads[sender] = head }
        }
        return Frontier(heads: heads)
    }
}

/// A sender's two different envelopes at one seq: proof that it equivocated (PROTOCOL.md §6.2).
public struct Fork: Hashable, Sendable {
    public var sender: MemberID
    public var seq: UInt64
    public var mine: Bytes32
    public var theirs: Bytes32
}

/// Decides what to give a peer from what it says it holds. Pure.
public enum SyncPlanner {
    public struct Plan: Sendable, Equatable {
        /// What the peer lacks, per sender in seq order (senders in ID order).
        public var send: [EnvelopeReference] = []
        /// Where the peer's head contradicts what I hold: answer with `evidence`.
        public var forks: [Fork] = []
    }

    public static func plan(_ mine: Holdings, peer: Frontier) -> Plan {
        var plan = Plan()
        for sender in mine.chains.keys.sorted() {
            let chain = mine.chains[sender] ?? [:]
            var after: UInt64 = 0
            if let head = peer.heads[sender] {
                after = head.seq
                if let hash = chain[head.seq], hash != head.hash {
                    plan.forks.append(Fork(sender: sender, seq: head.seq, mine: hash, theirs: head.hash))
                }
            }
            for (seq, hash) in chain.sorted(by: { $0.key < $1.key }) where seq > after {
                plan.send.append(EnvelopeReference(sender: sender, seq: seq, hash: hash))
            }
        }
        return plan
    }

    /// The ranges below a held envelope that I lack (to ask for with `want`).
    public static func gaps(_ mine: Holdings) -> [SeqRange] {
        var ranges: [SeqRange] = []
        let vector = mine.vector()
        for sender in mine.chains.keys.sorted() {
            let seqs = (mine.chains[sender] ?? [:]).keys.sorted()
            var expected = (vector.heads[sender]?.seq ?? 0) + 1
            for seq in seqs where seq >= expected {
                if seq > expected { ranges.append(SeqRange(sender: sender, from: expected, through: seq - 1)) }
                expected = seq + 1
            }
        }
        return ranges
    }
}
