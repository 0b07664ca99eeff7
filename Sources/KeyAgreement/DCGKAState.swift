@_spi(PlantedDefects) public import DCGKAEncoding
public import DCGKACrypto
public import TwoPartyMessaging
public import Membership

/// Why a DCGKA call failed. The caller keeps its previous state whenever one is thrown.
public enum DCGKAError: Error, Equatable, Sendable {
    /// No key bundle is known for a member I must encrypt to.
    case missingKeyBundle(MemberID)
    /// The peer's key bundle failed verification and was not used.
    case invalidKeyBundle(MemberID, KeyBundleError)
    case twoParty(MemberID, TwoPartyError)
    case membership(MembershipError)
    case malformedSecret(MemberID)
    /// The welcome addressed to me does not decode.
    case malformedWelcome(WireError)
    /// The operation makes no sense in this state (e.g. creating twice, adding a current member).
    case invalidOperation(String)
    /// A direct message to me was expected but is missing.
    case missingDirectMessage(OperationID)
    /// The message is not one I can process here (e.g. a welcome for somebody else).
    case unexpectedMessage(String)
    /// The seed I decrypted does not match the operation's seed confirmation: its sender is
    /// malicious (§5.7 rule 2).
    case seedConfirmationFailed(OperationID)
    /// The update secret I derived for the envelope's sender does not match its epoch
    /// confirmation, or one of us derived none (§5.7 rule 3).
    case epochConfirmationFailed(OperationID)
    /// The create's group ID is not the one its creator, nonce and member list give (§6.1): it is
    /// not this group's create, whatever its envelope says.
    case groupIDMismatch
    /// An acknowledgment (`operation` is its own ID) of an envelope I never processed, the other
    /// side of a fork or past an equivocator's cut (§6.2): I cannot follow its sender's ratchet step.
    case acknowledgedAnotherBranch(OperationID)
}

/// A pair (operation, member) naming one member secret, `memberSecret[(sender, seq), ID]` of §5.1.
public struct MemberSecretKey: Hashable, Sendable, Comparable {
    public var operation: OperationID
    public var member: MemberID
    public init(operation: OperationID, member: MemberID) {
        self.operation = operation
        self.member = member
    }
    public static func < (lhs: MemberSecretKey, rhs: MemberSecretKey) -> Bool {
        lhs.operation != rhs.operation ? lhs.operation < rhs.operation : lhs.member < rhs.member
    }
}

/// Public keys I may encrypt to and my own prekey secrets: the PKI of §2.3, as seen by the caller.
public struct KeyMaterial: Sendable {
    /// My prekey secrets (`PKI-SecretKey(me, ·)`).
    public var prekeys: PrekeyStore
    /// Peers' key bundles (`PKI-PublicKey(peer, me)`). A bundle is verified when it is first used,
    /// so members that never start a 2SM channel with a peer never pay for checking its signature.
    public var peerBundles: [MemberID: KeyBundle]
    /// The current time for bundle expiry; `nil` checks signatures only (bundles that arrived
    /// inside signed group messages, whose time of use is not ours to judge).
    public var now: UInt64?
    /// Members whose bundle in `peerBundles` the caller has just verified itself (a create's or an
    /// add's bundles), so that opening their channel does not check the same signature again.
    public var alreadyVerified: Set<MemberID>

    public init(prekeys: PrekeyStore, peerBundles: [MemberID: KeyBundle], now: UInt64? = nil, alreadyVerified: Set<MemberID> = []) {
        self.prekeys = prekeys
        self.peerBundles = peerBundles
        self.now = now
        self.alreadyVerified = alreadyVerified
    }
}

/// What an operation of mine produced (§5.3): one control message and my new update secret.
public struct OperationOutput: Sendable {
    public var body: ControlBody
    public var updateSecret: Bytes32?
    /// Recipients my seed could not be encrypted to (no usable key): they get no direct message;
    /// everyone else does (one recipient's failure never blocks the operation for the others).
    public var unreachable: [MemberID: DCGKAError] = [:]
}

/// What processing someone's control message produced (§5.3): possibly an acknowledgment of mine to
/// broadcast, and update secrets for the sender and for me.
public struct ProcessOutput: Sendable {
    /// My acknowledgment, to be sent with the seq that was passed in as `mySeq`.
    public var acknowledgment: ControlBody?
    public var senderSecret: Bytes32?
    public var mySecret: Bytes32?
    /// The envelope was an operation (update, add, remove) of a sender that was not a member in
    /// its own view just before it (§4.2): it had no effect, and nobody acknowledges it.
    public var fromNonMember = false
    /// Ratchets I can no longer follow because of this envelope (its membership effect applied
    /// all the same): whose, by which operation, and why.
    public var lost: [LostRatchet] = []
    /// Ratchets I follow again since this envelope (an answer to my resync, §5.7).
    public var recovered: [MemberID] = []
}

/// A member's ratchet that I can no longer follow (§5.7): a direct message I needed could not be
/// decrypted or was missing, so I lack an input of that member's update-ratchet.
public struct LostRatchet: Sendable, Equatable {
    public var member: MemberID
    public var operation: OperationID
    public var reason: DCGKAError
    public init(member: MemberID, operation: OperationID, reason: DCGKAError) {
        self.member = member
        self.operation = operation
        self.reason = reason
    }
}

/// The DCGKA state of one member in one group (§5.1). A value: every call returns or throws, and
/// the caller adopts the mutated state only when it returned.
public struct DCGKAState: Sendable {
    public let me: MemberID
    public let groupID: GroupID
    public let suite: CipherSuiteID
    public internal(set) var history: MembershipState
    /// My seed between generating an operation and processing it myself.
    public internal(set) var nextSeed: Bytes32?
    public internal(set) var twoParty: [MemberID: TwoPartyState]
    public internal(set) var memberSecrets: [MemberSecretKey: Bytes32]
    public internal(set) var ratchets: [MemberID: Bytes32]
    /// Who could compute my current ratchet state, and so my newest update secret, from what the
    /// protocol sent them (me included); `nil` while my ratchet is still ε. Every step of my
    /// ratchet narrows it to who knew that step's input, and every copy of my ratchet state that I
    /// send widens it (PROTOCOL-NOTES.md, "self-update").
    public internal(set) var myRatchetReaders: Set<MemberID>?
    /// Who could compute the update secret of my current epoch: ``myRatchetReaders`` when the
    /// epoch began (a copy of my ratchet state sent later reaches the next epoch, not this one);
    /// `nil` before my first epoch. A member of my view that holds my ratchet state but is not
    /// among them (it was added while I was removed, say) cannot read what I send until my
    /// ratchet steps again (PROTOCOL-NOTES.md, "An epoch every member of my view can read").
    public internal(set) var myEpochReaders: Set<MemberID>?
    /// Peers whose 2SM channel with me still rests on my prekey: they opened it there and I have
    /// not sent them anything since. My next acknowledgment sends each of them an empty 2SM message,
    /// which moves their next message onto a fresh key of mine, so that a prekey I must keep for
    /// others (§2.3) no longer opens what they send me (PROTOCOL-NOTES.md, "leaving the prekey").
    public internal(set) var channelsOnMyPrekey: Set<MemberID> = []
    /// Members whose ratchet I can no longer follow (§5.7): their update secrets as I derive them
    /// are wrong, so what they send is undecryptable to me until recovery.
    public internal(set) var lostRatchets: Set<MemberID> = []
    /// Operations whose seed I could not obtain: acknowledgments of them that carry a secret
    /// cannot be followed by me either.
    public internal(set) var lostSeeds: Set<OperationID> = []
    /// How many member secrets I hold per member (derived from `memberSecrets`; not encoded).
    var pendingSecretCount: [MemberID: Int] = [:]
    /// My resync requests and the ones I answered (§5.7 recovery).
    public internal(set) var resync = ResyncState()
    /// Losses found by the current `process` call (transient; never encoded or compared).
    var lossesInCall: [LostRatchet] = []
    /// Ratchets recovered by the current `process` call (transient; never encoded or compared).
    var recoveredInCall: [MemberID] = []
    /// Simulator only (`nil` otherwise, never encoded or compared): every secret this state used
    /// up, and so must have deleted (§3.3, §5.2), for the simulator's secret inventory.
    @_spi(Simulation) public internal(set) var retiredSecrets: [Bytes32]?
    /// Simulator only: every step this member took on its own ratchet (every member takes all of
    /// its own steps), the derivation graph that the simulator's key-recovery attacker walks.
    @_spi(Simulation) public internal(set) var ratchetSteps: [RatchetStep]?

    public init(me: MemberID, groupID: GroupID, suite: CipherSuiteID = .suite1) {
        self.me = me
        self.groupID = groupID
        self.suite = suite
        history = MembershipState()
        nextSeed = nil
        twoParty = [:]
        memberSecrets = [:]
        ratchets = [:]
    }

    /// Prior values of what the current call changed, so that a failed call can be undone without
    /// copying the state up front (a copy would duplicate every table the call then touches).
    var journal: Journal?

    var binding: TwoPartyBinding { TwoPartyBinding(suite: suite, groupID: groupID) }

    /// member-view(me).
    public var members: Set<MemberID> { history.members() }

    /// member-view(sender) at its envelope `seq` (§4.3), remembered for the envelopes that follow.
    public mutating func view(of sender: MemberID, atSeq seq: UInt64) -> Set<MemberID> {
        history.memoizedMembers(asSeenBy: sender, atSeq: seq)
    }

    /// The view hash (§5.6) of member-view(sender) at its envelope `seq`, remembered with the view.
    public mutating func viewHash(of sender: MemberID, atSeq seq: UInt64) -> Bytes32 {
        let suite = suite.suite
        return history.memoizedDigest(asSeenBy: sender, atSeq: seq) { KeyDerivations.viewHash(of: $0, suite: suite) }
    }

    /// The view hash (§5.6) of my own view, for the control envelope I am about to sign.
    public mutating func myViewHash() -> Bytes32 {
        let suite = suite.suite
        return history.membersDigest { KeyDerivations.viewHash(of: $0, suite: suite) }
    }

    /// Whether `sender` was a member in its own view just before its envelope `seq`: over the
    /// operations it had processed strictly before (§4.2, "operations of non-members have no
    /// effect"). A sender that had processed its own removal, or was never added, was not.
    public mutating func wasMember(_ sender: MemberID, before seq: UInt64) -> Bool {
        seq > 1 && history.memoizedMembers(asSeenBy: sender, atSeq: seq - 1).contains(sender)
    }

    /// Whether somebody outside my view could compute my newest update secret, and so read what I
    /// would send in my current epoch. An update of mine (or a remove) makes it false again.
    public var myUpdateSecretIsExposed: Bool {
        guard let readers = myRatchetReaders else { return false }
        return !readers.isSubset(of: history.members())
    }

    /// Whether a member of my view holds my ratchet state but cannot compute my current epoch's
    /// update secret, so that it could not read what I would send now. An update of mine reaches
    /// it (its seed steps the ratchet state that member holds); members that hold no state of my
    /// ratchet are not counted, since no update of mine would reach them.
    public var myEpochMissesReaders: Bool {
        guard let epochReaders = myEpochReaders, let ratchetReaders = myRatchetReaders else { return false }
        return history.members().contains { $0 != me && ratchetReaders.contains($0) && !epochReaders.contains($0) }
    }

    /// My ratchet just gave me the update secret of a new epoch of mine.
    public mutating func beganMyEpoch() { myEpochReaders = myRatchetReaders }
}

/// One update-ratchet step (§5.2), as the simulator records it: `(updateSecret, nextState) =
/// update-ratchet(state, input)`.
@_spi(Simulation) public struct RatchetStep: Sendable, Hashable {
    public let state: Bytes32?
    public let input: [UInt8]
    public let updateSecret: Bytes32
    public let nextState: Bytes32
}

extension DCGKAState {
    /// Starts recording ``retiredSecrets`` and ``ratchetSteps`` (simulator only).
    @_spi(Simulation) public mutating func startTracing() {
        retiredSecrets = []
        ratchetSteps = []
    }

    /// Stops recording (simulator only).
    @_spi(Simulation) public mutating func stopTracing() {
        retiredSecrets = nil
        ratchetSteps = nil
    }

    /// Hands over what was recorded since the last call.
    @_spi(Simulation) public mutating func takeTraces() -> (retired: [Bytes32], steps: [RatchetStep]) {
        guard retiredSecrets != nil else { return ([], []) }
        defer { startTracing() }
        return (retiredSecrets ?? [], ratchetSteps ?? [])
    }

    /// Records that `secret` has been used up (tracing only).
    @inline(__always) mutating func retire(_ secret: Bytes32?) {
        if retiredSecrets != nil, let secret { retiredSecrets!.append(secret) }
    }
}

// MARK: - Derivations (§5.2)

extension DCGKAState {
    static let welcomeInput = KeyDerivations.welcomeInput
    static let addInput = KeyDerivations.addInput

    func memberSecretKey(seed: Bytes32) -> [UInt8] { KeyDerivations.memberSecretKey(seed: seed, suite: suite.suite) }

    func memberSecret(prk: [UInt8], for id: MemberID) -> Bytes32 {
        KeyDerivations.memberSecret(prk: prk, for: id, suite: suite.suite)
    }

    /// update-ratchet(ID, input): replaces ratchet[ID] and returns the update secret.
    mutating func updateRatchet(_ id: MemberID, input: [UInt8]) -> Bytes32 {
        let state = ratchets[id]
        let (updateSecret, next) = KeyDerivations.updateRatchet(state: state, input: input, suite: suite.suite)
        if ratchetSteps != nil {
            // Every member takes every step of its own ratchet, so its own steps are the whole graph.
            if id == me { ratchetSteps!.append(RatchetStep(state: state, input: input, updateSecret: updateSecret, nextState: next)) }
            if input.count == 32 { retire(Bytes32(input)) }  // a member secret, used up
        }
        setRatchet(id, next)
        return updateSecret
    }
}

// MARK: - 2SM plumbing (encrypt-to / decrypt-from)

extension DCGKAState {
    mutating func encrypt<R: RandomNumberGenerator>(
        to id: MemberID, _ plaintext: [UInt8], keys: KeyMaterial, using rng: inout R
    ) throws(DCGKAError) -> TwoPartyMessage {
        var channel: TwoPartyState
        if let existing = twoParty[id] {
            channel = existing
        } else {
            guard let bundle = keys.peerBundles[id], bundle.identity == id else { throw .missingKeyBundle(id) }
            if !keys.alreadyVerified.contains(id) {
                do {
                    // Without a time, `now: 0` checks everything but expiry.
                    try bundle.verify(now: keys.now ?? 0, expectedSuite: suite)
                } catch {
                    throw .invalidKeyBundle(id, error)
                }
            }
            channel = TwoPartyState(peerPrekey: bundle.prekey)
        }
        let message: TwoPartyMessage
        do {
            message = try channel.send(plaintext, from: me, to: id, binding: binding, using: &rng)
        } catch {
            throw .twoParty(id, error)
        }
        setChannel(id, channel)
        if channelsOnMyPrekey.contains(id) {
            journalChannelsOnMyPrekey()
            channelsOnMyPrekey.remove(id)  // any message of mine moves the channel
        }
        return message
    }

    mutating func decrypt(from id: MemberID, _ message: TwoPartyMessage, keys: KeyMaterial) throws(DCGKAError) -> [UInt8] {
        var channel = twoParty[id] ?? TwoPartyState(peerPrekey: nil)
        // An answer to my resync opens on that request's one-time key, which only my state holds.
        var prekeys = keys.prekeys
        if message.header.origin == .other, message.header.index == 0, let prekey = message.header.prekey,
           let oneTime = resyncKey(for: prekey) {
            prekeys = PrekeyStore()
            prekeys.insert(oneTime, notAfter: UInt64.max)
        }
        let plaintext: [UInt8]
        do {
            plaintext = try channel.receive(message, from: id, to: me, binding: binding, prekeys: prekeys)
        } catch {
            throw .twoParty(id, error)
        }
        if retiredSecrets != nil, let before = twoParty[id] {
            // The key this message used (a prekey is kept by design, §2.3), and every key of the
            // channel the receive dropped.
            retire(before.secretKeyBytes(for: message.header))
            for (index, key) in before.mySecretKeys where channel.mySecretKeys[index] == nil { retire(key.secretBytes32) }
            if let old = before.receivedSecretKeyBytes, old != channel.receivedSecretKeyBytes { retire(old) }
        }
        setChannel(id, channel)
        if message.header.origin == .other, (message.header.index ?? 0) == 0, !channelsOnMyPrekey.contains(id) {
            journalChannelsOnMyPrekey()
            channelsOnMyPrekey.insert(id)
        }
        return plaintext
    }

    func decodeSecret(_ plaintext: [UInt8], from id: MemberID) throws(DCGKAError) -> Bytes32 {
        guard let secret = Bytes32(plaintext) else { throw .malformedSecret(id) }
        return secret
    }
}

// MARK: - Direct-message addressing (§6.3)

/// The sorted member view of a sender at one envelope, against which recipient tags are resolved.
struct RecipientDirectory {
    let sorted: [MemberID]
    let positions: [MemberID: Int]

    init(view: Set<MemberID>) {
        sorted = view.sorted()
        var positions: [MemberID: Int] = [:]
        positions.reserveCapacity(sorted.count)
        for (i, id) in sorted.enumerated() { positions[id] = i }
        self.positions = positions
    }

    func tag(for id: MemberID) -> RecipientTag {
        if let position = positions[id] { return .position(position) }
        return .explicit(id)
    }
}

extension DCGKAState {
    /// The direct messages of an envelope that are addressed to me, in order. Needs only my own
    /// position in the sender's view, which is a count, not a sort.
    @_spi(Simulation) public static func messages(for me: MemberID, in body: ControlBody, senderView: Set<MemberID>) -> [TwoPartyMessage] {
        guard !body.directMessages.isEmpty else { return [] }
        var myPosition: Int?
        if senderView.contains(me) {
            var below = 0
            for id in senderView where id < me { below += 1 }
            myPosition = below
        }
        return body.directMessages.compactMap { dm in
            switch dm.tag {
            case .position(let p): return p == myPosition ? dm.message : nil
            case .explicit(let id): return id == me ? dm.message : nil
            }
        }
    }
}

// MARK: - Transactions

/// The values a call replaced, recorded on first change.
struct Journal: Sendable {
    var memberSecrets: [MemberSecretKey: Bytes32?] = [:]
    var ratchets: [MemberID: Bytes32?] = [:]
    var twoParty: [MemberID: TwoPartyState?] = [:]
    var history: MembershipState?
    /// Acknowledgments recorded before `history` was saved whole (if it ever was), to undo in
    /// reverse: recording one is the common change, and saving the whole state for it would
    /// copy every table the recording then touches.
    var acknowledgments: [MembershipState.AcknowledgmentUndo] = []
    var nextSeed: Bytes32??
    var myRatchetReaders: Set<MemberID>??
    var channelsOnMyPrekey: Set<MemberID>?
    var lostRatchets: Set<MemberID>?
    var lostSeeds: Set<OperationID>?
    var resync: ResyncState?
    /// Lengths of the simulator's traces when the call began.
    var retiredCount: Int?
    var stepCount: Int?
}

extension DCGKAState: Equatable {
    /// Protocol state only; an open journal is bookkeeping, not state.
    public static func == (lhs: DCGKAState, rhs: DCGKAState) -> Bool {
        lhs.me == rhs.me && lhs.groupID == rhs.groupID && lhs.suite == rhs.suite && lhs.history == rhs.history
            && lhs.nextSeed == rhs.nextSeed && lhs.twoParty == rhs.twoParty && lhs.memberSecrets == rhs.memberSecrets
            && lhs.ratchets == rhs.ratchets && lhs.myRatchetReaders == rhs.myRatchetReaders
            && lhs.myEpochReaders == rhs.myEpochReaders
            && lhs.channelsOnMyPrekey == rhs.channelsOnMyPrekey && lhs.lostRatchets == rhs.lostRatchets
            && lhs.lostSeeds == rhs.lostSeeds && lhs.resync == rhs.resync
    }
}

extension DCGKAState {
    /// Runs `body` on this state in place; if it throws, every change it made is undone, so the
    /// state is exactly as before (the atomicity the callers rely on), at the cost of the entries
    /// touched rather than of the whole state.
    ///
    /// Afterwards the history folds what is settled, except the operations `holdingBackFolds`
    /// names (per sender, from a seq on; ``MembershipState/foldIfDue(holdingBack:)``).
    public mutating func transaction<T>(
        holdingBackFolds: [MemberID: UInt64] = [:], _ body: (inout DCGKAState) throws(DCGKAError) -> T
    ) throws(DCGKAError) -> T {
        precondition(journal == nil, "DCGKA transactions do not nest")
        journal = Journal(retiredCount: retiredSecrets?.count, stepCount: ratchetSteps?.count)
        do {
            let result = try body(&self)
            journal = nil
            // Folding renumbers the history's records, so it waits until nothing can be undone.
            history.foldIfDue(holdingBack: holdingBackFolds)
            return result
        } catch {
            rollBack()
            throw error
        }
    }

    mutating func rollBack() {
        guard let journal else { return }
        self.journal = nil
        for (key, value) in journal.memberSecrets { memberSecrets[key] = value }
        recountMemberSecrets(of: journal.memberSecrets.keys.map(\.member))
        for (id, value) in journal.ratchets { ratchets[id] = value }
        for (id, value) in journal.twoParty { twoParty[id] = value }
        if let saved = journal.history { history = saved }
        for undo in journal.acknowledgments.reversed() { history.undo(undo) }
        if let saved = journal.nextSeed { nextSeed = saved }
        if let saved = journal.myRatchetReaders { myRatchetReaders = saved }
        if let saved = journal.channelsOnMyPrekey { channelsOnMyPrekey = saved }
        if let saved = journal.lostRatchets { lostRatchets = saved }
        if let saved = journal.lostSeeds { lostSeeds = saved }
        if let saved = journal.resync { resync = saved }
        if let count = journal.retiredCount { retiredSecrets!.removeSubrange(count...) }
        if let count = journal.stepCount { ratchetSteps!.removeSubrange(count...) }
    }

    mutating func setMemberSecret(_ key: MemberSecretKey, _ value: Bytes32?) {
        if journal != nil, journal!.memberSecrets.index(forKey: key) == nil {
            journal!.memberSecrets[key] = .some(memberSecrets[key])
        }
        let old = memberSecrets[key]
        memberSecrets[key] = value
        if old == nil, value != nil {
            let count = pendingSecretCount[key.member, default: 0] + 1
            pendingSecretCount[key.member] = count
            if count > Self.maximumMemberSecretsPerMember { evictOldestMemberSecret(of: key.member) }
        } else if old != nil, value == nil {
            let count = (pendingSecretCount[key.member] ?? 1) - 1
            pendingSecretCount[key.member] = count > 0 ? count : nil
        }
    }

    /// A member that never acknowledges (a silent newcomer, a lost device) would leave one member
    /// secret per operation for ever; at most this many are kept per member (PROTOCOL-NOTES.md,
    /// "Member secrets are bounded per member").
    public static let maximumMemberSecretsPerMember = 1024

    /// Drops `member`'s member secret of the smallest operation ID. When it acknowledges that
    /// operation later I cannot take its step: its epoch confirmation tells me, and §5.7's
    /// resync gets its ratchet back.
    mutating func evictOldestMemberSecret(of member: MemberID) {
        guard let oldest = memberSecrets.keys.lazy.filter({ $0.member == member }).min() else { return }
        retire(memberSecrets[oldest])
        setMemberSecret(oldest, nil)
    }

    /// Recounts ``pendingSecretCount`` for `members` from the table (after a rollback).
    mutating func recountMemberSecrets<S: Sequence<MemberID>>(of members: S) {
        let wanted = Set(members)
        guard !wanted.isEmpty else { return }
        var counts: [MemberID: Int] = [:]
        for key in memberSecrets.keys where wanted.contains(key.member) { counts[key.member, default: 0] += 1 }
        for member in wanted { pendingSecretCount[member] = counts[member] }
    }

    mutating func removeMemberSecret(_ key: MemberSecretKey) -> Bytes32? {
        guard let value = memberSecrets[key] else { return nil }
        retire(value)
        #if DEBUG
        if PlantedDefects.isActive(.keepConsumedMemberSecret) { return value }
        #endif
        setMemberSecret(key, nil)
        return value
    }

    mutating func setRatchet(_ id: MemberID, _ value: Bytes32) {
        if journal != nil, journal!.ratchets.index(forKey: id) == nil { journal!.ratchets[id] = .some(ratchets[id]) }
        if retiredSecrets != nil, let old = ratchets[id], old != value { retire(old) }
        ratchets[id] = value
    }

    mutating func setChannel(_ id: MemberID, _ channel: TwoPartyState) {
        if journal != nil, journal!.twoParty.index(forKey: id) == nil { journal!.twoParty[id] = .some(twoParty[id]) }
        twoParty[id] = channel
    }

    /// The membership state is saved whole before its first change in a call other than an
    /// acknowledgment (an operation, a welcome), which happens once per membership operation.
    mutating func journalHistory() {
        if journal != nil, journal!.history == nil { journal!.history = history }
    }

    /// `member` acknowledged `op` in its envelope `seq` (§4.1), undoably.
    mutating func recordAcknowledgment(of op: OperationID, by member: MemberID, atSeq seq: UInt64) throws(DCGKAError) {
        let undo: MembershipState.AcknowledgmentUndo
        do { undo = try history.recordAcknowledgment(of: op, by: member, atSeq: seq) } catch { throw .membership(error) }
        if journal != nil, journal!.history == nil { journal!.acknowledgments.append(undo) }
    }

    /// My ratchet just took a step whose input is known to the members of `view` and to `others`:
    /// only who knew both the old state and the input can compute the new one.
    mutating func narrowMyRatchetReaders<S: Sequence<MemberID>>(to view: Set<MemberID>, and others: S) {
        journalMyRatchetReaders()
        if let readers = myRatchetReaders {
            let extra = Set(others)
            myRatchetReaders = readers.filter { view.contains($0) || extra.contains($0) }
        } else {
            myRatchetReaders = view.union(others)
        }
    }

    /// I sent my current ratchet state to `ids`.
    mutating func shareMyRatchet<S: Sequence<MemberID>>(with ids: S) {
        guard myRatchetReaders != nil else { return }  // ε is known to everyone anyway
        journalMyRatchetReaders()
        myRatchetReaders!.formUnion(ids)
    }

    mutating func journalMyRatchetReaders() {
        if journal != nil, journal!.myRatchetReaders == nil { journal!.myRatchetReaders = .some(myRatchetReaders) }
    }

    /// I can no longer follow `member`'s ratchet since `op` (recorded, and reported by this call).
    mutating func lose(_ member: MemberID, at op: OperationID, because reason: DCGKAError) {
        if journal != nil, journal!.lostRatchets == nil { journal!.lostRatchets = lostRatchets }
        lostRatchets.insert(member)
        lossesInCall.append(LostRatchet(member: member, operation: op, reason: reason))
    }

    /// At most this many lost seeds are remembered: an insider can make me lose any number, and
    /// forgetting one (the smallest operation ID) only means that a later acknowledgment of it is
    /// found out by its epoch confirmation instead (§5.7 rule 3).
    public static let maximumLostSeeds = 4096

    mutating func loseSeed(of op: OperationID) {
        if journal != nil, journal!.lostSeeds == nil { journal!.lostSeeds = lostSeeds }
        lostSeeds.insert(op)
        if lostSeeds.count > Self.maximumLostSeeds, let oldest = lostSeeds.min() { lostSeeds.remove(oldest) }
    }

    mutating func journalChannelsOnMyPrekey() {
        if journal != nil, journal!.channelsOnMyPrekey == nil { journal!.channelsOnMyPrekey = channelsOnMyPrekey }
    }

    mutating func journalNextSeed() {
        if journal != nil, journal!.nextSeed == nil { journal!.nextSeed = .some(nextSeed) }
    }
}

extension DCGKAState: RedactedDescription {}
extension KeyMaterial: RedactedDescription {}
extension OperationOutput: RedactedDescription {}
extension ProcessOutput: RedactedDescription {}
extension Journal: RedactedDescription {}
extension RatchetStep: RedactedDescription {}
