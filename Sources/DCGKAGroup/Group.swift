public import DCGKAEncoding
public import DCGKACrypto
public import CausalBroadcast
@_spi(Simulation) public import GroupMessaging
@_spi(Simulation) public import KeyAgreement
internal import Membership

/// Limits for one group.
public struct GroupConfiguration: Sendable, Equatable {
    public var broadcast: BroadcastConfiguration
    public var messaging: MessagingConfiguration
    /// Keeps a copy of every update secret for the simulator's equality checks. Never set this
    /// outside tests: it defeats forward secrecy.
    @_spi(Simulation) public var exposesUpdateSecrets = false

    public init(broadcast: BroadcastConfiguration = .init(), messaging: MessagingConfiguration = .init()) {
        self.broadcast = broadcast
        self.messaging = messaging
    }
}

/// An update secret as derived by one member (for the simulator only).
@_spi(Simulation) public struct UpdateSecretRecord: Sendable, Equatable {
    public let member: MemberID
    public let epoch: UInt64
    public let secret: Bytes32
}

/// What the simulator's checks read off a group since they last asked (simulator only).
@_spi(Simulation) public struct SimulationTraces: Sendable {
    /// Secrets used up, which must be gone from every encoding of the state (§3.3, §5.2, §7).
    public var retired: [Bytes32] = []
    /// Update-ratchet steps taken (the derivation graph for the key-recovery attacker).
    public var ratchetSteps: [RatchetStep] = []
    /// Hashes of the envelopes delivered, in delivery order.
    public var delivered: [Bytes32] = []
}

/// What a call produced: envelopes to hand to the transports, and events for the application.
public struct GroupOutput: Sendable {
    public var envelopes: [Envelope] = []
    public var events: [GroupEvent] = []
    public init() {}
}

/// One member's whole state in one group: DCGKA (§5), causal broadcast (§6), message ratchets (§7),
/// and the key bundles learned from the group.
///
/// Every mutating call works on a copy and assigns it back only when it succeeds, so a thrown
/// error leaves the group exactly as it was; persist the state after each call (it encodes
/// canonically and holds no secret the protocol has deleted).
public struct Group: Sendable, Equatable {
    public let identity: IdentityKey
    public internal(set) var keyAgreement: DCGKAState
    public internal(set) var broadcast: BroadcastState
    public internal(set) var messaging: MessagingState
    /// Key bundles of members, from the create, adds, welcomes and updates: for each member the
    /// newest valid one known (by `notAfter`, never downgraded, §2.3).
    public internal(set) var bundles: [MemberID: KeyBundle]
    /// My newest bundle, to be announced with my next update (``adoptOwnBundle(_:)``).
    public internal(set) var bundleToAnnounce: KeyBundle?
    /// The adder whose welcome I joined by, until a control envelope of another member that
    /// counts me in its view carries the view hash my history gives it (§5.6; PROTOCOL-NOTES.md,
    /// "View hashes"). While it is set, any view hash that differs refutes the welcome.
    public internal(set) var unconfirmedWelcome: MemberID?
    /// The adder whose welcome was refuted: the history it gave me differs from what the members
    /// hold. The group then takes nothing more and refuses every operation
    /// (``GroupError/welcomeRefuted(adder:)``); the application discards it and asks another
    /// member to add this device again.
    public internal(set) var refutedWelcome: MemberID?
    /// For a member that joined by a welcome: the create it has not checked yet, and the adder
    /// that vouched for it. The create precedes the frontier, so it is not processed, but when it
    /// arrives its group ID must be the one its creator, nonce and member list make (§6.1), and
    /// its creator and members those of the welcome's history; otherwise the welcome is refuted.
    /// ``missing`` asks for it meanwhile.
    public internal(set) var uncheckedCreate: UncheckedCreate?
    /// Per equivocator, the evidence of its fork I hold (§6.2; ``noteFork(_:)``): passed on by
    /// sync, and carried by my remove of it.
    public internal(set) var forkEvidence: [MemberID: ForkEvidence] = [:]

    /// The create a welcome joiner still has to check, and the adder that vouched for it.
    public struct UncheckedCreate: Sendable, Equatable {
        public var create: OperationID
        public var adder: MemberID
    }
    /// Filled only when the configuration asks for it (simulator); never encoded.
    @_spi(Simulation) public private(set) var derivedUpdateSecrets: [UpdateSecretRecord] = []
    /// Filled only when the configuration asks for it (simulator); never encoded.
    var deliveredTrace: [Bytes32] = []
    /// My current epoch may be known to somebody outside my view (PROTOCOL-NOTES.md,
    /// "self-update"), or not to a member of my view that an update of mine would reach
    /// ("An epoch every member of my view can read"): `send(_:prekeys:using:)` and
    /// `add(_:prekeys:now:using:)` update first, and my next update or remove clears it.
    public var needsRefresh: Bool { isMember && (keyAgreement.myUpdateSecretIsExposed || keyAgreement.myEpochMissesReaders) }
    var exposesUpdateSecrets = false

    public var me: MemberID { identity.id }
    public var groupID: GroupID { keyAgreement.groupID }
    public var suite: CipherSuiteID { keyAgreement.suite }
    /// member-view(me).
    public var members: Set<MemberID> { keyAgreement.members }
    public var isMember: Bool { refutedWelcome == nil && members.contains(me) }

    init(identity: IdentityKey, groupID: GroupID, suite: CipherSuiteID, configuration: GroupConfiguration) {
        self.identity = identity
        keyAgreement = DCGKAState(me: identity.id, groupID: groupID, suite: suite)
        broadcast = BroadcastState(groupID: groupID, suite: suite, me: identity.id, configuration: configuration.broadcast)
        messaging = MessagingState(suite: suite, configuration: configuration.messaging)
        bundles = [:]
        bundleToAnnounce = nil
        exposesUpdateSecrets = configuration.exposesUpdateSecrets
        if exposesUpdateSecrets {
            keyAgreement.startTracing()
            messaging.startTracing()
        }
    }

    @_spi(Simulation) public mutating func clearDerivedUpdateSecrets() { derivedUpdateSecrets.removeAll() }

    /// Starts recording what ``takeTraces()`` hands over, on a state that was decoded (tests
    /// that look for used-up secrets in a device's storage).
    @_spi(Simulation) public mutating func startTracing() {
        exposesUpdateSecrets = true
        keyAgreement.startTracing()
        messaging.startTracing()
    }

    /// Stops recording for the simulator (the derived update secrets are still kept).
    @_spi(Simulation) public mutating func stopTracing() {
        keyAgreement.stopTracing()
        messaging.stopTracing()
        deliveredTrace.removeAll()
    }

    /// Hands over what was recorded for the simulator since the last call.
    @_spi(Simulation) public mutating func takeTraces() -> SimulationTraces {
        guard exposesUpdateSecrets else { return SimulationTraces() }
        let (retired, steps) = keyAgreement.takeTraces()
        var traces = SimulationTraces(retired: retired, ratchetSteps: steps, delivered: deliveredTrace)
        traces.retired += messaging.takeRetiredSecrets()
        deliveredTrace.removeAll()
        return traces
    }

    /// Starts a member's epoch (§7) with a fresh update secret.
    mutating func startEpoch(_ member: MemberID, _ epoch: UInt64, _ secret: Bytes32) {
        messaging.startEpoch(for: member, epoch: epoch, updateSecret: secret)
        if exposesUpdateSecrets { derivedUpdateSecrets.append(UpdateSecretRecord(member: member, epoch: epoch, secret: secret)) }
    }

    func keys(_ prekeys: PrekeyStore, now: UInt64?, alreadyVerified: Set<MemberID> = []) -> KeyMaterial {
        KeyMaterial(prekeys: prekeys, peerBundles: bundles, now: now, alreadyVerified: alreadyVerified)
    }
}

// MARK: - Creating and joining

extension Group {
    /// Creates a group with the members whose bundles are given (verified against `now`).
    /// `ownBundle`, a current bundle of mine, is sent along so that members added later can start
    /// 2SM with me. Returns the group and the create envelope to send to everyone.
    public static func create<R: RandomNumberGenerator>(
        identity: IdentityKey, ownBundle: KeyBundle, members bundles: [KeyBundle], prekeys: PrekeyStore, now: UInt64,
        configuration: GroupConfiguration = .init(), suite: CipherSuiteID = .suite1, using rng: inout R
    ) throws(GroupError) -> (Group, Envelope) {
        guard ownBundle.identity == identity.id else { throw .invalidKeyBundle(ownBundle.identity, "not my bundle") }
        for bundle in [ownBundle] + bundles {
            do { try bundle.verify(now: now, expectedSuite: suite) } catch {
                throw .invalidKeyBundle(bundle.identity, "\(error)")
            }
        }
        let nonce = rng.bytes32()
        let groupID = KeyDerivations.groupID(
            creator: identity.id, nonce: nonce, members: bundles.map(\.identity), suite: suite.suite)
        var group = Group(identity: identity, groupID: groupID, suite: suite, configuration: configuration)
        for bundle in [ownBundle] + bundles { group.bundles[bundle.identity] = bundle }
        let (seq, prev) = group.broadcast.nextOwnPosition()
        let output: OperationOutput
        do {
            output = try group.keyAgreement.create(
                bundles: bundles, creatorBundle: ownBundle, groupNonce: nonce, seq: seq,
                keys: group.keys(prekeys, now: now, alreadyVerified: Set(bundles.map(\.identity))), using: &rng)
        } catch {
            throw .protocolError(error)
        }
        let envelope = group.seal(.create, seq: seq, prev: prev, acked: nil, body: output.body)
        group.startMyEpoch(seq, output.updateSecret)
        return (group, envelope)
    }

    /// Joins from the envelope that invites me: the group's create (listing me) or an add of me
    /// (carrying my welcome). Processes it and returns the group with my acknowledgment.
    public static func join<R: RandomNumberGenerator>(
        identity: IdentityKey, invitation: Envelope, prekeys: PrekeyStore,
        configuration: GroupConfiguration = .init(), using rng: inout R
    ) throws(GroupError) -> (Group, GroupOutput) {
        guard invitation.hasValidSignature() else { throw .invalidInvitation("bad signature") }
        guard let kind = ControlKind(rawValue: invitation.kind.rawValue), kind == .create || kind == .add else {
            throw .invalidInvitation("not a create or an add")
        }
        let body: ControlBody
        do { body = try ControlBody(kind: kind, payload: invitation.payload ?? []) } catch {
            throw .invalidInvitation("\(error)")
        }
        var group = Group(identity: identity, groupID: invitation.groupID, suite: invitation.suite, configuration: configuration)
        switch body.fields {
        case .create(let bundles):
            guard invitation.seq == 1, bundles.contains(where: { $0.identity == identity.id }) else { throw .invitationNotForMe }
            for bundle in bundles { group.bundles[bundle.identity] = bundle }
        case .add(let bundle, let welcome):
            guard bundle.identity == identity.id else { throw .invitationNotForMe }
            let context: WelcomeContext
            do { context = try WelcomeContext(wireBytes: try welcome.decodeContext()) } catch {
                throw .invalidInvitation("\(error)")
            }
            for known in context.bundles {
                do { try known.checkKeys() } catch { throw .invalidInvitation("the welcome's bundle of \(known.identity): \(error)") }
                group.adopt(known)
            }
            group.adopt(bundle)
            group.unconfirmedWelcome = invitation.sender
            // My own entry is ignored (§5.6): my chain is mine to number, and an adder could make
            // it start anywhere (heads beyond any envelope's seq do not decode).
            var frontier = context.frontier
            frontier.heads[identity.id] = nil
            group.broadcast.adoptFrontier(frontier)
        default:
            throw .invalidInvitation("not a create or an add")
        }
        var output = GroupOutput()
        // Its signature was checked above; the broadcast layer need not check the same bytes again.
        switch group.broadcast.receive(
            invitation, isKnownSender: { $0 == invitation.sender }, verifySignature: { $0.hash == invitation.hash }) {
        case .buffered: break
        case let other: throw .invalidInvitation("\(other)")
        }
        group.deliverAll(prekeys: prekeys, into: &output, using: &rng)
        if kind == .add, let create = group.keyAgreement.history.createOperation {
            group.uncheckedCreate = UncheckedCreate(create: create, adder: invitation.sender)
        }
        guard group.keyAgreement.history.contains(invitation.operationID) else {
            throw .invalidInvitation("the invitation could not be processed: \(output.events)")
        }
        // The adder's own add already contradicts the history it gave me (§5.6).
        if let adder = group.refutedWelcome { throw .welcomeRefuted(adder: adder) }
        // What the welcome named beside its membership is kept only for participants of it: an
        // adder cannot fill my state with bundles or frontier heads of strangers (which could
        // pass the decoder's limits, or make every welcome I build too large).
        let history = group.keyAgreement.history
        group.bundles = group.bundles.filter { history.isKnownParticipant($0.key) }
        group.broadcast.forgetIdleSenders { history.isKnownParticipant($0) }
        output.events.insert(.joined(by: invitation.sender), at: 0)
        return (group, output)
    }
}

/// The group layer's part of a welcome (§5.6): the adder's causal frontier and the key bundles of
/// the members, so the new member can skip what precedes its add and start 2SM with anyone.
public struct WelcomeContext: Equatable, Sendable, WireCodable {
    public var frontier: Frontier
    public var bundles: [KeyBundle]

    public static let maximumBundles = MembershipState.maxMembers

    public func encode(to writer: inout WireWriter) {
        writer.write(frontier)
        writer.writeArray(bundles)
    }

    public static func decode(from reader: inout WireReader) throws(WireError) -> WelcomeContext {
        let frontier = try reader.read(Frontier.self)
        let bundles = try reader.readArray(KeyBundle.self, field: "welcome bundles", limit: maximumBundles)
        for (a, b) in zip(bundles, bundles.dropFirst()) where !(a.identity < b.identity) {
            throw .invalidValue(field: "welcome bundle order")
        }
        return WelcomeContext(frontier: frontier, bundles: bundles)
    }
}

// MARK: - Operations

extension Group {
    /// Adds the member whose bundle is given (verified against `now`). Returns the envelopes to
    /// send, in order: an update of mine first when ``needsRefresh`` (the welcome hands the new
    /// member my ratchet state, which must not be known outside my view), then the add.
    public mutating func add<R: RandomNumberGenerator>(
        _ bundle: KeyBundle, prekeys: PrekeyStore, now: UInt64, using rng: inout R
    ) throws(GroupError) -> [Envelope] {
        do { try bundle.verify(now: now, expectedSuite: suite) } catch {
            throw .invalidKeyBundle(bundle.identity, "\(error)")
        }
        var copy = self
        var envelopes: [Envelope] = []
        if copy.needsRefresh || copy.bundleToAnnounce != nil {
            envelopes.append(try copy.update(prekeys: prekeys, now: now, using: &rng))
        }
        copy.adopt(bundle)  // verified above; an older one than I know is used for this add only
        let context = WelcomeContext(
            frontier: copy.broadcast.frontier,
            bundles: copy.members.compactMap { copy.bundles[$0] }.sorted { $0.identity < $1.identity })
        let contextSize = context.wireBytes.count
        guard contextSize <= Welcome.maximumContextLength else { throw .payloadTooLarge(bytes: contextSize) }
        let envelope = try copy.operate(.add, prekeys: prekeys, now: now) { (state, seq, keys) throws(DCGKAError) in
            var keys = keys
            keys.alreadyVerified.insert(bundle.identity)  // checked at the top of this call
            return try state.add(bundle, seq: seq, welcomeContext: context.wireBytes, keys: keys, using: &rng)
        }
        self = copy
        return envelopes + [envelope]
    }

    public mutating func remove<R: RandomNumberGenerator>(
        _ member: MemberID, prekeys: PrekeyStore, now: UInt64? = nil, using rng: inout R
    ) throws(GroupError) -> Envelope {
        var copy = self
        let evidence = forkEvidence[member]
        let envelope = try copy.operate(.remove, prekeys: prekeys, now: now) { (state, seq, keys) throws(DCGKAError) in
            var output = try state.remove(member, seq: seq, keys: keys, cutFrom: evidence?.cutSeq, using: &rng)
            output.body.forkEvidence = evidence?.wireBytes
            return output
        }
        self = copy
        return envelope
    }

    /// A fresh seed for my view (post-compromise security); it also announces my newest bundle
    /// when I have adopted one since my last update.
    public mutating func update<R: RandomNumberGenerator>(
        prekeys: PrekeyStore, now: UInt64? = nil, using rng: inout R
    ) throws(GroupError) -> Envelope {
        var copy = self
        let announced = copy.bundleToAnnounce
        let envelope = try copy.operate(.update, prekeys: prekeys, now: now) { (state, seq, keys) throws(DCGKAError) in
            try state.update(seq: seq, keys: keys, announcing: announced, using: &rng)
        }
        if let announced {
            copy.bundles[me] = announced
            copy.bundleToAnnounce = nil
        }
        self = copy
        return envelope
    }

    // MARK: Recovery (§5.7)

    /// Whether I lost a member's ratchet that no request of mine still waits for: then
    /// ``requestResync(using:)`` asks for it.
    public var needsResync: Bool {
        guard isMember else { return false }
        let awaited = keyAgreement.resync.requests.reduce(into: Set<MemberID>()) { $0.formUnion($1.awaiting) }
        return !keyAgreement.lostRatchets.intersection(members).subtracting([me]).subtracting(awaited).isEmpty
    }

    /// Asks the members whose ratchets I lost for their ratchet states (PROTOCOL-NOTES.md,
    /// "Recovery"). The answers come on a fresh one-time key that this state keeps until the
    /// request ends. Changes no membership.
    public mutating func requestResync<R: RandomNumberGenerator>(using rng: inout R) throws(GroupError) -> Envelope {
        var copy = self
        let envelope = try copy.operate(.resync, prekeys: PrekeyStore(), now: nil) { (state, seq, _) throws(DCGKAError) in
            try state.requestResync(seq: seq, using: &rng)
        }
        self = copy
        return envelope
    }

    // MARK: Key bundles (§2.3)

    /// Takes a bundle of mine made after I rotated my prekey: my next update carries it to the
    /// group (``send(_:prekeys:now:using:)`` and ``add(_:prekeys:now:using:)`` issue that update
    /// first), so that members who open a channel with me later use the new prekey.
    public mutating func adoptOwnBundle(_ bundle: KeyBundle, now: UInt64) throws(GroupError) {
        guard bundle.identity == me else { throw .invalidKeyBundle(bundle.identity, "not my bundle") }
        do { try bundle.verify(now: now, expectedSuite: suite) } catch { throw .invalidKeyBundle(bundle.identity, "\(error)") }
        guard bundle.notAfter > (bundleToAnnounce ?? bundles[me])?.notAfter ?? 0 else {
            throw .invalidKeyBundle(bundle.identity, "not newer than the one I have")
        }
        bundleToAnnounce = bundle
    }

    /// Takes a newer bundle of a member from anywhere the application learned it (a contact, a
    /// directory): verified against `now`, and kept only when newer than the one I have.
    /// Returns whether it was kept.
    @discardableResult
    public mutating func offerBundle(_ bundle: KeyBundle, now: UInt64) throws(GroupError) -> Bool {
        // Only for participants: the bundle table is bounded by the membership's.
        guard keyAgreement.history.isKnownParticipant(bundle.identity) else {
            throw .invalidKeyBundle(bundle.identity, "not a participant of this group")
        }
        do { try bundle.verify(now: now, expectedSuite: suite) } catch { throw .invalidKeyBundle(bundle.identity, "\(error)") }
        return adopt(bundle)
    }

    /// The newest-valid-bundle rule of §2.3 for a bundle that arrived in the group: the first one
    /// known for a member is kept (its signature is checked when a channel is opened with it);
    /// a later one only when its `notAfter` is later and its signature and keys are good. Never
    /// downgraded, so an old bundle replayed in an add changes nothing.
    @discardableResult
    mutating func adopt(_ bundle: KeyBundle) -> Bool {
        guard let known = bundles[bundle.identity] else {
            bundles[bundle.identity] = bundle
            return true
        }
        // `now: 0`: expiry limits where a bundle is offered, not a channel inside a group.
        guard bundle.notAfter > known.notAfter, (try? bundle.verify(now: 0, expectedSuite: suite)) != nil else { return false }
        bundles[bundle.identity] = bundle
        return true
    }

    mutating func operate(
        _ kind: EnvelopeKind, prekeys: PrekeyStore, now: UInt64?,
        _ body: (inout DCGKAState, UInt64, KeyMaterial) throws(DCGKAError) -> OperationOutput
    ) throws(GroupError) -> Envelope {
        if let adder = refutedWelcome { throw .welcomeRefuted(adder: adder) }
        guard isMember else { throw .notAMember }
        let (seq, prev) = broadcast.nextOwnPosition()
        let output: OperationOutput
        do { output = try body(&keyAgreement, seq, keys(prekeys, now: now)) } catch { throw .protocolError(error) }
        // The callers run this on a copy, so a refusal here leaves the group as it was.
        let size = output.body.payload.count
        guard size <= Envelope.maximumPayloadBytes else { throw .payloadTooLarge(bytes: size) }
        let envelope = seal(kind, seq: seq, prev: prev, acked: nil, body: output.body)
        startMyEpoch(seq, output.updateSecret)
        return envelope
    }

    /// Encrypts an application message, first refreshing my keys with an update when my current
    /// epoch may be known to someone I consider removed. Returns the envelopes to send, in order.
    public mutating func send<R: RandomNumberGenerator>(
        _ bytes: [UInt8], prekeys: PrekeyStore, now: UInt64, using rng: inout R
    ) throws(GroupError) -> [Envelope] {
        var copy = self
        var envelopes: [Envelope] = []
        if copy.needsRefresh || copy.bundleToAnnounce != nil {
            envelopes.append(try copy.update(prekeys: prekeys, now: now, using: &rng))
        }
        envelopes.append(try copy.send(bytes, now: now))
        self = copy
        return envelopes
    }

    public mutating func send<R: RandomNumberGenerator>(
        text: String, prekeys: PrekeyStore, now: UInt64, using rng: inout R
    ) throws(GroupError) -> [Envelope] {
        try send(Array(text.utf8), prekeys: prekeys, now: now, using: &rng)
    }

    /// Encrypts an application message with my current message ratchet. `now` (seconds since the
    /// Unix epoch) gives the header its coarse time (§6.1), by which holders judge its retention.
    /// Throws ``GroupError/refreshRequired`` when my keys must be refreshed first; the variant with
    /// `prekeys` does that.
    public mutating func send(_ bytes: [UInt8], now: UInt64) throws(GroupError) -> Envelope {
        if let adder = refutedWelcome { throw .welcomeRefuted(adder: adder) }
        guard isMember else { throw .notAMember }
        guard !needsRefresh else { throw .refreshRequired }
        var copy = self
        let (seq, prev) = copy.broadcast.nextOwnPosition()
        let ciphertext: ApplicationCiphertext
        do {
            ciphertext = try copy.messaging.encrypt(bytes, as: me) { epoch, index in
                ApplicationHeader(
                    version: Envelope.currentVersion, suite: suite, groupID: groupID, sender: me,
                    seq: seq, prev: prev, epoch: epoch, index: index)
            }
        } catch {
            throw .messaging(error)
        }
        let envelope = Envelope.sign(
            identity: identity, suite: suite, groupID: groupID, seq: seq, prev: prev, kind: .application, acked: nil,
            application: ApplicationFields(
                epoch: ciphertext.epoch, index: ciphertext.index, hour: ApplicationFields.hour(ofSeconds: now)),
            payload: ciphertext.wireBytes)
        copy.broadcast.recordOwn(envelope)
        self = copy
        return envelope
    }

    public mutating func send(text: String, now: UInt64) throws(GroupError) -> Envelope { try send(Array(text.utf8), now: now) }

    /// Signs a control envelope of mine, with the hash of my view (§5.6), and records it as delivered.
    mutating func seal(_ kind: EnvelopeKind, seq: UInt64, prev: Bytes32?, acked: EnvelopeReference?, body: ControlBody) -> Envelope {
        var body = body
        body.viewHash = keyAgreement.myViewHash()
        let envelope = Envelope.sign(
            identity: identity, suite: suite, groupID: groupID, seq: seq, prev: prev,
            kind: kind, acked: acked, payload: body.payload)
        broadcast.recordOwn(envelope)
        return envelope
    }

    mutating func startMyEpoch(_ seq: UInt64, _ secret: Bytes32?) {
        guard let secret else { return }
        startEpoch(me, seq, secret)
        keyAgreement.beganMyEpoch()
    }
}

// MARK: - Receiving

extension Group {
    /// Takes one envelope from any transport. Delivers it and everything it unblocks, in the
    /// relaxed causal order of §6.2, and returns my acknowledgments and the events.
    ///
    /// The envelope's Ed25519 signature is checked before anything else.
    public mutating func receive<R: RandomNumberGenerator>(
        _ envelope: Envelope, prekeys: PrekeyStore, using rng: inout R
    ) -> GroupOutput {
        receive(envelope, prekeys: prekeys, using: &rng, verifySignature: { $0.hasValidSignature() })
    }

    /// As ``receive(_:prekeys:using:)``, with the signature check supplied by a host that runs many
    /// members in one process and shares one check per envelope (the simulator); see
    /// ``BroadcastState/receive(_:isKnownSender:verifySignature:)``. Not for applications: a
    /// wrong closure accepts forgeries.
    @_spi(Simulation) public mutating func receive<R: RandomNumberGenerator>(
        _ envelope: Envelope, prekeys: PrekeyStore, using rng: inout R,
        verifySignature: (Envelope) -> Bool
    ) -> GroupOutput {
        var output = GroupOutput()
        guard refutedWelcome == nil else { return output }
        // Asked once, up front: the closure may not read `keyAgreement` while `broadcast` is being
        // mutated, and copying the membership state for it would cost more than the question.
        let senderKnown = keyAgreement.history.maySend(envelope.sender)
        let sender = envelope.sender
        switch broadcast.receive(
            envelope, isKnownSender: { $0 == sender && senderKnown }, verifySignature: verifySignature) {
        case .buffered, .skippedBeforeJoin:
            if let unchecked = uncheckedCreate, envelope.operationID == unchecked.create { checkCreate(envelope, into: &output) }
            // A skipped envelope from before my join can still release acknowledgments of it.
            deliverAll(prekeys: prekeys, into: &output, using: &rng)
        case .duplicate:
            // The head of the welcome's frontier is known by hash only, and its signature unchecked.
            if let unchecked = uncheckedCreate, envelope.operationID == unchecked.create, verifySignature(envelope) {
                checkCreate(envelope, into: &output)
            }
            // A full copy of an application envelope I delivered pruned (§6.1) is not a duplicate.
            if envelope.kind == .application, !envelope.isPruned { deliverLatePayload(envelope, into: &output) }
        case .payloadRestored:
            break
        case .rejected(let error):
            if case .equivocation(let sender, _) = error {
                if let evidence = broadcast.takeForkEvidence() { noteFork(evidence) }
                output.events.append(.equivocation(sender))
            } else {
                output.events.append(.rejected(error))
            }
        }
        return output
    }

    /// Delivers what a cut released: acknowledgments of the cut-off part of a chain, and a
    /// returning member's add that waited for its adder's side of a fork. A host calls it after
    /// a ``receive(_:prekeys:using:)`` that reported an equivocation, once it has handed the group
    /// the evidence it could build (``noteFork(_:)``): so that my welcome-ack, if the add of me
    /// was waiting, carries that evidence (PROTOCOL-NOTES.md, "Equivocation", the returning
    /// participant).
    public mutating func deliverReleased<R: RandomNumberGenerator>(prekeys: PrekeyStore, using rng: inout R) -> GroupOutput {
        var output = GroupOutput()
        guard refutedWelcome == nil else { return output }
        deliverAll(prekeys: prekeys, into: &output, using: &rng)
        return output
    }

    /// What a host that stores envelopes does after a ``receive(_:prekeys:using:)`` that refused
    /// `envelope` as a fork of its sender: when the other side is one I delivered earlier (the
    /// group kept only its hash), it builds the evidence from its copy (`heldCopy`, asked for
    /// that envelope's hash), then delivers what the cut released (``deliverReleased(prekeys:using:)``).
    public mutating func followFork<R: RandomNumberGenerator>(
        of envelope: Envelope, heldCopy: (Bytes32) -> Envelope?, prekeys: PrekeyStore, using rng: inout R
    ) -> GroupOutput {
        if forkEvidence[envelope.sender] == nil, let held = forkCounterpart(of: envelope), let copy = heldCopy(held.hash),
           let evidence = try? ForkEvidence(copy, envelope) {
            noteFork(evidence)
        }
        return deliverReleased(prekeys: prekeys, using: &rng)
    }

    /// Envelopes I am waiting for, for the transports to fetch: the broadcast layer's gaps and
    /// acknowledged envelopes, and the positions a waiting welcome of mine still needs
    /// (``returningWelcomeFrontier(of:me:)``).
    public var missing: [MissingEnvelope] {
        var result = broadcast.missing()
        guard !keyAgreement.history.isEmpty else { return result }
        if let unchecked = uncheckedCreate {
            result.append(.range(sender: unchecked.create.sender, from: unchecked.create.seq, through: unchecked.create.seq))
        }
        for envelope in broadcast.nextInLineEnvelopes {
            guard let frontier = Self.returningWelcomeFrontier(of: envelope, me: me) else { continue }
            for (sender, head) in frontier.heads.sorted(by: { $0.key < $1.key }) {
                let delivered = broadcast.deliveredSeq(of: sender)
                let through = broadcast.reachableSeq(of: sender, upTo: head.seq)
                if delivered < through { result.append(.range(sender: sender, from: delivered + 1, through: through)) }
                // My adder took another side of that sender's fork: its head, once here, cuts it off.
                if broadcast.conflictingFrontierHead(head, of: sender), !broadcast.isBuffered(head.hash) { result.append(.hash(head.hash)) }
            }
        }
        return result
    }

    /// The adder's frontier in an add of me, without my own entry; nil for any other envelope
    /// (or one that does not decode: processing it reports that). A member that already holds
    /// state when it is added again (a removed member that kept following the group, or one added
    /// twice concurrently) processes the welcome only once it has delivered everything the adder
    /// had: the adder's membership state may have folded operations whose individual order the
    /// envelopes before its frontier still need (PROTOCOL-NOTES.md, "A returning member waits for
    /// its adder's frontier"). A new member instead skips to the frontier (``join(identity:invitation:prekeys:configuration:using:)``).
    static func returningWelcomeFrontier(of envelope: Envelope, me: MemberID) -> Frontier? {
        guard envelope.kind == .add, let payload = envelope.payload,
              let body = try? ControlBody(kind: .add, payload: payload),
              case .add(let bundle, let welcome) = body.fields, bundle.identity == me,
              let bytes = try? welcome.decodeContext(), var context = try? WelcomeContext(wireBytes: bytes)
        else { return nil }
        context.frontier.heads[me] = nil
        return context.frontier
    }

    mutating func deliverAll<R: RandomNumberGenerator>(prekeys: PrekeyStore, into output: inout GroupOutput, using rng: inout R) {
        var frontiers: [Bytes32: Frontier?] = [:]
        let me = me
        while true {
            let holdsState = !keyAgreement.history.isEmpty
            let next = broadcast.nextDeliverable(holdingBack: holdsState ? .add : nil, until: { envelope in
                if let known = frontiers[envelope.hash] { return known }
                let frontier = Self.returningWelcomeFrontier(of: envelope, me: me)
                frontiers[envelope.hash] = frontier
                return frontier
            })
            guard let envelope = next else { break }
            // A returning member's welcome did not wait for senders only the other side of a fork
            // introduced (nothing of them is delivered here): their part of the adder's frontier
            // is skipped, as a new member skips all of it, since the welcome's history holds it.
            if holdsState, envelope.kind == .add, let frontier = frontiers[envelope.hash] ?? nil {
                let strangers = frontier.heads.filter { broadcast.isStrangerPastCut($0.key) }
                if !strangers.isEmpty { broadcast.adoptFrontier(Frontier(heads: strangers)) }
            }
            if envelope.kind == .application {
                deliverApplication(envelope, into: &output)
            } else {
                deliverControl(envelope, prekeys: prekeys, into: &output, using: &rng)
            }
            broadcast.markDelivered(envelope)
            if exposesUpdateSecrets { deliveredTrace.append(envelope.hash) }
        }
    }

    mutating func deliverApplication(_ envelope: Envelope, into output: inout GroupOutput) {
        guard keyAgreement.wasMember(envelope.sender, before: envelope.seq) else {
            output.events.append(.fromNonMember(envelope.sender, seq: envelope.seq))
            return
        }
        guard let header = ApplicationHeader(of: envelope) else { return }  // every application envelope has one
        guard let payload = envelope.payload else {
            // Pruned (§6.1): delivered in order as expired; its key waits for a full copy.
            switch messaging.keepKey(for: header, envelope: envelope.hash) {
            case .success: output.events.append(.expired(from: envelope.sender, seq: envelope.seq))
            case .failure(let reason): output.events.append(.undecryptable(from: envelope.sender, seq: envelope.seq, reason: reason))
            }
            return
        }
        decrypt(envelope, payload: payload, header: header, into: &output)
    }

    mutating func decrypt(_ envelope: Envelope, payload: [UInt8], header: ApplicationHeader, into output: inout GroupOutput) {
        let ciphertext: ApplicationCiphertext
        do { ciphertext = try ApplicationCiphertext(wireBytes: payload) } catch {
            output.events.append(.undecryptable(from: envelope.sender, seq: envelope.seq, reason: .authenticationFailed))
            return
        }
        switch messaging.decrypt(ciphertext, header: header) {
        case .success(let bytes): output.events.append(.message(from: envelope.sender, seq: envelope.seq, bytes: bytes))
        case .failure(let reason): output.events.append(.undecryptable(from: envelope.sender, seq: envelope.seq, reason: reason))
        }
    }

    /// The payload of an application envelope that was delivered pruned: decrypted with the key
    /// kept for exactly that envelope (its hash, which covers header and signature, was recorded
    /// when the header was delivered), once. Anything else that looks like a duplicate is dropped
    /// silently; another envelope signed at the same position (a fork) never opens the key.
    mutating func deliverLatePayload(_ envelope: Envelope, into output: inout GroupOutput) {
        guard let header = ApplicationHeader(of: envelope), let payload = envelope.payload,
              messaging.keptKeyEnvelope(of: envelope.sender, epoch: header.epoch, index: header.index) == envelope.hash
        else { return }
        decrypt(envelope, payload: payload, header: header, into: &output)
    }

    mutating func deliverControl<R: RandomNumberGenerator>(
        _ envelope: Envelope, prekeys: PrekeyStore, into output: inout GroupOutput, using rng: inout R
    ) {
        let failed = { (error: GroupProcessingError) in
            GroupEvent.processingFailed(sender: envelope.sender, seq: envelope.seq, error: error)
        }
        guard let kind = ControlKind(rawValue: envelope.kind.rawValue), let payload = envelope.payload else { return }
        let body: ControlBody
        do { body = try ControlBody(kind: kind, payload: payload) } catch {
            output.events.append(failed(.undecodable(error)))
            return
        }
        var acked: OperationID?
        if let reference = envelope.acked {
            // Delivered without its target only when that position holds another envelope here
            // (a fork, §6.2): such an acknowledgment has no effect on my state, except that its 2SM
            // messages to me are read, so that my channel with its sender stays in step.
            guard let id = broadcast.operationID(ofAcknowledgeable: reference.hash), id == reference.operationID else {
                // Its sender may have stepped its ratchet for an operation I never processed: if
                // it confirms a new epoch, I lost that ratchet (and recover it by §5.7).
                let keys = keys(prekeys, now: nil)
                let losses = (try? keyAgreement.transaction { (state) throws(DCGKAError) in
                    try state.acknowledgmentOfAnotherBranch(sender: envelope.sender, seq: envelope.seq, body: body, keys: keys)
                }) ?? []
                for loss in losses { output.events.append(.lostRatchet(of: loss.member, at: loss.operation, reason: loss.reason)) }
                // Past a cut I hold, it is what the equivocation rule expects; otherwise it is
                // the first sign of a fork I have not seen yet.
                if broadcast.cuts[reference.sender].map({ reference.seq < $0 }) ?? true {
                    output.events.append(failed(.unknownAcknowledgedEnvelope))
                }
                return
            }
            acked = id
        }
        let before = keyAgreement.members
        let wasMember = before.contains(me)
        let (mySeq, myPrev) = broadcast.nextOwnPosition()
        let keys = keys(prekeys, now: nil)
        // A remove that carries evidence of its target's fork cuts the target off (§6.2).
        var evidence: ForkEvidence?
        if case .remove(let removed) = body.fields, let bytes = body.forkEvidence {
            evidence = checkedCut(bytes, removing: removed)
            if evidence == nil { output.events.append(failed(.invalidForkEvidence)) }
        }
        // A welcome-ack that carries evidence (a returning member's, PROTOCOL-NOTES.md,
        // "Equivocation"): the fork is noted before what the welcome-ack says its sender knows
        // is recorded, so that the forked operations are held back from folding below.
        if case .welcomeAck = body.fields, let bytes = body.forkEvidence {
            if let passed = checkedEvidence(bytes), passed.sender != envelope.sender {
                if noteFork(passed) { output.events.append(.equivocation(passed.sender)) }
            } else {
                output.events.append(failed(.invalidForkEvidence))
            }
        }
        let result: ProcessOutput
        var tooLarge: Int?
        do {
            result = try keyAgreement.transaction(holdingBackFolds: foldsHeldBack) { (state) throws(DCGKAError) in
                let result = try state.process(
                    sender: envelope.sender, seq: envelope.seq, body: body, acked: acked, mySeq: mySeq,
                    keys: keys, cut: evidence?.cutSeq, using: &rng)
                if let size = result.acknowledgment?.payload.count, size > Envelope.maximumPayloadBytes {
                    tooLarge = size
                    throw .invalidOperation("acknowledgment too large")  // rolls the call back
                }
                return result
            }
        } catch {
            output.events.append(failed(tooLarge.map { .acknowledgmentTooLarge(bytes: $0) } ?? .protocolError(error)))
            return
        }
        if result.fromNonMember {
            output.events.append(.fromNonMember(envelope.sender, seq: envelope.seq))
            return
        }
        checkViewHash(of: envelope, body: body, into: &output)
        if let evidence, noteFork(evidence) { output.events.append(.equivocation(evidence.sender)) }
        adoptCuts()
        for loss in result.lost { output.events.append(.lostRatchet(of: loss.member, at: loss.operation, reason: loss.reason)) }
        for member in result.recovered { output.events.append(.recovered(member, at: envelope.seq)) }
        if case .resync(let generation, _, _) = body.fields { output.events.append(.resyncRequested(by: envelope.sender, generation: generation)) }
        // Bundles are kept only from an envelope that was processed (DCGKA refuses unusable keys),
        // by the newest-valid rule.
        switch body.fields {
        case .create(let list):
            for bundle in list { adopt(bundle) }
        case .add(let bundle, _):
            adopt(bundle)
        case .update(let bundle?) where bundle.identity == envelope.sender && (try? bundle.checkKeys()) != nil:
            adopt(bundle)
        default: break
        }
        if let secret = result.senderSecret {
            startEpoch(envelope.sender, envelope.seq, secret)
        }
        if var acknowledgment = result.acknowledgment {
            if case .welcomeAck = acknowledgment.fields, let held = evidenceForMyWelcomeAck,
               acknowledgment.payload.count + ControlBody.maximumForkEvidenceBytes + 8 <= Envelope.maximumPayloadBytes {
                acknowledgment.forkEvidence = held.wireBytes
            }
            let ackKind: EnvelopeKind = switch acknowledgment.kind {
            case .addAck: .addAck
            case .welcomeAck: .welcomeAck
            case .resyncAnswer: .resyncAnswer
            default: .ack
            }
            output.envelopes.append(seal(ackKind, seq: mySeq, prev: myPrev, acked: envelope.reference, body: acknowledgment))
            startMyEpoch(mySeq, result.mySecret)
        }
        reportMembershipChange(from: before, wasMember: wasMember, envelope: envelope, kind: kind, into: &output)
    }

    /// §5.6: the sender's view at this envelope, as my history gives it, must hash to the view
    /// hash it signed. A difference while my welcome is unconfirmed refutes the welcome (the
    /// adder gave me a history the members do not hold); afterwards it is reported. A matching
    /// hash from a member other than my adder whose view counts me confirms the welcome.
    mutating func checkViewHash(of envelope: Envelope, body: ControlBody, into output: inout GroupOutput) {
        let matches = keyAgreement.viewHash(of: envelope.sender, atSeq: envelope.seq) == body.viewHash  // constant time
        guard let adder = unconfirmedWelcome else {
            if !matches { output.events.append(.viewMismatch(sender: envelope.sender, seq: envelope.seq)) }
            return
        }
        if !matches {
            output.events.append(.viewMismatch(sender: envelope.sender, seq: envelope.seq))
            output.events.append(.welcomeRefuted(adder: adder))
            refutedWelcome = adder
            unconfirmedWelcome = nil
        } else if envelope.sender != adder, keyAgreement.view(of: envelope.sender, atSeq: envelope.seq).contains(me) {
            unconfirmedWelcome = nil
        }
    }

    /// The create of a group I joined by a welcome, when it arrives (``uncheckedCreate``): its
    /// signature was checked by the broadcast layer; its group ID binding (§6.1) and its creator
    /// and member list must agree with the welcome's history.
    mutating func checkCreate(_ envelope: Envelope, into output: inout GroupOutput) {
        guard let create = uncheckedCreate?.create, let adder = uncheckedCreate?.adder else { return }
        uncheckedCreate = nil
        var agrees = false
        if envelope.kind == .create, envelope.sender == create.sender, let payload = envelope.payload,
           let body = try? ControlBody(kind: .create, payload: payload), case .create(let bundles) = body.fields,
           let nonce = body.groupNonce {
            let listed = bundles.map(\.identity).filter { $0 != envelope.sender }
            let bound = KeyDerivations.groupID(creator: envelope.sender, nonce: nonce, members: listed, suite: suite.suite) == groupID
            // The welcome's create, when it is not folded, must list the same members.
            let sameMembers: Bool = if case .create(let members)? = keyAgreement.history.create?.kind {
                Set(members) == Set(listed)
            } else { true }
            agrees = bound && sameMembers
        }
        guard !agrees else { return }
        output.events.append(.welcomeRefuted(adder: adder))
        refutedWelcome = adder
        unconfirmedWelcome = nil
    }

    func reportMembershipChange(
        from before: Set<MemberID>, wasMember: Bool, envelope: Envelope, kind: ControlKind, into output: inout GroupOutput
    ) {
        let after = members
        if kind == .update { output.events.append(.updated(by: envelope.sender)) }
        // Unchanged views share storage, so this is O(1) for the common acknowledgment.
        guard !before.isEmpty, after != before else { return }  // joining: the .joined event says it
        let added = after.subtracting(before).subtracting([me]).sorted()
        let removed = before.subtracting(after).subtracting([me]).sorted()
        if !added.isEmpty { output.events.append(.membersAdded(added, by: envelope.sender)) }
        if !removed.isEmpty { output.events.append(.membersRemoved(removed, by: envelope.sender)) }
        if wasMember && !after.contains(me) { output.events.append(.removedFromGroup(by: envelope.sender)) }
    }
}

extension ApplicationHeader {
    /// The associated data of the application message in `envelope` (§7): epoch and index from
    /// its signed header (the ciphertext repeats them and must agree). Nil for a control envelope.
    public init?(of envelope: Envelope) {
        guard let fields = envelope.application else { return nil }
        self.init(
            version: envelope.version, suite: envelope.suite, groupID: envelope.groupID, sender: envelope.sender,
            seq: envelope.seq, prev: envelope.prev, epoch: fields.epoch, index: fields.index)
    }
}

extension Group: RedactedDescription {}
extension UpdateSecretRecord: RedactedDescription {}
extension SimulationTraces: RedactedDescription {}
