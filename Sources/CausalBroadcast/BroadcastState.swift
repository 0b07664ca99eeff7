@_spi(PlantedDefects) public import DCGKAEncoding
public import DCGKACrypto

/// One member's authenticated causal broadcast state for one group (§6.2): a pure value driven
/// step by step by the group layer.
///
/// ```
/// receive(e)           verify, dedupe, detect equivocation, buffer
/// nextDeliverable()    the next buffered envelope whose dependencies are delivered
///   ... the caller processes it (DCGKA / messaging) ...
/// markDelivered(e)     record it; its successors may become deliverable
/// ```
///
/// The caller runs DCGKA between the steps because processing one envelope can make new senders
/// known. Delivery order is the relaxed order of §6: each sender's envelopes in seq order, each
/// acknowledgment after the envelope it acknowledges; among envelopes deliverable at once, the
/// lowest sender ID goes first (deterministic).
public struct BroadcastState: Sendable, Equatable {
    public let groupID: GroupID
    public let suite: CipherSuiteID
    public let me: MemberID
    public let configuration: BroadcastConfiguration
    /// Senders caught equivocating (§6.2), with the seq from which their chains are in doubt:
    /// their envelopes from there on are no longer delivered, and acknowledgments of those
    /// positions no longer wait for them (PROTOCOL-NOTES.md, "Equivocation").
    public internal(set) var cuts: [MemberID: UInt64] = [:]
    /// Senders caught equivocating, for the group layer to report.
    public var equivocators: Set<MemberID> { Set(cuts.keys) }
    /// The fork last found while both envelopes were at hand (the other one buffered or in
    /// flight), for the group layer to keep as evidence (``takeForkEvidence()``). Transient:
    /// never encoded.
    var foundFork: Transient<ForkEvidence> = .init()
    /// Senders refused as unknown while I hold a cut: members only the cut side of a fork
    /// introduced (an equivocator's add I never delivered). Acknowledgments of their envelopes
    /// do not wait for them. Encoded, so a restarted member does not wait for them either; at most
    /// ``maximumStrangersPastCut`` are kept (anyone can sign an envelope as a stranger).
    var strangersPastCut: Set<MemberID> = []
    /// How many strangers past a cut are remembered. Past it, acknowledgments of further strangers'
    /// envelopes wait until sync brings what they acknowledge or the strangers' adds: liveness only.
    public static let maximumStrangersPastCut = 4096

    struct SenderState: Sendable, Equatable {
        /// Highest seq delivered (or skipped) without gaps.
        var delivered: UInt64 = 0
        /// Envelopes up to this seq precede the adopted frontier (skipped, not handed out).
        var skippedThrough: UInt64 = 0
        /// Hashes of the latest delivered envelopes, by seq; always holds `delivered` when > 0.
        var recent: [UInt64: Bytes32] = [:]
        /// Buffered envelopes of this sender, by seq.
        var pending: [UInt64: Bytes32] = [:]
        /// Handed out by nextDeliverable, not yet marked delivered (its seq is `delivered + 1`).
        var inFlight: Envelope?
        /// Payload bytes of `pending` (derived: kept by every change of the buffer).
        var pendingBytes = 0

        var head: Bytes32? { recent[delivered] }
        var isEmpty: Bool { delivered == 0 && pending.isEmpty && inFlight == nil }

        /// The hash this state knows at `seq` (delivered window, in flight, or buffered).
        func knownHash(at seq: UInt64) -> Bytes32? {
            if seq <= delivered { return recent[seq] }
            if let inFlight, inFlight.seq == seq { return inFlight.hash }
            return pending[seq]
        }
    }

    var senders: [MemberID: SenderState] = [:]
    /// Buffered envelopes by hash.
    var buffer: [Bytes32: Envelope] = [:]
    var bufferedPayloadBytes = 0
    /// Every delivered or skipped-known create/add/remove/update, so acknowledgments resolve.
    var acknowledgeable: [Bytes32: OperationID] = [:]
    /// Senders whose envelope `delivered + 1` is buffered and none is in flight, with that
    /// envelope's hash and acknowledged hash (derived), so choosing the next delivery reads
    /// neither the senders' tables nor the buffer.
    var nextInLine: [MemberID: NextInLine] = [:]

    struct NextInLine: Sendable, Equatable {
        var hash: Bytes32
        var acked: EnvelopeReference?
        var kind: EnvelopeKind
    }

    public init(groupID: GroupID, suite: CipherSuiteID, me: MemberID, configuration: BroadcastConfiguration = .init()) {
        self.groupID = groupID
        self.suite = suite
        self.me = me
        // Clamped again: the fields are public, and a value outside the decoder's limits would
        // make the persisted state unreadable (or trap the encoder, for a negative one).
        self.configuration = configuration.normalized
    }

    // MARK: Receiving

    /// Decodes the wire form (with this group's ID) and receives it.
    public mutating func receive(wire: [UInt8], isKnownSender: (MemberID) -> Bool) -> ReceiveOutcome {
        let envelope: Envelope
        do { envelope = try Envelope(wire: wire, groupID: groupID) } catch { return .rejected(.undecodable(error)) }
        return receive(envelope, isKnownSender: isKnownSender)
    }

    /// Accepts an envelope into the buffer, or says why not.
    ///
    /// Order of checks: group and suite; exact duplicates of content already verified (same hash
    /// as something delivered in the window, buffered, in flight or acknowledgeable: no signature
    /// check is needed to drop those); the signature (nothing unverified is ever stored); the
    /// sender (`isKnownSender`, answered from membership; I am always known); then position:
    ///
    /// * `seq ≤ delivered`: a different hash in the window is equivocation; before the adopted
    ///   frontier it is `.skippedBeforeJoin`; otherwise the hash can no longer be checked (it fell out
    ///   of the window) and the envelope is treated as a duplicate.
    /// * `seq > delivered`: a different envelope at the same position, a `prev` that contradicts the
    ///   known envelope at `seq - 1`, or a buffered `seq + 1` whose `prev` is not this hash, is
    ///   equivocation: the sender is cut off from the forked seq, which drops its buffered envelopes
    ///   from there (neither side of the fork is delivered any more).
    /// * past a cut: refused (``BroadcastError/afterEquivocation(sender:seq:)``).
    ///
    /// On rejection only an equivocation changes anything: the sender is cut off (``cut(_:from:)``);
    /// on `.duplicate` nothing changes.
    public mutating func receive(_ envelope: Envelope, isKnownSender: (MemberID) -> Bool) -> ReceiveOutcome {
        receive(envelope, isKnownSender: isKnownSender, verifySignature: { $0.hasValidSignature() })
    }

    /// As ``receive(_:isKnownSender:)``, with the signature check supplied by the caller: a host that
    /// runs many members in one process (the simulator, a benchmark of the group as a whole) may
    /// share one check per envelope hash among them. Ed25519 verification is deterministic and the
    /// hash covers every byte, signature included, so a cached answer is the same answer.
    public mutating func receive(
        _ envelope: Envelope, isKnownSender: (MemberID) -> Bool, verifySignature: (Envelope) -> Bool
    ) -> ReceiveOutcome {
        guard envelope.groupID == groupID else { return .rejected(.wrongGroup) }
        guard envelope.suite == suite else { return .rejected(.unsupportedSuite) }
        if let buffered = buffer[envelope.hash] {
            // Same header and signature (the hash covers both), so nothing needs checking again;
            // a full copy of a buffered pruned envelope gives it back its payload (§6.1).
            if buffered.isPruned, !envelope.isPruned { return restorePayload(of: envelope) }
            return .duplicate
        }
        if acknowledgeable[envelope.hash] != nil { return .duplicate }
        // The sender's state is taken out of the table for the checks and put back on every path
        // (unchanged, or with this envelope added), so that neither copies its tables.
        var state: SenderState
        let existed: Bool
        if let taken = senders.removeValue(forKey: envelope.sender) {
            state = taken
            existed = true
        } else {
            state = SenderState()
            existed = false
        }
        var stored = false
        defer { if existed && !stored { store(state, for: envelope.sender) } }
        let skipped = envelope.seq <= state.skippedThrough
        if existed, state.knownHash(at: envelope.seq) == envelope.hash, !(skipped && envelope.kind.isAcknowledgeable) {
            return .duplicate
        }

        guard verifySignature(envelope) else { return .rejected(.badSignature) }

        let isMine = envelope.sender == me
        if !isMine {
            guard isKnownSender(envelope.sender) else {
                if !cuts.isEmpty, strangersPastCut.count < Self.maximumStrangersPastCut {
                    strangersPastCut.insert(envelope.sender)
                }
                return .rejected(.unknownSender(envelope.sender))
            }
        }

        if envelope.seq <= state.delivered {
            if let known = state.recent[envelope.seq], known != envelope.hash {
                if isMine { return .rejected(.unexpectedOwnEnvelope(seq: envelope.seq)) }
                return equivocation(envelope, from: envelope.seq, other: nil, state: &state)
            }
            if skipped {
                if envelope.kind.isAcknowledgeable { acknowledgeable[envelope.hash] = envelope.operationID }
                return .skippedBeforeJoin
            }
            return .duplicate
        }
        if isMine { return .rejected(.unexpectedOwnEnvelope(seq: envelope.seq)) }
        if let cut = cuts[envelope.sender], envelope.seq >= cut {
            return .rejected(.afterEquivocation(sender: envelope.sender, seq: envelope.seq))
        }

        if state.knownHash(at: envelope.seq) != nil {
            return equivocation(envelope, from: envelope.seq, other: heldEnvelope(at: envelope.seq, of: state), state: &state)
        }
        var checksPrev = true
        #if DEBUG
        checksPrev = !PlantedDefects.isActive(.skipPrevCheckAtReceive)
        #endif
        if checksPrev, envelope.seq > 1, let before = state.knownHash(at: envelope.seq - 1), before != envelope.prev {
            return equivocation(envelope, from: envelope.seq - 1, other: heldEnvelope(at: envelope.seq - 1, of: state), state: &state)
        }
        if checksPrev, let afterHash = state.pending[envelope.seq + 1], let after = buffer[afterHash], after.prev != envelope.hash {
            return equivocation(envelope, from: envelope.seq, other: after, state: &state)
        }
        if let acked = envelope.acked {
            if let known = acknowledgeable[acked.hash], known != acked.operationID {
                return .rejected(.invalidAcknowledgment(sender: envelope.sender, seq: envelope.seq))
            }
            // In-flight envelopes are only searched when the target is neither buffered nor an
            // already delivered acknowledgeable one (a per-ack scan of all senders is O(n)).
            var target = buffer[acked.hash]
            if target == nil, acknowledgeable[acked.hash] == nil {
                if let own = state.inFlight, own.hash == acked.hash {
                    target = own
                } else {
                    target = senders.values.lazy.compactMap(\.inFlight).first { $0.hash == acked.hash }
                }
            }
            if let target, target.operationID != acked.operationID {
                return .rejected(.invalidAcknowledgment(sender: envelope.sender, seq: envelope.seq))
            }
            if let target, !target.kind.isAcknowledgeable {
                return .rejected(.invalidAcknowledgment(sender: envelope.sender, seq: envelope.seq))
            }
        }
        // Quotas: per sender, then for everyone. The sender's next envelope is never refused (it is
        // deliverable as soon as its acknowledged envelope is, and refusing it could leave a full
        // buffer that never drains): room is made for it by dropping the envelopes furthest ahead,
        // its sender's own first, which are reported missing again and fetched later.
        let isNext = envelope.seq == state.delivered + 1 && state.inFlight == nil
        let size = envelope.payloadCount
        if isNext {
            evictAhead(of: &state, toFit: size)
            makeRoomForNext(of: envelope.sender, state: &state, toFit: size)
        } else {
            guard state.pending.count < configuration.maximumBufferedEnvelopesPerSender,
                  size <= configuration.maximumBufferedPayloadBytesPerSender - state.pendingBytes,
                  buffer.count < configuration.maximumBufferedEnvelopes,
                  size <= configuration.maximumBufferedPayloadBytes - bufferedPayloadBytes
            else { return .rejected(.bufferFull) }
        }

        buffer[envelope.hash] = envelope
        bufferedPayloadBytes += size
        state.pendingBytes += size
        state.pending[envelope.seq] = envelope.hash
        stored = true
        store(state, for: envelope.sender)
        return .buffered
    }

    /// False only with a planted defect (debug builds).
    static var checksPrevAtDelivery: Bool {
        #if DEBUG
        return !PlantedDefects.isActive(.skipPrevCheckAtDelivery)
        #else
        return true
        #endif
    }

    /// Gives a buffered pruned envelope the payload of a full copy (same hash, payload checked
    /// against `payloadHash` when the copy was made or decoded). The per-sender and shared byte
    /// limits apply as to any buffered envelope.
    private mutating func restorePayload(of envelope: Envelope) -> ReceiveOutcome {
        guard var state = senders.removeValue(forKey: envelope.sender) else { return .duplicate }
        let size = envelope.payloadCount
        guard size <= configuration.maximumBufferedPayloadBytesPerSender - state.pendingBytes,
              size <= configuration.maximumBufferedPayloadBytes - bufferedPayloadBytes
        else {
            store(state, for: envelope.sender)
            return .rejected(.bufferFull)
        }
        buffer[envelope.hash] = envelope
        bufferedPayloadBytes += size
        state.pendingBytes += size
        store(state, for: envelope.sender)
        return .payloadRestored
    }

    /// Whether an acknowledgment names a position that is already delivered here with another
    /// envelope (or one that is not acknowledgeable): it acknowledges a branch I did not take (a
    /// fork, §6.2) or nothing valid, and waiting would stall its sender's chain for ever. It is
    /// delivered without its target, and the layer above decides what it means. Positions before
    /// my adopted frontier are not judged: I never saw them, so the envelope is fetched by hash.
    ///
    /// Past a cut (an equivocator's chain from the forked seq on) nothing is delivered any more, so
    /// an acknowledgment of any position there that I did not deliver does not wait either.
    func isUnresolvable(_ acked: EnvelopeReference) -> Bool {
        guard acknowledgeable[acked.hash] == nil else { return false }
        if let cut = cuts[acked.sender], acked.seq >= cut { return true }
        // A sender that only the other side of a fork made a member: nothing of it is delivered here.
        if isStrangerPastCut(acked.sender) { return true }
        guard let state = senders[acked.sender] else { return false }
        return acked.seq <= state.delivered && acked.seq > state.skippedThrough
    }

    /// A buffered or in-flight envelope of this sender state at `seq` (not a delivered one: only
    /// its hash is kept).
    func heldEnvelope(at seq: UInt64, of state: SenderState) -> Envelope? {
        if let inFlight = state.inFlight, inFlight.seq == seq { return inFlight }
        return state.pending[seq].flatMap { buffer[$0] }
    }

    /// Records a fork of `envelope`'s sender found on receipt (`state` is that sender's, taken out
    /// of the table by the caller) and cuts the sender off from `seq`.
    private mutating func equivocation(
        _ envelope: Envelope, from seq: UInt64, other: Envelope?, state: inout SenderState
    ) -> ReceiveOutcome {
        if let other, let evidence = try? ForkEvidence(other, envelope) { foundFork.value = evidence }
        applyCut(envelope.sender, from: seq, to: &state)
        return .rejected(.equivocation(sender: envelope.sender, seq: envelope.seq))
    }

    /// Cuts `sender` off from `seq` on (the smaller seq wins): its buffered envelopes from there
    /// are dropped, later ones are refused, and acknowledgments of those positions are delivered
    /// without waiting for them (PROTOCOL-NOTES.md, "Equivocation"). Never cuts me.
    public mutating func cut(_ sender: MemberID, from seq: UInt64) {
        guard sender != me else { return }
        var state = senders.removeValue(forKey: sender) ?? SenderState()
        applyCut(sender, from: seq, to: &state)
        store(state, for: sender)
    }

    private mutating func applyCut(_ sender: MemberID, from seq: UInt64, to state: inout SenderState) {
        guard sender != me else { return }
        let from = max(1, min(seq, cuts[sender] ?? .max))
        cuts[sender] = from
        for (pendingSeq, hash) in state.pending where pendingSeq >= from {
            if let envelope = buffer[hash] { removeFromBuffer(envelope, state: &state) }
        }
    }

    /// The fork found by the last ``receive(_:isKnownSender:)`` while both envelopes were at
    /// hand, once. When the other envelope was already delivered only its hash is kept here, and
    /// the host, which stores envelopes, builds the evidence (``ForkEvidence``).
    public mutating func takeForkEvidence() -> ForkEvidence? {
        defer { foundFork.value = nil }
        return foundFork.value
    }

    // MARK: Delivering

    /// The next buffered envelope whose dependencies are delivered (its sender's `seq - 1`, and for
    /// an acknowledgment the acknowledged envelope), removed from the buffer and held "in flight"
    /// until ``markDelivered(_:)``. Among several, the lowest sender ID first. At most one envelope
    /// per sender is in flight; the caller should mark every envelope it gets delivered even when
    /// the layer above rejects its content, or that sender's chain stalls.
    public mutating func nextDeliverable() -> Envelope? {
        nextDeliverable(holdingBack: nil, until: { _ in nil })
    }

    /// ``nextDeliverable()`` where an envelope of kind `kind` may also wait for positions of
    /// other senders: `frontier(envelope)` names, per sender, the seq that must be delivered (or
    /// skipped) here first. The group layer holds back a welcome to a member that already has
    /// state until the adder's frontier is delivered (PROTOCOL-NOTES.md, "A returning member
    /// waits for its adder's frontier"). The closure is asked only about envelopes of that kind
    /// that are next in line.
    public mutating func nextDeliverable(holdingBack kind: EnvelopeKind?, until frontier: (Envelope) -> Frontier?) -> Envelope? {
        while true {
            var best: (sender: MemberID, hash: Bytes32)?
            for (sender, next) in nextInLine {
                if let best, !(sender < best.sender) { continue }
                if let acked = next.acked, acknowledgeable[acked.hash] == nil, !isUnresolvable(acked) { continue }
                if next.kind == kind, let envelope = buffer[next.hash], let heads = frontier(envelope),
                   !heads.heads.allSatisfy({ reachedFrontierHead($0.value, of: $0.key) }) { continue }
                best = (sender, next.hash)
            }
            guard let best, let envelope = buffer[best.hash],
                  var state = senders.removeValue(forKey: best.sender) else { return nil }
            removeFromBuffer(envelope, state: &state)
            if envelope.prev != state.head && Self.checksPrevAtDelivery {
                // Cannot happen through receive's checks; a caller-forced markDelivered could cause it.
                applyCut(envelope.sender, from: max(1, envelope.seq - 1), to: &state)
                store(state, for: best.sender)
                continue
            }
            state.inFlight = envelope
            store(state, for: best.sender)
            return envelope
        }
    }

    /// Whether I delivered (or skipped) what a frontier's `head` of `sender` names, as far as I
    /// ever will (``reachableSeq(of:upTo:)``), and hold no other envelope at the head's position
    /// (compared where my window of recent hashes still has it). Another envelope there means
    /// the frontier's owner took another side of that sender's fork than I did: the head is
    /// fetched by hash (``conflictingFrontierHead(_:of:)``), its receipt cuts the sender off, and
    /// the head is then past the cut.
    public func reachedFrontierHead(_ head: Frontier.Head, of sender: MemberID) -> Bool {
        deliveredSeq(of: sender) >= reachableSeq(of: sender, upTo: head.seq) && !conflictingFrontierHead(head, of: sender)
    }

    /// Whether I hold another envelope than `head` at its position (a fork of `sender` I have not
    /// cut yet).
    public func conflictingFrontierHead(_ head: Frontier.Head, of sender: MemberID) -> Bool {
        guard reachableSeq(of: sender, upTo: head.seq) == head.seq, let mine = knownHash(of: sender, at: head.seq) else { return false }
        return mine != head.hash
    }

    /// `seq`, or for a sender cut off before it, the last seq before the cut: nothing of that
    /// sender past the cut is ever delivered here, so nothing can wait for it.
    /// Likewise nothing of a sender only the other side of a fork made a member (refused as unknown
    /// while I hold a cut) is delivered here.
    public func reachableSeq(of sender: MemberID, upTo seq: UInt64) -> UInt64 {
        if isStrangerPastCut(sender) { return 0 }
        guard let cut = cuts[sender], cut <= seq else { return seq }
        return cut - 1
    }

    /// Whether `sender` was refused as unknown while I held a cut and nothing of it was ever
    /// delivered here: a member only the other side of a fork introduced.
    public func isStrangerPastCut(_ sender: MemberID) -> Bool {
        !cuts.isEmpty && strangersPastCut.contains(sender) && senders[sender] == nil
    }

    /// Records an envelope as delivered: the one ``nextDeliverable()`` returned (or the sender's
    /// next in line). Idempotent: returns false and changes nothing when it is already delivered or
    /// not the sender's next (`seq == delivered + 1` with `prev` equal to the head hash).
    @discardableResult
    public mutating func markDelivered(_ envelope: Envelope) -> Bool {
        guard envelope.groupID == groupID, envelope.suite == suite else { return false }
        return advance(envelope)
    }

    /// Where my next envelope goes: `seq` and `prev` for ``Envelope/sign(identity:suite:groupID:seq:prev:kind:acked:application:payload:)``.
    public func nextOwnPosition() -> (seq: UInt64, prev: Bytes32?) {
        let state = senders[me]
        return ((state?.delivered ?? 0) + 1, state?.head)
    }

    /// Records my own envelope as sent and delivered. Returns false (and changes nothing) unless it
    /// is mine, of this group, at ``nextOwnPosition()``.
    @discardableResult
    public mutating func recordOwn(_ envelope: Envelope) -> Bool {
        guard envelope.sender == me, envelope.groupID == groupID, envelope.suite == suite else { return false }
        return advance(envelope)
    }

    /// The simulator's malicious member: its newest envelope, signed again at the same position
    /// with other content (a lying welcome in an add it made), becomes the one its chain goes on
    /// from. Nothing honest does this.
    @_spi(Simulation) public mutating func replaceOwnNewest(with envelope: Envelope) -> Bool {
        guard envelope.sender == me, var state = senders[me], envelope.seq == state.delivered,
              let old = state.recent[envelope.seq], envelope.prev == state.recent[envelope.seq - 1] ?? envelope.prev
        else { return false }
        state.recent[envelope.seq] = envelope.hash
        if let op = acknowledgeable.removeValue(forKey: old) { acknowledgeable[envelope.hash] = op }
        senders[me] = state
        return true
    }

    private mutating func advance(_ envelope: Envelope) -> Bool {
        // Taken out of the table (put back unchanged if it does not fit), so that neither the
        // check nor the mutations below copy its hash tables.
        var state = senders.removeValue(forKey: envelope.sender) ?? SenderState()
        guard envelope.seq == state.delivered + 1, envelope.prev == state.head || !Self.checksPrevAtDelivery else {
            store(state, for: envelope.sender)
            return false
        }
        if let inFlight = state.inFlight, inFlight.seq == envelope.seq { state.inFlight = nil }
        if let pendingHash = state.pending[envelope.seq], let buffered = buffer[pendingHash] {
            removeFromBuffer(buffered, state: &state)
        }
        state.delivered = envelope.seq
        state.recent[envelope.seq] = envelope.hash
        let window = UInt64(configuration.recentHashesPerSender)
        if envelope.seq > window { state.recent[envelope.seq - window] = nil }
        if envelope.kind.isAcknowledgeable { acknowledgeable[envelope.hash] = envelope.operationID }
        store(state, for: envelope.sender)
        return true
    }

    /// Moves envelopes handed out by ``nextDeliverable()`` but never marked delivered back into the
    /// buffer (after restoring a state saved mid-processing). The buffer limit does not apply.
    public mutating func requeueInFlight() {
        for sender in senders.keys.sorted() {
            guard var state = senders[sender], let envelope = state.inFlight else { continue }
            state.inFlight = nil
            state.pending[envelope.seq] = envelope.hash
            state.pendingBytes += envelope.payloadCount
            buffer[envelope.hash] = envelope
            bufferedPayloadBytes += envelope.payloadCount
            senders[sender] = state
            refreshLine(sender)
        }
    }

    private mutating func removeFromBuffer(_ envelope: Envelope, state: inout SenderState) {
        if buffer.removeValue(forKey: envelope.hash) != nil { bufferedPayloadBytes -= envelope.payloadCount }
        if state.pending[envelope.seq] == envelope.hash {
            state.pending[envelope.seq] = nil
            state.pendingBytes -= envelope.payloadCount
        }
    }

    /// Drops this sender's buffered envelopes furthest ahead until one more of `size` bytes fits
    /// its quota (its next envelope must be taken).
    private mutating func evictAhead(of state: inout SenderState, toFit size: Int) {
        while !state.pending.isEmpty,
              state.pending.count >= configuration.maximumBufferedEnvelopesPerSender
                || state.pendingBytes + size > configuration.maximumBufferedPayloadBytesPerSender,
              let last = state.pending.keys.max(), let hash = state.pending[last], let envelope = buffer[hash] {
            removeFromBuffer(envelope, state: &state)
        }
    }

    /// Drops buffered envelopes of the sender holding the most, furthest ahead first and never a
    /// sender's next one, until one more of `size` bytes fits the shared limits. `own` is the
    /// state of `sender`, taken out of the table by the caller.
    private mutating func makeRoomForNext(of sender: MemberID, state own: inout SenderState, toFit size: Int) {
        func ahead(_ state: SenderState) -> Int {
            state.pending.count - (state.pending[state.delivered + 1] == nil ? 0 : 1)
        }
        while buffer.count >= configuration.maximumBufferedEnvelopes
            || bufferedPayloadBytes + size > configuration.maximumBufferedPayloadBytes {
            var victim: (id: MemberID, count: Int)?
            if ahead(own) > 0 { victim = (sender, ahead(own)) }
            for (id, state) in senders {
                let count = ahead(state)
                if count > 0, count > (victim?.count ?? 0) || (count == victim?.count && id < victim!.id) { victim = (id, count) }
            }
            guard let victim else { return }  // nothing ahead anywhere: the limits are smaller than one envelope
            if victim.id == sender {
                guard let last = own.pending.keys.max(), let hash = own.pending[last], let envelope = buffer[hash] else { return }
                removeFromBuffer(envelope, state: &own)
            } else {
                guard var state = senders.removeValue(forKey: victim.id), let last = state.pending.keys.max(),
                      let hash = state.pending[last], let envelope = buffer[hash] else { return }
                removeFromBuffer(envelope, state: &state)
                store(state, for: victim.id)
                refreshLine(victim.id)
            }
        }
    }

    /// Keeps `nextInLine` and the no-empty-entries invariant of `senders` (so that equal content
    /// means equal values).
    mutating func refreshLine(_ sender: MemberID) {
        guard let state = senders.removeValue(forKey: sender) else { nextInLine[sender] = nil; return }
        store(state, for: sender)
    }

    /// Puts a sender's state (taken out of `senders`, so that changing it copied nothing) back,
    /// unless it is empty, and updates `nextInLine` from it.
    mutating func store(_ state: SenderState, for sender: MemberID) {
        if state.isEmpty {
            nextInLine[sender] = nil
            return
        }
        if state.inFlight == nil, let hash = state.pending[state.delivered + 1], let envelope = buffer[hash] {
            nextInLine[sender] = NextInLine(hash: hash, acked: envelope.acked, kind: envelope.kind)
        } else {
            nextInLine[sender] = nil
        }
        senders[sender] = state
    }

    // MARK: Frontier

    /// Adopts the adder's frontier from a welcome (§5.6, §6.2): per sender, envelopes up to the head's
    /// seq count as delivered and are skipped. Buffered ones up to it are dropped (a
    /// create/add/remove/update among them is remembered for acknowledgments); a buffered or known
    /// envelope at exactly the head's seq with another hash, or a buffered successor whose `prev` is
    /// not the head's hash, marks its sender as an equivocator (and the successor is dropped).
    /// Heads at or below what is already delivered only check the hash; heads beyond the largest
    /// seq are ignored. The group layer leaves out my own entry (a joiner numbers its own chain).
    public mutating func adoptFrontier(_ frontier: Frontier) {
        for (sender, head) in frontier.heads.sorted(by: { $0.key < $1.key }) where head.seq >= 1 && head.seq <= Envelope.maximumSeq {
            var state = senders[sender] ?? SenderState()
            if head.seq <= state.delivered {
                if let known = state.recent[head.seq], known != head.hash {
                    applyCut(sender, from: head.seq, to: &state)
                    senders[sender] = state
                    refreshLine(sender)
                }
                continue
            }
            if let inFlight = state.inFlight, inFlight.seq <= head.seq { state.inFlight = nil }
            for (seq, hash) in state.pending where seq <= head.seq {
                guard let envelope = buffer[hash] else { continue }
                removeFromBuffer(envelope, state: &state)
                if seq == head.seq && hash != head.hash {
                    cuts[sender] = min(head.seq, cuts[sender] ?? .max)
                } else if envelope.kind.isAcknowledgeable {
                    acknowledgeable[hash] = envelope.operationID
                }
            }
            state.delivered = head.seq
            state.skippedThrough = head.seq
            state.recent = [head.seq: head.hash]
            if let nextHash = state.pending[head.seq + 1], let next = buffer[nextHash], next.prev != head.hash {
                removeFromBuffer(next, state: &state)
                cuts[sender] = min(head.seq, cuts[sender] ?? .max)
            }
            if let cut = cuts[sender] { applyCut(sender, from: cut, to: &state) }
            senders[sender] = state
            refreshLine(sender)
        }
    }

    /// Forgets senders that `keep` rejects and that have nothing buffered or in flight (heads a
    /// welcome named for strangers, say). I am always kept.
    public mutating func forgetIdleSenders(keep: (MemberID) -> Bool) {
        var forgotten = Set<MemberID>()
        for (sender, state) in senders where sender != me && !keep(sender) && state.pending.isEmpty && state.inFlight == nil {
            senders[sender] = nil
            nextInLine[sender] = nil
            forgotten.insert(sender)
        }
        if !forgotten.isEmpty { acknowledgeable = acknowledgeable.filter { !forgotten.contains($0.value.sender) } }
    }

    /// What I have delivered: per sender the highest seq without gaps and its hash (§6.4).
    public var frontier: Frontier {
        var heads: [MemberID: Frontier.Head] = [:]
        for (sender, state) in senders where state.delivered > 0 {
            if let head = state.head { heads[sender] = Frontier.Head(seq: state.delivered, hash: head) }
        }
        return Frontier(heads: heads)
    }

    // MARK: Queries

    /// What the buffer waits for, for transports to fetch (§6.2): per sender the gaps below its
    /// buffered envelopes, then the acknowledged hashes that are neither delivered nor buffered.
    /// Sorted (ranges by sender, then hashes).
    public func missing() -> [MissingEnvelope] {
        var result: [MissingEnvelope] = []
        for sender in senders.keys.sorted() {
            guard let state = senders[sender], !state.pending.isEmpty else { continue }
            var have = state.delivered + (state.inFlight == nil ? 0 : 1)
            for seq in state.pending.keys.sorted() {
                if seq > have + 1 { result.append(.range(sender: sender, from: have + 1, through: seq - 1)) }
                have = seq
            }
        }
        var hashes = Set<Bytes32>()
        func check(_ envelope: Envelope) {
            guard let acked = envelope.acked, acknowledgeable[acked.hash] == nil, buffer[acked.hash] == nil,
                  !isUnresolvable(acked) else { return }
            hashes.insert(acked.hash)
        }
        for envelope in buffer.values { check(envelope) }
        for state in senders.values { if let inFlight = state.inFlight { check(inFlight) } }
        for state in senders.values { if let inFlight = state.inFlight { hashes.remove(inFlight.hash) } }
        result.append(contentsOf: hashes.sorted().map { .hash($0) })
        return result
    }

    /// The operation `(sender, seq)` of a delivered (or skipped and seen) create/add/remove/update.
    public func operationID(ofAcknowledgeable hash: Bytes32) -> OperationID? { acknowledgeable[hash] }

    /// Highest seq of `sender` delivered (or skipped) without gaps; 0 if none.
    public func deliveredSeq(of sender: MemberID) -> UInt64 { senders[sender]?.delivered ?? 0 }

    /// The hash of the envelope I hold at `(sender, seq)`: delivered (within the window of recent
    /// hashes), in flight or buffered.
    public func knownHash(of sender: MemberID, at seq: UInt64) -> Bytes32? { senders[sender]?.knownHash(at: seq) }

    /// The buffered envelopes that are next in their senders' chains (each waits at most for
    /// its acknowledged envelope or an extra frontier, ``nextDeliverable(holdingBack:until:)``).
    public var nextInLineEnvelopes: [Envelope] { nextInLine.values.compactMap { buffer[$0.hash] } }

    /// Envelopes waiting in the buffer (not counting those in flight).
    public var bufferedCount: Int { buffer.count }

    /// Payload bytes waiting in the buffer.
    public var bufferedBytes: Int { bufferedPayloadBytes }

    /// Whether an envelope with this hash is buffered or in flight.
    public func isBuffered(_ hash: Bytes32) -> Bool {
        buffer[hash] != nil || senders.values.contains { $0.inFlight?.hash == hash }
    }

    /// How many create/add/remove/update hashes are remembered (they never expire).
    public var acknowledgeableCount: Int { acknowledgeable.count }
}

/// A value carried beside a state that is not part of its value: equality ignores it.
struct Transient<Value: Sendable>: Sendable, Equatable {
    var value: Value?
    static func == (_: Transient, _: Transient) -> Bool { true }
}
