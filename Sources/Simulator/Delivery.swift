internal import Dispatch
internal import DCGKAEncoding
internal import DCGKACrypto
internal import CausalBroadcast
@_spi(Simulation) internal import DCGKAGroup

/// Everything published so far, as a relay stores it (§6.4). Devices only read it while a round
/// of deliveries runs; the simulation adds to it between rounds.
struct Relay: Sendable {
    var store: [Bytes32: Envelope] = [:]
    var storeBySender: [MemberID: [UInt64: Envelope]] = [:]
    /// Position of each envelope in publication order.
    var publishIndex: [Bytes32: Int] = [:]
    /// Application envelopes → the simulation's message number.
    var messageByHash: [Bytes32: Int] = [:]
    /// One Ed25519 check per distinct envelope, made when it is published, for all in-process
    /// members (the hash covers every byte, signature included, so a remembered answer is the
    /// answer). Keeps large simulations fast; the per-member cost is what `dcgka bench` measures.
    var signatureValid: [Bytes32: Bool] = [:]
    /// Every device's identity key, for the forgeries that stand for a stolen key (a fork, a
    /// replay from another group).
    var identities: [MemberID: IdentityKey] = [:]
    /// With an adversary: its ID, the attack each of its attacking envelopes carries (by hash, and
    /// by its seq), and the second sides of its forks (stored by hash, not by position).
    var adversary: MemberID?
    var attackByHash: [Bytes32: Int] = [:]
    var attackBySeq: [UInt64: (index: Int, attack: Attack)] = [:]
    /// Attacks that reach only some of the devices they are delivered to (split seeds reach the
    /// members given a wrong seed), by attack index.
    var attackReach: [Int: Set<MemberID>] = [:]
    var forkSides: [Envelope] = []
    /// Whether the adversary split an update's seeds: the members it lied to lose ratchets (its
    /// own, and those of the honest acknowledgments of that update) until resync repairs them.
    var seedsSplit = false

    func isValid(_ envelope: Envelope) -> Bool {
        signatureValid[envelope.hash] ?? envelope.hasValidSignature()
    }
}

/// One device taking a batch of deliveries. It touches only its own state and reads the relay, so
/// the devices of one round can run side by side; what the rest of the simulation must learn
/// (envelopes to publish, counts, problems) is collected and applied afterwards, in device order,
/// which keeps every run identical whatever the number of threads.
struct DeviceRun: Sendable {
    var device: Simulation.Device
    let index: Int
    var published: [Envelope] = []
    var publishedSignatureValid: [Bool] = []
    var delivered = 0
    var problems: [String] = []
    var failures: [String] = []
    /// Deliveries this one unblocked (parked envelopes, fetches), run one after the other rather
    /// than nested: chains can be long and would exhaust the stack.
    var followUps: [Envelope] = []
    var forgeriesInjected = 0
    var forgeriesAccepted = 0

    /// Hands an envelope to the device; false when it could not take it yet (a sender it does not
    /// know, or an envelope that is not its invitation while it has no state).
    mutating func deliver(_ envelope: Envelope, relay: Relay) -> Bool {
        let accepted = deliverNow(envelope, relay: relay)
        var next = 0
        while next < followUps.count {
            let envelope = followUps[next]
            next += 1
            _ = deliverNow(envelope, relay: relay)
        }
        followUps.removeAll(keepingCapacity: true)
        return accepted
    }

    mutating func deliverNow(_ envelope: Envelope, relay: Relay) -> Bool {
        delivered += 1
        let prekeys = device.prekeys
        // Taken out (a move, no copy), so that receiving mutates the state in place.
        guard var group = device.group.take() else {
            // An invitation for a device that has no state yet.
            do {
                let (joined, output) = try Group.join(
                    identity: device.identity, invitation: envelope, prekeys: prekeys,
                    configuration: Simulation.groupConfiguration, using: &device.rng)
                device.group = joined
                if !device.collectsTraces { device.group?.stopTracing() }
                handle(output, relay: relay)
                retryParked()
                return true
            } catch {
                // A lying welcome of the adversary: refused, typed (the error is a GroupError).
                if let attack = relay.attackByHash[envelope.hash], relay.attackReach[attack]?.contains(device.identity.id) == true {
                    device.reachedAttacks.insert(attack)
                    switch error {
                    case .invalidInvitation, .welcomeRefuted: device.detectedAttacks.insert(attack)
                    default: problems.append("device \(index) refused a lying welcome with \(error)")
                    }
                    return true
                }
                device.parked[envelope.hash] = envelope
                return false
            }
        }
        let bufferedBefore = group.broadcast.bufferedCount
        var output = group.receive(envelope, prekeys: prekeys, using: &device.rng, verifySignature: relay.isValid)
        if let attack = relay.attackByHash[envelope.hash], relay.attackReach[attack]?.contains(device.identity.id) ?? true {
            device.reachedAttacks.insert(attack)
        }
        // A fork whose other side the relay holds: the evidence from its copy (PROTOCOL-NOTES.md,
        // "Equivocation"), then what the cut released.
        if output.events.contains(.equivocation(envelope.sender)) {
            let released = group.followFork(of: envelope, heldCopy: { relay.store[$0] }, prekeys: prekeys, using: &device.rng)
            output.events += released.events
            output.envelopes += released.envelopes
        }
        device.group = group
        handle(output, relay: relay)
        if group.broadcast.bufferedCount > bufferedBefore {
            if let acked = envelope.acked, group.broadcast.operationID(ofAcknowledgeable: acked.hash) == nil,
               !group.broadcast.isBuffered(acked.hash) {
                fetchAcknowledged(acked.hash, relay: relay)
            }
            fetchGapBeforeJoining(below: envelope, relay: relay)
        }
        let refused = output.events.contains { if case .rejected(.unknownSender) = $0 { true } else { false } }
        if refused {
            device.parked[envelope.hash] = envelope
        } else if envelope.kind != .application {
            retryParked()
        }
        return !refused
    }

    /// Serves the device's request for an acknowledged envelope it lacks (by hash), as a relay
    /// answers a fetch: a new member needs those from before its join to release acknowledgments.
    mutating func fetchAcknowledged(_ hash: Bytes32, relay: Relay) {
        guard let envelope = relay.store[hash], device.parked[hash] == nil else { return }
        followUps.append(envelope)
    }

    /// A device made for an add has no mailbox copy of what was published before it existed; the
    /// envelopes after its welcome's frontier among those are fetched as soon as a gap shows them.
    mutating func fetchGapBeforeJoining(below envelope: Envelope, relay: Relay) {
        guard let group = device.group else { return }
        let delivered = group.broadcast.deliveredSeq(of: envelope.sender)
        guard envelope.seq > delivered + 1 else { return }
        for seq in (delivered + 1)..<envelope.seq {
            guard let missing = relay.storeBySender[envelope.sender]?[seq],
                  let index = relay.publishIndex[missing.hash], index < device.firstPublishIndex,
                  device.parked[missing.hash] == nil,
                  !group.broadcast.isBuffered(missing.hash) else { continue }
            followUps.append(missing)
        }
    }

    /// After a batch: keeps the traces, and judges every forgery the device delivered.
    mutating func finishBatch() {
        for hash in device.recordSecretsAndTraces() where device.forged.remove(hash) != nil {
            forgeriesAccepted += 1
            problems.append("device \(index) delivered a forged envelope \(hash)")
        }
    }

    /// Delivers parked envelopes whose senders the device now knows.
    mutating func retryParked() {
        guard !device.parked.isEmpty, let history = device.group?.keyAgreement.history else { return }
        let ready = device.parked.values
            .filter { history.maySend($0.sender) }
            .sorted { ($0.seq, $0.sender) < ($1.seq, $1.sender) }
        for envelope in ready where device.parked[envelope.hash] != nil {
            device.parked[envelope.hash] = nil
            followUps.append(envelope)
        }
    }

    mutating func handle(_ output: GroupOutput, relay: Relay, forged: Bool = false) {
        device.recordOwnSecrets()
        // The adversary's own troubles (it forked its own chain) are not the honest members'.
        let isAdversary = device.identity.id == relay.adversary
        for event in output.events where !isAdversary || { if case .message = event { true } else { false } }() {
            switch event {
            case .message(let from, let seq, _):
                guard let envelope = relay.storeBySender[from]?[seq], let id = relay.messageByHash[envelope.hash] else { continue }
                device.decrypted.insert(id)
            case .lostRatchet(let member, let operation, let reason):
                // No honest schedule may cost a member a secret (issue 8: prekeys are kept long
                // enough), unless its prekeys were wiped on purpose, or an equivocator forked the
                // history (its ratchet, and those of the acknowledgments of the side this device
                // did not take); that loss opens a window.
                if member == relay.adversary {
                    if case .seedConfirmationFailed(let op) = reason, let attack = relay.attackBySeq[op.seq], attack.attack == .splitSeeds {
                        device.detectedAttacks.insert(attack.index)
                    }
                    continue
                }
                guard device.lostPrekeys || relay.forkSides.count > 0 || relay.seedsSplit else {
                    let kind = relay.storeBySender[operation.sender]?[operation.seq].map { "\($0.kind)" } ?? "?"
                    failures.append("device \(index) lost the ratchet of \(member) at \(kind) \(operation): \(reason)")
                    continue
                }
                if device.lossWindows[member]?.last.map({ $0.to != nil }) ?? true {
                    device.lossWindows[member, default: []].append((operation.seq, nil))
                    device.ratchetsLost += 1
                }
            case .recovered(let member, let seq):
                if let last = device.lossWindows[member]?.indices.last, device.lossWindows[member]![last].to == nil {
                    device.lossWindows[member]![last].to = seq
                }
            case .processingFailed(let sender, let seq, let error) where relay.adversary != nil:
                if sender == relay.adversary, let attack = relay.attackBySeq[seq],
                   case .lowOrderKey = attack.attack, case .protocolError(.invalidKeyBundle(_, .lowOrderPrekey)) = error {
                    device.detectedAttacks.insert(attack.index)
                } else if sender == relay.adversary || (error == .unknownAcknowledgedEnvelope && !relay.forkSides.isEmpty) {
                    continue  // the adversary's own envelopes, or the first sign of its fork
                } else {
                    failures.append("device \(index) on \(sender)#\(seq): \(error)")
                }
            case .fromNonMember(let sender, let seq) where sender == relay.adversary:
                if let attack = relay.attackBySeq[seq], attack.attack == .removeAfterRemoval { device.detectedAttacks.insert(attack.index) }
            case .processingFailed(let sender, let seq, let error):
                let kind = relay.storeBySender[sender]?[seq].map { "\($0.kind)" } ?? "?"
                failures.append("device \(index) on \(kind) \(sender)#\(seq): \(error)")
            case .viewMismatch(let sender, let seq):
                // Between honest members the view hash always matches (§5.6), except in the
                // window of a fork, where a third member may have taken a part of the
                // equivocator's chain past the fork (PROTOCOL-NOTES.md, "Equivocation").
                if forged || sender == relay.adversary || !relay.forkSides.isEmpty { continue }
                let kind = relay.storeBySender[sender]?[seq].map { "\($0.kind)" } ?? "?"
                failures.append("device \(index) computes another view than \(sender)'s own at its \(kind) #\(seq)")
            case .welcomeRefuted(let adder):
                if forged || adder == relay.adversary { continue }
                failures.append("device \(index) refuted the honest welcome of \(adder)")
            case .equivocation(let member):
                if forged { continue }  // a fork the network made is judged by deliverForgery
                if member == relay.adversary {
                    for (i, attack) in relay.attackBySeq.values.map({ ($0.index, $0.attack) }) where attack == .equivocation {
                        device.detectedAttacks.insert(i)
                    }
                    continue
                }
                problems.append("equivocation reported for \(member)")
            case .rejected(let error):
                if forged { continue }  // judged by deliverForgery
                if case .equivocation(let sender, _) = error, sender == relay.adversary { continue }
                if case .afterEquivocation(let sender, _) = error, sender == relay.adversary { continue }
                if case .unknownSender = error { continue }  // early envelope of a not-yet-known member: fetched later
                problems.append("rejected at device \(index): \(error)")
            default:
                break
            }
        }
        published += output.envelopes
        // The receivers' shared signature check, made here so that it runs side by side too.
        publishedSignatureValid += output.envelopes.map { $0.hasValidSignature() }
    }
}

/// What one delivery hands a device: an envelope as published, or a forgery made from one.
enum Incoming {
    case honest(Envelope)
    case forged(Forgery, template: Envelope)
}

/// Lets the devices of one round write their own slots (each thread distinct ones) from
/// several threads.
private struct UnsafeSlots<Element>: @unchecked Sendable {
    let base: UnsafeMutableBufferPointer<Element>
}

extension Simulation {
    /// Sends an envelope to every other device's mailbox at the relay: one that cannot use it yet
    /// (not joined, or its sender unknown) keeps it and retries once it can.
    /// `signatureValid`, when given, is the answer of an earlier check of exactly this envelope.
    ///
    /// `only` limits the mailboxes it goes to (the sides of a fork); `otherSide` stores it as the
    /// second side of a fork, by hash only: the position is the first side's.
    mutating func publish(
        _ envelope: Envelope, from sender: Int, signatureValid: Bool? = nil, only: Set<Int>? = nil, otherSide: Bool = false
    ) {
        let index = publishedOrder.count
        relay.publishIndex[envelope.hash] = index
        publishedOrder.append(envelope)
        relay.store[envelope.hash] = envelope
        if otherSide {
            relay.forkSides.append(envelope)
        } else {
            relay.storeBySender[envelope.sender, default: [:]][envelope.seq] = envelope
        }
        if relay.signatureValid[envelope.hash] == nil {
            relay.signatureValid[envelope.hash] = signatureValid ?? envelope.hasValidSignature()
        }
        for device in devices.indices where device != sender && only.map({ $0.contains(device) }) ?? true {
            schedule(index, from: sender, to: device)
        }
    }

    mutating func schedule(_ envelope: Int, from sender: Int, to device: Int) {
        var delay = 1
        if configuration.adversarial {
            delay = 1 + Int(networkRNG.next() % 6)
            if networkRNG.next() % 20 == 0 {
                report.duplicatesInjected += 1
                enqueue(envelope, from: sender, to: device, at: time + 1 + Int(networkRNG.next() % 12))
            }
        }
        enqueue(envelope, from: sender, to: device, at: time + delay)
        if configuration.forgeryRate > 0, forgeryRNG.next() % UInt64(configuration.forgeryRate) == 0 {
            let kinds = configuration.keyedForgeries ? Forgery.allCases : Forgery.withoutKeys
            let forgery = kinds[Int(forgeryRNG.next() % UInt64(kinds.count))]
            enqueue(envelope, from: sender, to: device, at: time + 1 + Int(forgeryRNG.next() % 8), forgery: forgery.rawValue)
        }
    }

    mutating func enqueue(_ envelope: Int, from sender: Int, to device: Int, at when: Int, forgery: UInt8 = 0) {
        let order = forgery == 0 ? networkRNG.next() : forgeryRNG.next()
        queue.append(Delivery(
            time: when, order: Int(order % 1_000_000), device: Int32(device), sender: Int32(sender),
            envelope: Int32(envelope), forgery: forgery))
    }

    /// Partitions that later heal, and members that go offline for a while.
    mutating func perturbNetwork() {
        if networkRNG.next() % 97 == 0 {
            report.partitions += 1
            for index in devices.indices { devices[index].partition = Int(networkRNG.next() % 2) }
        } else if networkRNG.next() % 23 == 0 {
            for index in devices.indices { devices[index].partition = 0 }
        }
        if networkRNG.next() % 31 == 0, !devices.isEmpty {
            let index = Int(networkRNG.next() % UInt64(devices.count))
            devices[index].offlineUntil = time + 3 + Int(networkRNG.next() % 15)
        }
    }

    func canReach(_ device: Int) -> Bool {
        devices[device].offlineUntil <= time
    }

    /// Delivers due envelopes, each device's in a random order; deliveries across a partition or to
    /// an offline member wait.
    mutating func deliverDue() {
        var due: [Delivery] = []
        var later: [Delivery] = []
        later.reserveCapacity(queue.count)
        for delivery in queue {
            let device = Int(delivery.device)
            if delivery.time <= time && canReach(device) && devices[device].partition == devices[Int(delivery.sender)].partition {
                due.append(delivery)
            } else {
                later.append(delivery)
            }
        }
        queue = later
        due.sort { ($0.order, $0.device) < ($1.order, $1.device) }
        var batches: [Int: [Incoming]] = [:]
        for delivery in due {
            let envelope = publishedOrder[Int(delivery.envelope)]
            batches[Int(delivery.device), default: []].append(
                delivery.forgery == 0 ? .honest(envelope) : .forged(Forgery(rawValue: delivery.forgery)!, template: envelope))
        }
        _ = run(batches)
    }

    /// Gives each device its envelopes, in order, with the devices side by side on up to
    /// `configuration.threads` threads; then publishes what they sent and records what they
    /// reported, device by device. Returns, per device, whether each envelope was accepted.
    @discardableResult
    mutating func run(_ batches: [Int: [Incoming]]) -> [Int: [Bool]] {
        let order = batches.keys.sorted()
        guard !order.isEmpty else { return [:] }
        var runs: [DeviceRun] = []
        runs.reserveCapacity(order.count)
        for index in order { runs.append(DeviceRun(device: devices[index].takeForRun(), index: index)) }
        var accepted = [[Bool]](repeating: [], count: order.count)
        let relay = self.relay
        let work = order.map { batches[$0]! }
        let threads = min(max(1, configuration.threads), order.count)
        accepted.withUnsafeMutableBufferPointer { acceptedSlots in
            let acceptedSlots = UnsafeSlots(base: acceptedSlots)
            runs.withUnsafeMutableBufferPointer { buffer in
                let slots = UnsafeSlots(base: buffer)
                // Workers take the next unstarted device until none is left: a device that
                // processes an update costs far more than one that only acknowledges, so fixed
                // shares would leave one thread waiting for the other.
                let nextSlot = SlotCounter(count: slots.base.count)
                let body: @Sendable (Int) -> Void = { _ in
                    while let slot = nextSlot.take() {
                        acceptedSlots.base[slot] = work[slot].map { incoming in
                            switch incoming {
                            case .honest(let envelope): return slots.base[slot].deliver(envelope, relay: relay)
                            case .forged(let forgery, let template):
                                slots.base[slot].deliverForgery(forgery, of: template, relay: relay)
                                return false
                            }
                        }
                        slots.base[slot].finishBatch()
                    }
                }
                if threads == 1 { body(0) } else { DispatchQueue.concurrentPerform(iterations: threads, execute: body) }
            }
        }
        var result: [Int: [Bool]] = [:]
        for (slot, finished) in runs.enumerated() {
            devices[finished.index] = finished.device
            report.envelopesDelivered += finished.delivered
            report.problems += finished.problems
            report.processingFailures += finished.failures
            report.forgeriesInjected += finished.forgeriesInjected
            report.forgeriesAccepted += finished.forgeriesAccepted
            for step in finished.device.ratchetSteps { derivations.add(step) }
            devices[finished.index].ratchetSteps = []
            for (envelope, valid) in zip(finished.published, finished.publishedSignatureValid) {
                publish(envelope, from: finished.index, signatureValid: valid)
            }
            result[finished.index] = accepted[slot]
        }
        return result
    }
}


/// Hands out slot numbers 0, 1, … once each to whichever thread asks.
private final class SlotCounter: @unchecked Sendable {
    private let lock = DispatchSemaphore(value: 1)
    private var next = 0
    private let count: Int

    init(count: Int) { self.count = count }

    func take() -> Int? {
        lock.wait()
        defer { lock.signal() }
        guard next < count else { return nil }
        next += 1
        return next - 1
    }
}
