internal import DCGKAEncoding
internal import DCGKACrypto
internal import CausalBroadcast
@_spi(Simulation) internal import DCGKAGroup
internal import GroupMessaging
@_spi(Simulation) internal import KeyAgreement
internal import TwoPartyMessaging

/// Knobs of one simulated run (§9). Everything follows from `seed`.
public struct SimulationConfiguration: Sendable {
    public var members: Int
    public var operations: Int
    public var seed: UInt64
    /// Delay, reordering, duplication, partitions and offline members.
    public var adversarial: Bool
    /// Share of operations that are application messages; the rest are updates, adds and removes.
    public var messageShare: Double
    /// How many forward-secrecy and post-compromise snapshots to take.
    public var compromises: Int
    /// Devices receive side by side on up to this many threads. The outcome does not depend on
    /// it: each device draws from its own seeded generator and results are applied in device order.
    public var threads: Int
    /// One delivery in this many also brings a forged or tampered envelope (0: none); only when adversarial.
    public var forgeryRate: Int
    /// How many times during the run one member's view is checked against the oracle (besides
    /// every member's at the end and every sender's at every message).
    public var oracleSamples: Int
    /// How many times during the run the newest member loses its prekeys (its clock passed §2.3's
    /// hard limit while channels on them were still to come): it loses ratchets, and must recover
    /// by §5.7's resync, which every device that needs it requests.
    public var prekeyLosses: Int
    /// Forgeries may also be forks signed with their sender's own key (a stolen key): proof that
    /// the key's holder equivocated, so the receiver cuts that sender off (PROTOCOL-NOTES.md,
    /// "Equivocation") and the honest run no longer converges. Only for checks that such a fork is
    /// never delivered (planted defects).
    public var keyedForgeries = false
    /// One malicious member (device 1) makes the attacks of ``Attack`` during the run, and the
    /// clock passes every expiry; the checks hold over the honest members (issue 8).
    public var adversary = false

    public init(
        members: Int, operations: Int, seed: UInt64, adversarial: Bool = true, messageShare: Double = 0.7, compromises: Int = 3,
        threads: Int = 1, forgeryRate: Int = 400, oracleSamples: Int = 20, prekeyLosses: Int = 0
    ) {
        self.prekeyLosses = max(0, prekeyLosses)
        self.forgeryRate = adversarial ? max(0, forgeryRate) : 0
        self.oracleSamples = max(0, oracleSamples)
        self.members = members
        self.operations = operations
        self.seed = seed
        self.adversarial = adversarial
        self.messageShare = messageShare
        self.compromises = compromises
        self.threads = threads
    }
}

/// What a run established. `ok` is true only when every check held.
public struct SimulationReport: Sendable, Equatable {
    public var seed: UInt64
    public var membersInitial: Int
    public var membersFinal: Int
    public var viewsAgree: Bool
    public var secretsAgree: Bool
    public var secretsCompared: Int
    public var messagesSent: Int
    public var expectedDecryptions: Int
    public var decryptions: Int
    public var unexpectedDecryptions: Int
    public var missedDecryptions: Int
    public var fsChecks: Int
    public var fsViolations: Int
    public var pcsChecks: Int
    public var pcsViolations: Int
    /// Key recovery from snapshots (FS): messages the victim had read before its snapshot that an
    /// attacker holding the snapshot's bytes and every envelope could read again.
    public var fsKeyRecoveryChecks = 0, fsKeyRecoveryViolations = 0
    /// Of those, readable only through a prekey the victim still held (the first message of a
    /// channel, PROTOCOL.md §2.3): exposed by design, counted apart, not a violation.
    public var fsKeyRecoveryPrekeyExposed = 0
    /// Secret inventory: secrets the victim had used up before its snapshot, and how many of them
    /// were still in the snapshot's bytes.
    public var fsInventoryChecks = 0, fsInventoryViolations = 0
    /// Views compared with the §4.2 oracle over what each member had processed (from the envelopes).
    public var oracleChecks = 0, oracleViolations = 0
    public var forgeriesInjected = 0, forgeriesAccepted = 0
    public var updates = 0, adds = 0, readds = 0, removes = 0
    public var envelopesDelivered = 0
    public var duplicatesInjected = 0
    public var partitions = 0
    /// Prekey stores wiped (``SimulationConfiguration/prekeyLosses``), ratchets lost because of
    /// them, resync requests sent, and decryptions missed inside a loss window (from the loss to
    /// the answer of the resync that repaired it): reported, never hidden, and not counted as
    /// missed. Every loss must be repaired by the end.
    public var prekeyLosses = 0, ratchetsLost = 0, resyncRequests = 0, lostToRecovery = 0
    /// With an adversary: whether one ran, the attacks it made, how many times an honest member
    /// detected an attack that reached it, and the honest messages lost in the disrupted windows
    /// (from an attack until every honest member recovered): reported, never hidden.
    public var adversary = false
    public var adversaryAttacks = 0, adversaryDetected = 0, lostToAdversary = 0
    /// Threads the devices received on (the outcome does not depend on it).
    public var threads = 1
    public var processingFailures: [String] = []
    public var problems: [String] = []

    public var ok: Bool {
        viewsAgree && secretsAgree && unexpectedDecryptions == 0 && missedDecryptions == 0
            && fsViolations == 0 && pcsViolations == 0 && fsKeyRecoveryViolations == 0 && fsInventoryViolations == 0
            && oracleViolations == 0 && forgeriesAccepted == 0 && processingFailures.isEmpty && problems.isEmpty
    }
}

/// A deterministic network of in-process members exchanging encoded envelopes (§9).
///
/// Envelopes travel as wire bytes through a scheduler that delays, reorders, duplicates, partitions
/// and drops deliveries to offline members; a relay-like store lets members fetch what they miss
/// (§6.4) so the run can heal and converge, after which the checks run.
public struct Simulation {
    struct Device: Sendable {
        let identity: IdentityKey
        var prekeys: PrekeyStore
        var bundle: KeyBundle
        var group: Group?
        /// With an adversary: the attacks (indexes into `attacks`) an envelope of which this device
        /// delivered, and those it detected; and since when it holds evidence of an equivocator.
        var reachedAttacks: Set<Int> = []
        var detectedAttacks: Set<Int> = []
        var evidenceSince: [MemberID: Int] = [:]
        var partition = 0
        var offlineUntil = 0
        /// (member, epoch) → update secret, as this device derived it.
        var secrets: [EpochKey: Bytes32] = [:]
        var decrypted: Set<Int> = []
        /// Envelopes refused because their sender was not known yet, retried once it is (what a
        /// transport does with the receiver's sync requests).
        var parked: [Bytes32: Envelope] = [:]
        /// Envelopes published before this index never reached this device's mailbox.
        var firstPublishIndex = 0
        /// The device's own randomness, so that devices can receive side by side deterministically.
        var rng: SeededRandom
        /// While snapshots are still to come: the secrets this device used up (their first eight
        /// bytes), for the secret inventory, and the ratchet steps it took, for the derivation graph.
        var collectsTraces = true
        var retired: [UInt64] = []
        var ratchetSteps: [RatchetStep] = []
        /// Forgeries this device received that it must never deliver.
        var forged: Set<Bytes32> = []
        /// Randomness for the forgeries made at this device, apart from the device's own, so that
        /// forgeries change nothing in the honest run.
        var forgeryRNG: SeededRandom
        /// Whether this device's prekeys were wiped (a loss injected on purpose).
        var lostPrekeys = false
        /// Per member, the windows of that member's seqs in which this device could not follow its
        /// ratchet: from the envelope where it lost it to the answer that repaired it (open: nil).
        var lossWindows: [MemberID: [(from: UInt64, to: UInt64?)]] = [:]
        var ratchetsLost = 0

        /// Whether this device could not follow `member`'s epoch `epoch`.
        func lost(_ member: MemberID, epoch: UInt64) -> Bool {
            lossWindows[member]?.contains { epoch >= $0.from && $0.to.map { epoch < $0 } ?? true } ?? false
        }

        /// Keeps the update secrets the group derived since the last call.
        mutating func recordOwnSecrets() {
            guard let derived = group?.derivedUpdateSecrets, !derived.isEmpty else { return }
            for record in derived { secrets[EpochKey(member: record.member, epoch: record.epoch)] = record.secret }
            group?.clearDerivedUpdateSecrets()
        }

        /// Keeps the update secrets and the traces the group recorded since the last call
        /// (once per batch of deliveries: the traces are long); returns the hashes of the
        /// envelopes it delivered meanwhile.
        @discardableResult
        mutating func recordSecretsAndTraces() -> [Bytes32] {
            recordOwnSecrets()
            guard group != nil else { return [] }
            let traces = group!.takeTraces()
            if collectsTraces {
                retired += traces.retired.lazy.map(\.leadingWord)
                ratchetSteps += traces.ratchetSteps
            }
            return traces.delivered
        }

        /// A copy that holds the only references to the growing parts (this one keeps none of
        /// them until the copy comes back), so that the copy mutates them in place.
        mutating func takeForRun() -> Device {
            let copy = self
            group = nil
            secrets = [:]
            decrypted = []
            parked = [:]
            retired = []
            ratchetSteps = []
            forged = []
            return copy
        }
    }

    struct EpochKey: Hashable { let member: MemberID; let epoch: UInt64 }

    /// One envelope on its way to one device: small and reference-free, because the whole queue
    /// is scanned at every step.
    struct Delivery {
        let time: Int
        let order: Int
        let device: Int32
        let sender: Int32
        /// Position in `publishedOrder`.
        let envelope: Int32
        /// 0 for the envelope itself, else the raw value of the ``Forgery`` made from it.
        var forgery: UInt8 = 0
    }

    struct SentMessage {
        let id: Int
        let sender: Int
        let envelope: Envelope
        /// The sender's own view when it sent the message (without itself); the expected readers
        /// come from the oracle, and this is checked against it.
        let expectedReaders: Set<Int>
        /// The simulation's time when it was sent.
        var sentAt = 0
    }

    struct Snapshot {
        let device: Int
        let group: Group
        let time: Int
        /// Messages the device had decrypted when the snapshot was taken.
        let decryptedBefore: Set<Int>
        /// The device's update after the snapshot, once it is sent.
        var healingUpdate: Envelope?
        /// What the seized storage holds: the encoded group state, then the encoded prekey store.
        let bytes: [UInt8]
        let groupByteCount: Int
    }

    /// A member's view recorded during the run, to compare with the oracle at the end.
    struct ViewSample {
        let device: Int
        let throughSeq: UInt64
        let view: Set<MemberID>
    }

    public let configuration: SimulationConfiguration
    var rng: SeededRandom
    var networkRNG: SeededRandom
    /// Decides where forgeries go and which views are sampled, apart from the schedule's and the
    /// network's randomness (the honest run is the same with and without the checks).
    var forgeryRNG: SeededRandom
    var sampleRNG: SeededRandom
    var devices: [Device] = []
    var deviceIndex: [MemberID: Int] = [:]
    var queue: [Delivery] = []
    var time = 0
    var relay = Relay()
    var messages: [SentMessage] = []
    var snapshots: [Snapshot] = []
    var report: SimulationReport
    var groupID: GroupID?
    var publishedOrder: [Envelope] = []
    var derivations = DerivationGraph()
    var viewSamples: [ViewSample] = []
    /// False after the last snapshot: devices stop recording what the inventory and the attacker need.
    var collectingTraces = true
    static let now: UInt64 = 1_800_000_000
    /// The time operations are made at: `now`, until an adversarial run passes every expiry.
    var clock: UInt64 = Simulation.now
    var clockPassedExpiries = false
    /// The adversary's device, its attacks as made, and where its removal attack stands.
    var adversary: Int?
    var attacks: [AttackRecord] = []
    var pendingRemovalAttack: Bytes32?
    var readdAdversary = false
    var equivocated = false
    /// Newcomers of the adversary's lying welcomes (they never join), and when each was last removed.
    var uninvited: [Int] = []
    var uninvitedRemovedAt: [Int: Int] = [:]
    var uninvitedIDs: Set<MemberID> { Set(uninvited.map { devices[$0].identity.id }) }
    var nextAttack = 0
    /// From the first attack until every honest member recovered (nil while still disrupted).
    var disruptedFrom: Int?
    var recoveredAt: Int?
    static var groupConfiguration: GroupConfiguration {
        var configuration = GroupConfiguration()
        configuration.exposesUpdateSecrets = true
        return configuration
    }

    public init(_ configuration: SimulationConfiguration) {
        self.configuration = configuration
        rng = SeededRandom(seed: configuration.seed)
        networkRNG = SeededRandom(seed: configuration.seed ^ 0x5DEE_CE66_D1CE_5EED)
        forgeryRNG = SeededRandom(seed: configuration.seed ^ 0xF0_7CE5)
        sampleRNG = SeededRandom(seed: configuration.seed ^ 0x5A_3B1E)
        report = SimulationReport(
            seed: configuration.seed, membersInitial: configuration.members, membersFinal: 0, viewsAgree: false,
            secretsAgree: false, secretsCompared: 0, messagesSent: 0, expectedDecryptions: 0, decryptions: 0,
            unexpectedDecryptions: 0, missedDecryptions: 0, fsChecks: 0, fsViolations: 0, pcsChecks: 0, pcsViolations: 0)
        report.threads = max(1, configuration.threads)
    }

    /// Runs the whole schedule, heals the network, and checks.
    public static func run(_ configuration: SimulationConfiguration) -> SimulationReport {
        var simulation = Simulation(configuration)
        simulation.runSchedule()
        return simulation.report
    }

    mutating func makeDevice() -> Int {
        let identity = IdentityKey.generate(using: &rng)
        var prekeys = PrekeyStore()
        let bundle = prekeys.generate(identity: identity, notAfter: clock + 86_400 * 30, using: &rng)
        devices.append(Device(
            identity: identity, prekeys: prekeys, bundle: bundle, firstPublishIndex: publishedOrder.count,
            rng: SeededRandom(seed: configuration.seed &+ 0x9E37_79B9 &* UInt64(devices.count + 1)),
            forgeryRNG: SeededRandom(seed: configuration.seed ^ 0xF0F0_5EED &* UInt64(devices.count + 1))))
        deviceIndex[identity.id] = devices.count - 1
        relay.identities[identity.id] = identity
        devices[devices.count - 1].collectsTraces = collectingTraces
        return devices.count - 1
    }

    mutating func runSchedule() {
        let n = max(2, configuration.members)
        for _ in 0..<n { _ = makeDevice() }
        if configuration.adversary, n >= 4 {
            adversary = 1
            report.adversary = true
            relay.adversary = devices[1].identity.id
        }
        // Creation.
        do {
            let bundles = (1..<n).map { devices[$0].bundle }
            let (group, envelope) = try Group.create(
                identity: devices[0].identity, ownBundle: devices[0].bundle, members: bundles, prekeys: devices[0].prekeys, now: Self.now, configuration: Self.groupConfiguration, using: &rng)
            devices[0].group = group
            groupID = group.groupID
            devices[0].recordSecretsAndTraces()
            publish(envelope, from: 0)
        } catch {
            report.problems.append("create failed: \(error)")
            return
        }
        var compromisesLeft = configuration.compromises
        let compromiseEvery = max(1, configuration.operations / max(1, configuration.compromises + 1))
        let sampleEvery = max(1, configuration.operations / max(1, configuration.oracleSamples))
        if compromisesLeft == 0 { stopCollectingTraces() }
        var lossesLeft = configuration.prekeyLosses
        let lossEvery = max(1, configuration.operations / max(1, configuration.prekeyLosses + 1))
        for step in 0..<configuration.operations {
            time += 1
            if configuration.adversarial { perturbNetwork() }
            deliverDue()
            if lossesLeft > 0 && step > 0 && step % lossEvery == lossEvery / 2 {
                lossesLeft -= 1
                losePrekeys()
            }
            requestResyncs()
            if configuration.adversary { adversaryStep(step) }
            if compromisesLeft > 0 && step > 0 && step % compromiseEvery == 0 {
                compromisesLeft -= 1
                compromise()
                if compromisesLeft == 0 { stopCollectingTraces() }
            }
            if configuration.oracleSamples > 0 && step % sampleEvery == sampleEvery / 2 { sampleView() }
            performRandomOperation()
        }
        heal()
        check()
    }

    // MARK: Operations

    mutating func pick<T>(_ items: [T]) -> T? {
        items.isEmpty ? nil : items[Int(rng.next() % UInt64(items.count))]
    }

    mutating func performRandomOperation() {
        let actors = devices.indices.filter {
            devices[$0].group?.isMember == true && canReach($0) && !($0 == adversary && (equivocated || pendingRemovalAttack != nil))
        }
        guard let actor = pick(actors), var group = devices[actor].group else { return }
        devices[actor].group = nil  // unique ownership while operating; every path below puts it back
        defer { if devices[actor].group == nil { devices[actor].group = group } }
        let roll = Double(rng.next() % 10_000) / 10_000
        let prekeys = devices[actor].prekeys
        do {
            if roll < configuration.messageShare {
                let text = "message \(report.messagesSent) from \(actor)"
                let envelopes = try group.send(text: text, prekeys: prekeys, now: clock, using: &rng)
                for refresh in envelopes.dropLast() {
                    report.updates += 1
                    publish(refresh, from: actor)
                }
                let envelope = envelopes.last!
                let readers = Set(group.members.compactMap { deviceIndex[$0] }).subtracting([actor])
                let id = messages.count
                messages.append(SentMessage(id: id, sender: actor, envelope: envelope, expectedReaders: readers, sentAt: time))
                relay.messageByHash[envelope.hash] = id
                report.messagesSent += 1
                devices[actor].group = group
                publish(envelope, from: actor)
                return
            }
            let view = group.members.sorted()
            let kindRoll = rng.next() % 10
            if kindRoll < 4 || view.count <= 2 && kindRoll < 6 {
                let envelope = try group.update(prekeys: prekeys, using: &rng)
                report.updates += 1
                finish(actor, group, envelope)
            } else if kindRoll < 7 {
                // Add a returning member (removed earlier, still holding state) or a new one.
                // Not the adversary while its removal attack waits for it to process its removal.
                let returning = devices.indices.filter {
                    devices[$0].group != nil && !view.contains(devices[$0].identity.id) && !($0 == adversary && (pendingRemovalAttack != nil || readdAdversary))
                }
                let target: Int
                // New devices up to a quarter more than the initial group; returning ones otherwise
                // (every device keeps following the group, so devices are the simulator's cost).
                let roomForNew = devices.count < configuration.members + configuration.members / 4 + 2
                if let back = pick(returning), rng.next() % 3 == 0 || !roomForNew {
                    target = back
                    report.readds += 1
                } else if roomForNew {
                    target = makeDevice()
                    report.adds += 1
                } else {
                    return
                }
                let envelopes = try group.add(devices[target].bundle, prekeys: prekeys, now: clock, using: &rng)
                devices[actor].group = group
                devices[actor].recordSecretsAndTraces()
                for refresh in envelopes.dropLast() {
                    report.updates += 1
                    publish(refresh, from: actor)
                }
                publish(envelopes.last!, from: actor)
            } else if view.filter({ !uninvitedIDs.contains($0) && deviceIndex[$0] != adversary }).count > 3 {
                // Keeps groups from emptying through concurrent removes (newcomers of lying
                // welcomes and the adversary do not count: they are removed by other means).
                // The adversary is removed by its own attacks, not at random (they need it a member).
                let adversaryID = adversary.map { devices[$0].identity.id }
                let candidates = view.filter { $0 != group.me && $0 != adversaryID }
                guard let victim = pick(candidates) else { return }
                let envelope = try group.remove(victim, prekeys: prekeys, using: &rng)
                report.removes += 1
                finish(actor, group, envelope)
            }
        } catch {
            report.problems.append("operation by device \(actor) failed: \(error)")
        }
    }

    mutating func finish(_ actor: Int, _ group: Group, _ envelope: Envelope) {
        devices[actor].group = group
        devices[actor].recordSecretsAndTraces()
        publish(envelope, from: actor)
    }

    // MARK: Compromise (forward secrecy and post-compromise security, §9)

    mutating func compromise() {
        let candidates = devices.indices.filter { devices[$0].group?.isMember == true }
        guard let victim = pick(candidates) else { return }
        devices[victim].recordSecretsAndTraces()
        guard let group = devices[victim].group else { return }
        // What a seized device's storage holds (§9): its group state and its prekey store, as bytes.
        let groupBytes = group.wireBytes
        let bytes = groupBytes + devices[victim].prekeys.wireBytes
        let retired = Set(devices[victim].retired)
        report.fsInventoryChecks += retired.count
        report.fsInventoryViolations += SecretInventory.occurrences(of: retired, in: bytes)
        snapshots.append(Snapshot(
            device: victim, group: group, time: time, decryptedBefore: devices[victim].decrypted, bytes: bytes,
            groupByteCount: groupBytes.count))
        // The victim heals with an update of its own right away.
        var healed = group
        if let envelope = try? healed.update(prekeys: devices[victim].prekeys, using: &rng) {
            report.updates += 1
            finish(victim, healed, envelope)
            snapshots[snapshots.count - 1].healingUpdate = envelope
        }
    }

    // MARK: Losses and recovery (§2.3, §5.7)

    /// The newest member device (not the creator) loses its prekeys, as a member whose clock
    /// passed §2.3's hard limit does: the channels members still open on them fail.
    mutating func losePrekeys() {
        guard let victim = devices.indices.last(where: { $0 > 0 && devices[$0].group?.isMember == true }) else { return }
        devices[victim].prekeys = PrekeyStore()
        devices[victim].lostPrekeys = true
        report.prekeyLosses += 1
    }

    /// Every reachable device that lost a ratchet no request of its waits for asks for it.
    mutating func requestResyncs() {
        for index in devices.indices where devices[index].group?.needsResync == true && canReach(index) {
            guard var group = devices[index].group else { continue }
            do {
                let envelope = try group.requestResync(using: &rng)
                report.resyncRequests += 1
                finish(index, group, envelope)
            } catch {
                report.problems.append("resync by device \(index) failed: \(error)")
            }
        }
    }

    /// After the last snapshot nothing more is needed for the inventory or the derivation graph.
    mutating func stopCollectingTraces() {
        collectingTraces = false
        for index in devices.indices {
            devices[index].recordSecretsAndTraces()
            for step in devices[index].ratchetSteps { derivations.add(step) }
            devices[index].collectsTraces = false
            devices[index].group?.stopTracing()
            devices[index].retired = []
            devices[index].ratchetSteps = []
        }
    }

    /// Records one member's current view, for the oracle to judge at the end.
    mutating func sampleView() {
        let candidates = devices.indices.filter { devices[$0].group != nil }
        guard !candidates.isEmpty else { return }
        let device = candidates[Int(sampleRNG.next() % UInt64(candidates.count))]
        guard let group = devices[device].group else { return }
        let seq = group.broadcast.nextOwnPosition().seq - 1
        guard seq > 0 else { return }
        viewSamples.append(ViewSample(device: device, throughSeq: seq, view: group.members))
    }

    // MARK: Healing and checks

    /// Ends partitions and offline periods, then lets every device fetch everything it lacks from
    /// the store (what it reports missing, and everything past its version vector, §6.4) until
    /// nothing changes. An envelope a device cannot take yet (its sender's add is in the same
    /// batch) is offered again after the rest of the batch.
    mutating func heal() {
        for index in devices.indices {
            devices[index].partition = 0
            devices[index].offlineUntil = 0
        }
        var rounds = 0
        while rounds < 1_000 {
            rounds += 1
            // Everything already in flight arrives first (acks it causes join the queue too).
            while !queue.isEmpty {
                time += 1_000
                deliverDue()
            }
            var batches: [Int: [Incoming]] = [:]
            for device in devices.indices {
                let offered = offers(for: device)
                if !offered.isEmpty { batches[device] = offered.map(Incoming.honest) }
            }
            let accepted = run(batches).values.reduce(0) { $0 + $1.filter { $0 }.count }
            let requestsBefore = report.resyncRequests
            let published = publishedOrder.count
            requestResyncs()
            if configuration.adversary {
                attackIfDue(step: configuration.operations)
                removeAfterRemovalIfDue()
                readdAdversaryIfDue()
                removeEquivocators()
                removeUninvited()
                // A window that closes only here (members were offline or apart until the end)
                // leaves every honest message after the fork in it.
                if disruptedFrom != nil, recoveredAt == nil, honestMembersRecovered { recoveredAt = time }
            }
            if accepted == 0 && queue.isEmpty && report.resyncRequests == requestsBefore && publishedOrder.count == published { break }
        }
    }

    /// What a relay would send `device` in one sync: envelopes it asks for by hash or range, and
    /// every stored envelope past what it has delivered, each once, lowest seq first.
    func offers(for device: Int) -> [Envelope] {
        guard let group = devices[device].group else { return [] }
        var chosen: [Bytes32: Envelope] = [:]
        func offer(_ envelope: Envelope?) {
            guard let envelope, envelope.sender != group.me, !group.broadcast.isBuffered(envelope.hash),
                  devices[device].parked[envelope.hash] == nil else { return }
            chosen[envelope.hash] = envelope
        }
        for request in group.missing {
            switch request {
            case .hash(let hash): offer(relay.store[hash])
            case .range(let sender, let from, let through):
                for seq in from...max(from, through) { offer(relay.storeBySender[sender]?[seq]) }
            }
        }
        for (sender, bySeq) in relay.storeBySender where sender != group.me {
            let delivered = group.broadcast.deliveredSeq(of: sender)
            for (seq, envelope) in bySeq where seq > delivered { offer(envelope) }
        }
        // Fork evidence travels with sync (§6.2): the second sides of forks go to everyone.
        for side in relay.forkSides where side.sender != group.me && group.forkEvidence[side.sender] == nil { offer(side) }
        return chosen.values.sorted { ($0.seq, $0.sender) < ($1.seq, $1.sender) }
    }

    mutating func check() {
        // With an adversary, every check is over the honest members.
        let adversaryID = adversary.map { devices[$0].identity.id }
        let members = devices.indices.filter { devices[$0].group?.isMember == true && $0 != adversary }
        report.membersFinal = members.count
        // Every loss must have been repaired: no member ends unable to follow another member.
        report.ratchetsLost = devices.reduce(0) { $0 + $1.ratchetsLost }
        for device in members {
            let group = devices[device].group!
            let unrecovered = group.keyAgreement.lostRatchets.intersection(group.members).subtracting([group.me] + (adversaryID.map { [$0] } ?? []))
            if !unrecovered.isEmpty {
                report.problems.append("device \(device) ends unable to follow \(unrecovered.compactMap { deviceIndex[$0] }.sorted())")
                report.problems.append("  its requests: \(group.keyAgreement.resync.requests), windows \(devices[device].lossWindows)")
                for other in unrecovered {
                    if let i = deviceIndex[other], let g = devices[i].group {
                        report.problems.append("  device \(i): member \(g.isMember), answered \(g.keyAgreement.resync.answered[group.me] ?? 0), delivered from \(device): \(g.broadcast.deliveredSeq(of: group.me)) of \(group.broadcast.nextOwnPosition().seq - 1), buffered \(g.broadcast.bufferedCount), missing \(g.missing.prefix(3))")
                    }
                }
            }
        }
        // Every device that joined by a welcome has fetched and checked the group's create (§6.1).
        for device in devices.indices where devices[device].group?.uncheckedCreate != nil {
            report.problems.append("device \(device) never checked the group's create")
        }
        let views = Set(members.map { devices[$0].group!.members })
        let selfView = Set(members.map { devices[$0].identity.id })
        if members.isEmpty {
            // Concurrent removals can empty the group; then every device must see it empty.
            report.viewsAgree = devices.allSatisfy { $0.group.map { $0.members.subtracting(adversaryID.map { [$0] } ?? []).isEmpty } ?? true }
        } else {
            report.viewsAgree = views.count == 1 && views.first == selfView
        }
        if !report.viewsAgree {
            report.problems.append("views differ: \(views.count) distinct views among \(members.count) members")
            for device in devices.indices {
                guard let group = devices[device].group else { continue }
                report.problems.append("device \(device): member \(group.isMember), view \(group.members.compactMap { deviceIndex[$0] }.sorted()), buffered \(group.broadcast.bufferedCount), missing \(group.missing.prefix(3))")
            }
            explainDisputedMembers(among: members)
        }

        // Update secrets: every (member, epoch) must be derived identically by every device that
        // was in that member's view when it started the epoch (a removed member may still derive
        // values from stale state, which are of no use to it and are not compared).
        var reference: [EpochKey: Bytes32] = [:]
        var agree = true
        var compared = 0
        // Views at past envelopes come from the oracle over the published envelopes: a device's
        // history answers only views that a later envelope can take (it folds settled operations).
        let truth = GroundTruth(storeBySender: relay.storeBySender, forkSides: relay.forkSides)
        var viewAtEpoch: [EpochKey: Set<MemberID>] = [:]
        var mismatched: Set<EpochKey> = []
        for device in devices.indices {
            let id = devices[device].identity.id
            // An equivocator's own epochs differ by design across the sides of its fork.
            for (key, secret) in devices[device].secrets where key.member != adversaryID {
                if key.member != id {
                    let view = viewAtEpoch[key] ?? truth.view(of: key.member, through: key.epoch)
                    viewAtEpoch[key] = view
                    if !view.contains(id) { continue }
                }
                if let existing = reference[key] {
                    compared += 1
                    if existing != secret { mismatched.insert(key) }
                } else {
                    reference[key] = secret  // the first device (by index) that derived it
                }
            }
        }
        // The first mismatch (by member and epoch), explained.
        if let key = mismatched.min(by: { ($0.member, $0.epoch) < ($1.member, $1.epoch) }) {
            agree = false
            let owner = deviceIndex[key.member].map(String.init) ?? "?"
            let holders = devices.indices.filter { devices[$0].secrets[key] != nil }
            let values = holders.map { "\($0):\(devices[$0].secrets[key]!)" }
            report.problems.append("secret mismatch for device \(owner) epoch \(key.epoch): \(values)")
            for seq in 1...key.epoch {
                guard let e = relay.storeBySender[key.member]?[seq], e.kind != .application else { continue }
                let a = e.acked.flatMap { ref in relay.store[ref.hash].map { "\($0.kind) by \(deviceIndex[$0.sender]!)#\($0.seq)" } } ?? "-"
                let values = holders.compactMap { h in devices[h].secrets[EpochKey(member: key.member, epoch: seq)].map { "\(h):\($0)" } }
                report.problems.append("  #\(seq): \(e.kind) acking \(a); \(values)")
            }
        }
        // Every current member derived the current epoch of every other current member.
        for reader in members {
            for owner in members where owner != reader {
                let id = devices[owner].identity.id
                guard let epoch = devices[reader].group?.messaging.currentEpoch(of: id) else {
                    agree = false
                    report.problems.append("device \(reader) has no epoch for \(owner)")
                    continue
                }
                if devices[reader].secrets[EpochKey(member: id, epoch: epoch)] == nil { agree = false }
            }
        }
        report.secretsAgree = agree
        report.secretsCompared = compared

        checkViewsAgainstOracle(truth)
        for message in messages where message.sender != adversary {
            // Who should read it: the oracle's view of the sender when it sent it, not the sender's own.
            let allowedReaders = Set(truth.view(of: devices[message.sender].identity.id, before: message.envelope.seq)
                .compactMap { deviceIndex[$0] }).subtracting([message.sender])
            // The adversary may read what it was sent, but its reading is not owed to anyone.
            // Nor is it owed by the newcomers of its lying welcomes, which never joined.
            let expectedReaders = allowedReaders.subtracting(adversary.map { [$0] } ?? []).subtracting(uninvited)
            report.oracleChecks += 1
            if allowedReaders != message.expectedReaders {
                report.oracleViolations += 1
                report.problems.append(
                    "device \(message.sender) sent #\(message.envelope.seq) to \(message.expectedReaders.sorted()); the oracle's view is \(allowedReaders.sorted())")
            }
            report.expectedDecryptions += expectedReaders.count
            for device in devices.indices where devices[device].decrypted.contains(message.id) {
                report.decryptions += 1
                if !allowedReaders.contains(device) {
                    report.unexpectedDecryptions += 1
                    report.problems.append(
                        "device \(device) read message \(message.envelope.sender)#\(message.envelope.seq) of device \(message.sender), "
                            + "whose view had \(expectedReaders.sorted())")
                    let sender = message.envelope.sender
                    if let fields = message.envelope.application {
                        let key = EpochKey(member: sender, epoch: fields.epoch)
                        let holders = devices.indices.filter { devices[$0].secrets[key] != nil }
                        report.problems.append("  epoch \(fields.epoch) index \(fields.index); derived by \(holders)")
                    }
                    for seq in stride(from: message.envelope.seq, through: message.envelope.seq > 30 ? message.envelope.seq - 30 : 1, by: -1) {
                        guard let e = relay.storeBySender[sender]?[seq], e.kind != .application else { continue }
                        let a = e.acked.flatMap { ref in relay.store[ref.hash].map { "\($0.kind) by \(deviceIndex[$0.sender]!)#\($0.seq)" } } ?? "-"
                        report.problems.append("  sender #\(seq) \(e.kind) acking \(a)")
                    }
                    let victim = devices[device].identity.id
                    for e in publishedOrder where e.kind == .remove || e.kind == .add {
                        if let body = try? ControlBody(kind: e.kind == .remove ? .remove : .add, payload: e.payload ?? []) {
                            switch body.fields {
                            case .remove(let id) where id == victim: report.problems.append("  remove of it by \(deviceIndex[e.sender]!)#\(e.seq)")
                            case .add(let b, _) where b.identity == victim: report.problems.append("  add of it by \(deviceIndex[e.sender]!)#\(e.seq)")
                            default: break
                            }
                        }
                    }
                }
            }
            for reader in expectedReaders where !devices[reader].decrypted.contains(message.id) {
                if inDisruptedWindow(message) {
                    report.lostToAdversary += 1
                } else if let epoch = message.envelope.application?.epoch, devices[reader].lost(message.envelope.sender, epoch: epoch) {
                    report.lostToRecovery += 1
                } else {
                    report.missedDecryptions += 1
                    if report.missedDecryptions <= 5 {
                        let epoch = message.envelope.application?.epoch ?? 0
                        let start = relay.storeBySender[message.envelope.sender]?[epoch]
                        report.problems.append(
                            "device \(reader) missed device \(message.sender)'s #\(message.envelope.seq) (epoch \(epoch), begun by \(start.map { "\($0.kind)" } ?? "?")\(start?.acked.map { " of \($0.sender)#\($0.seq)" } ?? "")); its loss windows for that sender: \(devices[reader].lossWindows[message.envelope.sender] ?? []); its current epoch of that sender: \(devices[reader].group?.messaging.currentEpoch(of: message.envelope.sender) ?? 0)")
                    }
                }
            }
        }
        checkCompromises(truth)
        checkDetections()
        if configuration.adversary, adversary != nil, attacks.count < Attack.allCases.count {
            let state = devices[adversary!].group
            report.problems.append("only \(attacks.count) of the \(Attack.allCases.count) attacks were made (adversary a member: \(state?.isMember ?? false), refuted: \(state?.refutedWelcome != nil), waiting to process its removal: \(pendingRemovalAttack != nil), to be added back: \(readdAdversary), buffered \(state?.broadcast.bufferedCount ?? 0), missing \(state?.missing.prefix(3).map { "\($0)" } ?? []))")
        }
        if configuration.adversary, adversary != nil, recoveredAt == nil, disruptedFrom != nil {
            report.problems.append("the honest members never recovered from the equivocation")
            report.problems.append(contentsOf: recoveryStatus.prefix(5).map { "  \($0)" })
        }
    }

    /// Every member's view at the end, and the views sampled during the run, against the oracle
    /// over what the member had processed by then (§4.2, §4.3).
    mutating func checkViewsAgainstOracle(_ truth: GroundTruth) {
        var samples = viewSamples
        for device in devices.indices {
            guard let group = devices[device].group else { continue }
            let seq = group.broadcast.nextOwnPosition().seq - 1
            if seq > 0 { samples.append(ViewSample(device: device, throughSeq: seq, view: group.members)) }
        }
        // The adversary's own view is its own business (it signs operations it never applies).
        for sample in samples where sample.device != adversary {
            report.oracleChecks += 1
            let expected = truth.view(of: devices[sample.device].identity.id, through: sample.throughSeq)
            if expected != sample.view {
                report.oracleViolations += 1
                let index = deviceIndex
                let names = { (ids: Set<MemberID>) in ids.compactMap { index[$0] }.sorted() }
                report.problems.append(
                    "device \(sample.device) at its #\(sample.throughSeq) saw \(names(sample.view)); the oracle says \(names(expected))")
            }
        }
    }

    /// FS: a snapshot cannot decrypt what its device had already decrypted. PCS: a snapshot that
    /// follows the whole network (every envelope but the victim's own) cannot decrypt what others
    /// sent after processing the victim's healing update.
    mutating func checkCompromises(_ truth: GroundTruth) {
        for step in devices.flatMap(\.ratchetSteps) { derivations.add(step) }
        let participants = devices.map(\.identity.id)
        var addressed: [MemberID: [(sender: MemberID, message: TwoPartyMessage)]] = [:]
        for snapshot in snapshots {
            checkKeyRecovery(snapshot, truth: truth, participants: participants, addressed: &addressed)
            guard let healing = snapshot.healingUpdate else { continue }
            var attacker = snapshot.group
            var attackerRNG = SeededRandom(seed: configuration.seed &+ UInt64(snapshot.time))
            var readable: Set<Bytes32> = []
            let victim = devices[snapshot.device].identity.id
            // In publication order, so that the replica's buffer stays as small as a member's.
            for envelope in publishedOrder {
                do {
                    guard envelope.sender != victim else { continue }
                    let output = attacker.receive(
                        envelope, prekeys: devices[snapshot.device].prekeys, using: &attackerRNG, verifySignature: relay.isValid)
                    for case .message(let from, let s, _) in output.events {
                        if let e = relay.storeBySender[from]?[s] { readable.insert(e.hash) }
                    }
                }
            }
            for message in messages where message.sender != snapshot.device {
                guard sentInEpochAfter(message, healing) else { continue }
                report.pcsChecks += 1
                if readable.contains(message.envelope.hash) {
                    report.pcsViolations += 1
                    report.problems.append(
                        "PCS: a snapshot of device \(snapshot.device) healed by its #\(healing.seq) read device \(message.sender)'s #\(message.envelope.seq) (epoch \(message.envelope.application?.epoch ?? 0))")
                }
            }
        }
    }

    /// The key-recovery attack on one snapshot: an attacker with the seized bytes and every
    /// envelope tries to read again what the victim had read before (FS, §9).
    mutating func checkKeyRecovery(
        _ snapshot: Snapshot, truth: GroundTruth, participants: [MemberID],
        addressed: inout [MemberID: [(sender: MemberID, message: TwoPartyMessage)]]
    ) {
        let victim = devices[snapshot.device].identity.id
        let seized: Group, prekeys: PrekeyStore
        do {
            seized = try Group(wireBytes: Array(snapshot.bytes[..<snapshot.groupByteCount]))
            prekeys = try PrekeyStore(wireBytes: Array(snapshot.bytes[snapshot.groupByteCount...]))
        } catch {
            report.problems.append("a snapshot of device \(snapshot.device) does not decode: \(error)")
            return
        }
        // The seized message ratchets themselves (chains, skipped keys) must not open what was read.
        for id in snapshot.decryptedBefore {
            report.fsChecks += 1
            if snapshotCanDecrypt(seized, messages[id].envelope) { report.fsViolations += 1 }
        }
        if addressed[victim] == nil { addressed[victim] = directMessages(to: victim, truth: truth) }
        let attack = KeyRecoveryAttack(
            victim: victim, binding: TwoPartyBinding(suite: seized.suite, groupID: seized.groupID),
            directMessages: addressed[victim]!, participants: participants, graph: derivations)
        // The design exposes what the prekeys alone open (PROTOCOL.md §2.3); everything else the
        // seized state opens is a violation.
        let byDesign = attack.knownValues(seized: seized, prekeys: prekeys, usingState: false)
        let everything = attack.knownValues(seized: seized, prekeys: prekeys, usingState: true)
        for id in snapshot.decryptedBefore.sorted() {
            let envelope = messages[id].envelope
            report.fsKeyRecoveryChecks += 1
            guard let fields = envelope.application,
                  let secret = devices[snapshot.device].secrets[EpochKey(member: envelope.sender, epoch: fields.epoch)]
            else {
                report.problems.append("key recovery: no update secret recorded for a message device \(snapshot.device) read")
                continue
            }
            guard everything.contains(secret), KeyRecoveryAttack.opens(envelope, with: secret, suite: seized.suite) else { continue }
            if byDesign.contains(secret) {
                report.fsKeyRecoveryPrekeyExposed += 1
            } else {
                report.fsKeyRecoveryViolations += 1
                if report.fsKeyRecoveryViolations <= 5 {
                    report.problems.append(
                        "key recovery: a snapshot of device \(snapshot.device) reads \(deviceIndex[envelope.sender] ?? -1)#\(envelope.seq) again")
                }
            }
        }
    }

    /// Every 2SM message addressed to `member` in every published envelope (recipient tags are
    /// resolved against the sender's view from the envelopes, §6.3), in publication order.
    func directMessages(to member: MemberID, truth: GroundTruth) -> [(sender: MemberID, message: TwoPartyMessage)] {
        var found: [(sender: MemberID, message: TwoPartyMessage)] = []
        for envelope in publishedOrder where envelope.kind != .application && envelope.sender != member {
            guard let kind = ControlKind(rawValue: envelope.kind.rawValue),
                  let body = try? ControlBody(kind: kind, payload: envelope.payload ?? []) else { continue }
            if case .add(let bundle, let welcome) = body.fields, bundle.identity == member, let decoded = try? welcome.decode() {
                found.append((envelope.sender, decoded.ratchetCiphertext))
            }
            guard !body.directMessages.isEmpty else { continue }
            let view = truth.view(of: envelope.sender, through: envelope.seq)
            for message in DCGKAState.messages(for: member, in: body, senderView: view) {
                found.append((envelope.sender, message))
            }
        }
        return found
    }

    /// Whether the message's epoch comes after its sender's ratchet took the step of `update`
    /// (its acknowledgment of it yielded a secret): PCS covers exactly those messages (§9). A
    /// sender that got no secret from the update (one added concurrently, whom the healing member
    /// did not know, §5.3 process-seed) takes no ratchet step for it; its later epochs come from
    /// seeds the snapshot may still open (an update concurrent with the healing one, encrypted to
    /// the victim's old keys), until a seed the snapshot cannot open reaches its ratchet.
    func sentInEpochAfter(_ message: SentMessage, _ update: Envelope) -> Bool {
        guard let epoch = message.envelope.application?.epoch,
              let acknowledgment = firstSeqAfterDelivering(update, by: message.sender),
              devices[message.sender].secrets[EpochKey(member: devices[message.sender].identity.id, epoch: acknowledgment)] != nil
        else { return false }
        return epoch >= acknowledgment
    }

    func firstSeqAfterDelivering(_ update: Envelope, by device: Int) -> UInt64? {
        // The sender's acknowledgment of the update marks when it processed it.
        let sender = devices[device].identity.id
        guard let bySeq = relay.storeBySender[sender] else { return nil }
        for seq in bySeq.keys.sorted() where bySeq[seq]!.acked?.hash == update.hash { return seq }
        return nil
    }

    func snapshotCanDecrypt(_ group: Group, _ envelope: Envelope) -> Bool {
        var messaging = group.messaging
        guard let payload = envelope.payload, let header = ApplicationHeader(of: envelope),
              let ciphertext = try? ApplicationCiphertext(wireBytes: payload) else { return false }
        if case .success = messaging.decrypt(ciphertext, header: header) { return true }
        return false
    }
}
