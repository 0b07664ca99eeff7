public import DCGKAEncoding
@_spi(Simulation) public import CausalBroadcast
public import DCGKACrypto
@_spi(Simulation) internal import KeyAgreement
internal import Membership

// §6.2's equivocation rule (PROTOCOL-NOTES.md, "Equivocation"):
//
// 1. A member that holds a fork of E (two signed headers, ``ForkEvidence``) keeps it, cuts E off
//    in its broadcast layer from the forked seq (nothing of E from there is delivered, and
//    acknowledgments of those positions stop waiting), and passes the evidence on.
// 2. The member with the smallest ID in its view, E and known equivocators left out, removes E at
//    once with a remove that carries the evidence; every other member holding evidence does so
//    when its host's delay passes and E is still in its view.
// 3. Such a remove cuts E's operations from the forked seq off in every view that knows it, at
//    every member alike: both sides of the fork, whatever each member had delivered.
// 4. Ratchet steps of the honest acknowledgments of the two sides are lost across them; the
//    epoch confirmations say so, and §5.7's resync repairs them.

extension Group {
    /// Keeps evidence that a member equivocated (from my own broadcast layer, from a host that
    /// stores envelopes and found a fork, or passed on by another holder): checked (same group,
    /// both signatures), kept once per equivocator (the lower cut wins), and the equivocator is cut
    /// off in my broadcast layer. Returns whether it was news.
    @discardableResult
    public mutating func noteFork(_ evidence: ForkEvidence) -> Bool {
        guard evidence.first.groupID == groupID, evidence.first.suite == suite, evidence.sender != me else { return false }
        // Held already (the same fork passed on again): no signature is checked twice.
        if let held = forkEvidence[evidence.sender], held.cutSeq <= evidence.cutSeq { return false }
        guard evidence.verify() else { return false }
        forkEvidence[evidence.sender] = evidence
        broadcast.cut(evidence.sender, from: evidence.cutSeq)
        return true
    }

    /// The position I hold that `envelope` (refused as equivocation) contradicts: its own seq, or
    /// for a `prev` that names something else, the one before. A host that stores envelopes
    /// fetches that envelope and hands both to ``noteFork(_:)``.
    public func forkCounterpart(of envelope: Envelope) -> EnvelopeReference? {
        if let held = broadcast.knownHash(of: envelope.sender, at: envelope.seq), held != envelope.hash {
            return EnvelopeReference(sender: envelope.sender, seq: envelope.seq, hash: held)
        }
        if envelope.seq > 1, let before = broadcast.knownHash(of: envelope.sender, at: envelope.seq - 1), before != envelope.prev {
            return EnvelopeReference(sender: envelope.sender, seq: envelope.seq - 1, hash: before)
        }
        return nil
    }

    /// Equivocators I hold evidence of that are still in my view: each is to be removed by a
    /// remove that carries the evidence (``remove(_:prekeys:now:using:)`` puts it in).
    public var equivocatorsToRemove: [MemberID] { isMember ? equivocatorsInView : [] }

    /// Equivocators I hold evidence of that are in my view, whether or not I am a member.
    var equivocatorsInView: [MemberID] {
        guard !forkEvidence.isEmpty else { return [] }
        let members = members
        return forkEvidence.keys.filter { members.contains($0) }.sorted()
    }

    /// Whether I am the member that removes `equivocator` at once: the smallest ID in my view
    /// once every equivocator I know of is left out. The others wait for their host's delay, so
    /// that one remove usually does it, and a remover that is offline does not stop it.
    public func removesAtOnce(_ equivocator: MemberID) -> Bool {
        let known = broadcast.equivocators.union(forkEvidence.keys)
        return members.subtracting(known).subtracting([equivocator]).min() == me
    }

    /// The cut a remove's evidence makes, if the evidence is for this group, names the removed
    /// member, and both signatures verify; nil otherwise.
    func checkedCut(_ bytes: [UInt8], removing removed: MemberID) -> ForkEvidence? {
        guard let evidence = checkedEvidence(bytes), evidence.sender == removed else { return nil }
        return evidence
    }

    /// Evidence in an envelope's body, if it is for this group and both signatures verify.
    func checkedEvidence(_ bytes: [UInt8]) -> ForkEvidence? {
        guard let evidence = try? ForkEvidence(wire: bytes, groupID: groupID),
              evidence.first.suite == suite, evidence.verify() else { return nil }
        return evidence
    }

    /// The operations not to fold yet: those of each equivocator I hold evidence of and that is
    /// still in my view, from its forked seq on. The remove that carries the evidence will cut
    /// them off (its duty is pending); folding one first would keep its effect here while the
    /// members that process the remove before it cut it off. (An equivocator already out of my
    /// view is removed by no such remove, so nothing of it is held back.)
    var foldsHeldBack: [MemberID: UInt64] {
        Dictionary(uniqueKeysWithValues: equivocatorsInView.compactMap { id in forkEvidence[id].map { (id, $0.cutSeq) } })
    }

    /// The evidence my welcome-ack carries when I am added back while I hold evidence of an
    /// equivocator still in my view (the one with the smallest ID): the members that process the
    /// welcome-ack learn the fork before they record that I know what my adder knew, which may
    /// be the other side's operation (PROTOCOL-NOTES.md, "Equivocation", the returning participant).
    var evidenceForMyWelcomeAck: ForkEvidence? { equivocatorsInView.first.flatMap { forkEvidence[$0] } }

    /// Makes my broadcast layer follow the cuts my history holds (from removes I processed, or a
    /// welcome's history).
    mutating func adoptCuts() {
        for cut in keyAgreement.history.cutOffs where broadcast.cuts[cut.target].map({ $0 > cut.from }) ?? true {
            broadcast.cut(cut.target, from: cut.from)
        }
    }
}

extension Group {
    /// Records an envelope of mine that was signed outside this API (the simulator's malicious
    /// member signs what the API refuses to make) as sent, so that my chain goes on after it.
    /// Its content changes nothing else here.
    @_spi(Simulation) public mutating func recordSentElsewhere(_ envelope: Envelope) -> Bool {
        broadcast.recordOwn(envelope)
    }

    /// The simulator's malicious member: `envelope`, my newest envelope signed again with other
    /// content at the same position, replaces it in my chain (`BroadcastState.replaceOwnNewest`).
    @_spi(Simulation) public mutating func replaceOwnNewest(with envelope: Envelope) -> Bool {
        broadcast.replaceOwnNewest(with: envelope)
    }

    /// The simulator's malicious member: an update whose seed confirmation holds for everyone
    /// but `split`, who each get another seed (`DCGKAState.updateSplittingSeeds`).
    @_spi(Simulation) public mutating func updateSplittingSeeds<R: RandomNumberGenerator>(
        for split: Set<MemberID>, prekeys: PrekeyStore, now: UInt64? = nil, using rng: inout R
    ) throws(GroupError) -> Envelope {
        var copy = self
        let envelope = try copy.operate(.update, prekeys: prekeys, now: now) { (state, seq, keys) throws(DCGKAError) in
            try state.updateSplittingSeeds(seq: seq, keys: keys, split: split, using: &rng)
        }
        self = copy
        return envelope
    }
}
