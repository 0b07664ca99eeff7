public import DCGKAEncoding
public import DCGKACrypto
internal import TwoPartyMessaging
internal import Membership

/// My part of §5.7's recovery (PROTOCOL-NOTES.md, "Recovery"): the requests I sent and the ones I
/// answered. A request's one-time key is kept here, and deleted as soon as the request ends (all
/// answered, or given up), so that nobody who seizes my state later opens the answers.
public struct ResyncState: Sendable, Equatable {
    /// One request of mine still waiting for answers.
    public struct Request: Sendable, Equatable {
        public var generation: UInt64
        /// The seq of its envelope in my chain (answers acknowledge it).
        public var seq: UInt64
        /// Members asked (only their answers count).
        public var asked: Set<MemberID>
        /// Members asked that have not answered yet.
        public var awaiting: Set<MemberID>
        /// The one-time key the answers are encrypted to.
        public var key: PKESecretKey
    }

    /// My newest generation; 0 before my first request.
    public internal(set) var generation: UInt64 = 0
    /// My newest requests that still wait for someone, oldest first (at most ``maximumRequests``).
    public internal(set) var requests: [Request] = []
    /// Per requester, the highest generation I answered: one answer per generation, and only to a
    /// newer one, so that one request cannot make me step my ratchet twice.
    public internal(set) var answered: [MemberID: UInt64] = [:]

    /// Answers to older requests than these no longer count (their requester asks again).
    public static let maximumRequests = 2
}

extension DCGKAState {
    /// The constant input of the answerer's ratchet step (§5.7 recovery).
    static let resyncInput: [UInt8] = Array("resync".utf8)

    /// resync: asks every member whose ratchet I lost (and who is in my view) for its ratchet
    /// state, each answer travelling on a 2SM channel the answerer points at a fresh one-time
    /// X25519 key of mine. Refused with a typed error when there is nothing to ask or earlier
    /// requests still wait for every such member; it changes no membership and no ratchet.
    public mutating func requestResync<R: RandomNumberGenerator>(seq: UInt64, using rng: inout R) throws(DCGKAError) -> OperationOutput {
        let view = history.members()
        guard view.contains(me) else { throw .invalidOperation("not a member") }
        let lostInView = lostRatchets.intersection(view).subtracting([me])
        guard !lostInView.isEmpty else { throw .invalidOperation("no lost ratchet to recover") }
        // Refused when earlier requests still wait for every one of them. A request names every
        // member I lost, so one waited for by an older request may be asked twice (at most
        // ``ResyncState/maximumRequests`` requests wait at once).
        let awaited = resync.requests.reduce(into: Set<MemberID>()) { $0.formUnion($1.awaiting) }
        let lost = lostInView
        guard !lost.isSubset(of: awaited) else { throw .invalidOperation("an earlier resync still waits for these members") }
        let key = PKESecretKey.generate(using: &rng)
        journalResync()
        resync.generation += 1
        resync.requests.append(ResyncState.Request(generation: resync.generation, seq: seq, asked: lost, awaiting: lost, key: key))
        if resync.requests.count > ResyncState.maximumRequests { endRequest(at: 0) }
        let body = ControlBody(fields: .resync(generation: resync.generation, key: key.publicKey, lost: lost.sorted()), directMessages: [])
        return OperationOutput(body: body, updateSecret: nil)
    }

    /// Someone's resync: if it asks me, and is newer than any I answered for its sender, I point my
    /// channel with the requester at its one-time key, send it my ratchet state there, and step my
    /// ratchet by the constant "resync", so that the requester follows my next epoch.
    mutating func processResync<R: RandomNumberGenerator>(
        _ op: OperationID, generation: UInt64, key: PKEPublicKey, lost: [MemberID], keys: KeyMaterial, using rng: inout R
    ) throws(DCGKAError) -> ProcessOutput {
        let view = history.members()
        let requester = op.sender
        guard lost.contains(me), view.contains(me), view.contains(requester),
              generation > resync.answered[requester] ?? 0
        else { return ProcessOutput(acknowledgment: nil, senderSecret: nil, mySecret: nil) }
        // Only a member asked judges the key (the others need not fail on it).
        guard !key.isLowOrder else { throw .twoParty(op.sender, .lowOrderKey) }
        journalResync()
        var channel = twoParty[requester] ?? TwoPartyState(peerPrekey: nil)
        channel.repoint(toPeerKey: key)
        setChannel(requester, channel)
        let message = try encrypt(to: requester, (ratchets[me] ?? .zero).bytes, keys: keys, using: &rng)
        shareMyRatchet(with: [requester])
        let mySecret = updateRatchet(me, input: Self.resyncInput)
        resync.answered[requester] = generation
        // Named explicitly, not by position in my view: a recovery is most needed where views
        // differed (the two sides of an equivocator's fork, PROTOCOL-NOTES.md, "Equivocation"),
        // and it has exactly one recipient.
        let answer = ControlBody(
            fields: .resyncAnswer, directMessages: [TaggedDirectMessage(tag: .explicit(requester), message: message)])
        return ProcessOutput(acknowledgment: answer, senderSecret: nil, mySecret: mySecret)
    }

    /// An answer to a resync. The requester adopts the answerer's ratchet state; then everyone who
    /// follows the answerer (the requester too) takes its constant step.
    mutating func processResyncAnswer(_ answer: OperationID, acked: OperationID, body: ControlBody, keys: KeyMaterial) throws(DCGKAError) -> Bytes32? {
        let answerer = answer.sender
        let view = history.memoizedMembers(asSeenBy: answerer, atSeq: answer.seq)
        var mine: [[UInt8]] = []
        var failure: DCGKAError?
        do { mine = try myDirectMessages(answer, body: body, senderView: view, keys: keys) } catch { failure = error }
        if acked.sender == me, let index = resync.requests.firstIndex(where: { $0.seq == acked.seq }),
           resync.requests[index].asked.contains(answerer) {
            journalResync()
            resync.requests[index].awaiting.remove(answerer)
            if resync.requests[index].awaiting.isEmpty { endRequest(at: index) }
            do throws(DCGKAError) {
                if let failure { throw failure }
                guard let first = mine.first else { throw DCGKAError.missingDirectMessage(answer) }
                setRatchet(answerer, try decodeSecret(first, from: answerer))
                recover(answerer)
            } catch {
                lose(answerer, at: answer, because: error)
            }
        }
        // A ratchet I lost is not stepped: its value is of no use, and stepping a state I never
        // had (ε) by a constant gives a value anyone can compute.
        guard view.contains(me), view.contains(answerer), !lostRatchets.contains(answerer) else { return nil }
        return updateRatchet(answerer, input: Self.resyncInput)
    }

    /// An add or remove of `id` (or my own welcome) may come between my request and its answer:
    /// a member that processed my request while one of us was out of the other's view never
    /// answers it. So such a change ends the wait for `id` (for everyone, when `id` is me), and
    /// ``Group/needsResync`` asks again.
    mutating func stopAwaitingResync(touching id: MemberID) {
        guard resync.requests.contains(where: { id == me || $0.awaiting.contains(id) }) else { return }
        journalResync()
        for index in resync.requests.indices {
            if id == me { resync.requests[index].awaiting = [] } else { resync.requests[index].awaiting.remove(id) }
        }
        for index in resync.requests.indices.reversed() where resync.requests[index].awaiting.isEmpty { endRequest(at: index) }
    }

    /// A request ends: its one-time key is deleted (an answer still in flight to it is lost, and
    /// asked for again).
    mutating func endRequest(at index: Int) {
        retire(resync.requests[index].key.secretBytes32)
        resync.requests.remove(at: index)
    }

    /// The one-time key of a request of mine that `prekey` names, for a 2SM message that opens a
    /// channel on it (an answer).
    func resyncKey(for prekey: PKEPublicKey) -> PKESecretKey? {
        resync.requests.first { $0.key.publicKey == prekey }?.key
    }

    /// An envelope I take no step for (an acknowledgment of a branch I did not take, §6.2) may
    /// still carry 2SM messages to me: they are read and dropped, so that my channel with its
    /// sender stays in step (its next message to me is sealed to a key this one hands on).
    public mutating func absorbDirectMessages(sender: MemberID, seq: UInt64, body: ControlBody, keys: KeyMaterial) throws(DCGKAError) {
        _ = try myDirectMessages(OperationID(sender: sender, seq: seq), body: body, keys: keys)
    }

    /// An acknowledgment of an operation I never processed (the other side of a fork, or past an
    /// equivocator's cut, §6.2): its direct messages to me are read (``absorbDirectMessages(sender:seq:body:keys:)``),
    /// and if its sender took a ratchet step for it (it confirms a new epoch), I cannot follow
    /// that step: I lost the sender's ratchet, and recover it by §5.7. Returns the losses.
    public mutating func acknowledgmentOfAnotherBranch(
        sender: MemberID, seq: UInt64, body: ControlBody, keys: KeyMaterial
    ) throws(DCGKAError) -> [LostRatchet] {
        lossesInCall = []
        defer { lossesInCall = [] }
        try absorbDirectMessages(sender: sender, seq: seq, body: body, keys: keys)
        if body.epochConfirmation != nil, sender != me, !lostRatchets.contains(sender),
           history.memoizedMembers(asSeenBy: sender, atSeq: seq).contains(me) {
            lose(sender, at: OperationID(sender: sender, seq: seq), because: .acknowledgedAnotherBranch(OperationID(sender: sender, seq: seq)))
        }
        return lossesInCall
    }

    /// I follow `member`'s ratchet again (its epoch confirmation is still checked).
    mutating func recover(_ member: MemberID) {
        guard lostRatchets.contains(member) else { return }
        if journal != nil, journal!.lostRatchets == nil { journal!.lostRatchets = lostRatchets }
        lostRatchets.remove(member)
        recoveredInCall.append(member)
        // Recovered another way (a re-add, a fresh seed): no request of mine need wait for it.
        stopAwaitingResync(touching: member)
    }

    mutating func journalResync() {
        if journal != nil, journal!.resync == nil { journal!.resync = resync }
    }
}
