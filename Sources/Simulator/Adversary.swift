internal import DCGKAEncoding
internal import DCGKACrypto
internal import CausalBroadcast
@_spi(Simulation) internal import DCGKAGroup
@_spi(Simulation) internal import KeyAgreement
internal import TwoPartyMessaging
internal import Membership

/// The malicious member of `dcgka simulate --adversary` (issue 8): device 1, a member from the
/// create, behaves like everyone else except at a few points of the run, where it attacks. Every
/// attack is registered with the envelopes that carry it; every honest device such an envelope
/// reaches must detect it (the events named per attack), and the checks of the run hold over the
/// honest members.
enum Attack: String, CaseIterable, Sendable {
    /// As an adder, a bundle whose prekey has small order (§2.1): every member refuses the add,
    /// typed (`invalidKeyBundle(lowOrderPrekey)`), and nothing of it takes effect.
    case lowOrderKey
    /// After it processed its own removal, a remove of a member: every member reports it as from
    /// a non-member (§4.2), and it has no effect. An honest member then adds it back.
    case removeAfterRemoval
    /// As an adder, an add of a new device whose welcome is cut short in its history: the
    /// newcomer refuses the invitation, typed (`GroupError.invalidInvitation`); the others hold
    /// an honest add of someone who never joins, and an honest member removes it.
    case malformedWelcome
    /// As an adder, an add whose welcome declares a context larger than the decoder's bound
    /// (`Welcome.maximumContextLength`) in a few bytes: refused at once, typed, without
    /// allocating what it declares.
    case oversizedWelcome
    /// As an adder, an add whose welcome's history holds an add the group never saw (of a
    /// stranger, by the adversary): the add's view hash contradicts it, and the newcomer refutes
    /// the welcome at the join (§5.6, `GroupError.welcomeRefuted`).
    case inventedWelcome
    /// An update whose seed confirmation holds for half of the honest members in its view while
    /// the other half each get another seed (§5.7 rule 2): those detect it
    /// (`lostRatchet(seedConfirmationFailed)`), and resync brings them back in step.
    case splitSeeds
    /// At one seq, an add of a new device shown to half the members and an update shown to the
    /// other half (§6.2): every member ends up holding the fork's evidence, the equivocation
    /// rule removes the adversary, both sides are cut off, and resync repairs the ratchets.
    case equivocation
}

/// One attack as it was made: the envelopes that carry it.
struct AttackRecord: Sendable {
    let attack: Attack
    let seq: UInt64
    let hashes: Set<Bytes32>
}

extension Simulation {
    /// When the run makes its attacks: evenly through the first two thirds of the run, so that the
    /// last third shows the honest members recovered; the clock passes every expiry after them.
    func attackStep(_ attack: Attack) -> Int {
        let slots = Attack.allCases.count + 2
        let index = Attack.allCases.firstIndex(of: attack)!
        return configuration.operations * (index + 1) / slots
    }

    var clockJumpStep: Int { configuration.operations * (Attack.allCases.count + 1) / (Attack.allCases.count + 2) }

    /// Signs `body` as the adversary's next envelope, outside its group's API (which refuses to
    /// make such envelopes), and records it as sent in its own chain.
    mutating func signAsAdversary(_ adversary: Int, kind: EnvelopeKind, body: ControlBody) throws -> Envelope {
        guard var group = devices[adversary].group else { throw AttackError.noState }
        let (seq, prev) = group.broadcast.nextOwnPosition()
        let envelope = Envelope.sign(
            identity: devices[adversary].identity, suite: group.suite, groupID: group.groupID, seq: seq, prev: prev,
            kind: kind, acked: nil, payload: body.payload)
        guard group.recordSentElsewhere(envelope) else { throw AttackError.notRecorded }
        devices[adversary].group = group
        return envelope
    }

    enum AttackError: Error { case noState, notRecorded, notAMember, nobodyToRemoveIt }

    mutating func register(_ attack: Attack, _ envelopes: [Envelope], reaching: Set<MemberID>? = nil) {
        let record = AttackRecord(attack: attack, seq: envelopes[0].seq, hashes: Set(envelopes.map(\.hash)))
        attacks.append(record)
        if let reaching { relay.attackReach[attacks.count - 1] = reaching }
        for hash in record.hashes { relay.attackByHash[hash] = attacks.count - 1 }
        relay.attackBySeq[record.seq] = (attacks.count - 1, attack)
        report.adversaryAttacks += 1
    }

    mutating func attackWithLowOrderKey(_ adversary: Int) throws {
        guard let group = devices[adversary].group, group.isMember else { throw AttackError.notAMember }
        let stranger = IdentityKey.generate(using: &forgeryRNG)
        // A point of order 8 on Curve25519 (every low-order point gives an all-zero secret).
        let lowOrder = PKEPublicKey(raw: Bytes32([UInt8](repeating: 0, count: 32))!)
        let bundle = KeyBundle(signing: lowOrder, notAfter: clock + 86_400, with: stranger)
        let welcome = Welcome(
            history: group.keyAgreement.history,
            ratchetCiphertext: TwoPartyMessage(header: try TwoPartyHeader(wireBytes: [KeyOrigin.me.rawValue]), ciphertext: [0]),
            context: [])
        let envelope = try signAsAdversary(
            adversary, kind: .add, body: ControlBody(fields: .add(bundle, EncodedWelcome(welcome)), directMessages: []))
        register(.lowOrderKey, [envelope])
        publish(envelope, from: adversary)
    }

    /// An honest member removes the adversary; once the adversary has processed its removal it
    /// removes someone; an honest member adds it back later (``readdAdversaryIfDue()``).
    mutating func attackAfterRemoval(_ adversary: Int) throws {
        let adversaryID = devices[adversary].identity.id
        guard let remover = devices.indices.first(where: { $0 != adversary && devices[$0].group?.isMember == true
            && devices[$0].group!.members.contains(adversaryID) }), var group = devices[remover].group
        else { throw AttackError.nobodyToRemoveIt }
        let removal = try group.remove(adversaryID, prekeys: devices[remover].prekeys, using: &rng)
        report.removes += 1
        finish(remover, group, removal)
        pendingRemovalAttack = removal.hash
    }

    /// The second half of ``attackAfterRemoval(_:)``, once the adversary processed its removal.
    mutating func removeAfterRemovalIfDue() {
        guard let adversary, let removal = pendingRemovalAttack, let group = devices[adversary].group,
              group.broadcast.operationID(ofAcknowledgeable: removal) != nil, !group.isMember else { return }
        pendingRemovalAttack = nil
        guard let victim = group.members.sorted().first(where: { $0 != group.me }) else { return }
        do {
            let envelope = try signAsAdversary(adversary, kind: .remove, body: ControlBody(fields: .remove(victim), directMessages: []))
            register(.removeAfterRemoval, [envelope])
            publish(envelope, from: adversary)
            readdAdversary = true
        } catch {
            report.problems.append("the removeAfterRemoval attack could not be made: \(error)")
        }
    }

    /// An honest member adds the adversary back after its remove-after-removal (and again if that
    /// add was undone, say by a concurrent remove of its adder, while attacks remain).
    mutating func readdAdversaryIfDue() {
        guard let adversary else { return }
        let adversaryID = devices[adversary].identity.id
        if !readdAdversary, pendingRemovalAttack == nil, nextAttack < Attack.allCases.count,
           devices[adversary].group?.isMember != true,
           !devices.indices.contains(where: { $0 != adversary && devices[$0].group?.members.contains(adversaryID) == true }) {
            readdAdversary = true
        }
        guard readdAdversary else { return }
        guard let adder = devices.indices.first(where: { $0 != adversary && devices[$0].group?.isMember == true
            && !devices[$0].group!.members.contains(adversaryID) && canReach($0) }), var group = devices[adder].group else { return }
        readdAdversary = false
        do {
            let envelopes = try group.add(devices[adversary].bundle, prekeys: devices[adder].prekeys, now: clock, using: &rng)
            report.readds += 1
            devices[adder].group = group
            devices[adder].recordSecretsAndTraces()
            for envelope in envelopes { publish(envelope, from: adder) }
        } catch {
            report.problems.append("adding the adversary back failed: \(error)")
        }
    }

    /// An add of a new device, made honestly (the adversary's state follows it), whose welcome is
    /// then replaced as `attack` says and the envelope signed again at the same position; only
    /// the newcomer reads a welcome, so only it is reached.
    mutating func lieInWelcome(_ adversary: Int, _ attack: Attack) throws {
        guard var group = devices[adversary].group, group.isMember else { throw AttackError.notAMember }
        let newcomer = makeDevice()
        report.adds += 1
        let envelopes = try group.add(devices[newcomer].bundle, prekeys: devices[adversary].prekeys, now: clock, using: &rng)
        let honest = envelopes.last!
        guard let payload = honest.payload, var body = try? ControlBody(kind: .add, payload: payload),
              case .add(let bundle, let encoded) = body.fields, let welcome = try? encoded.decode()
        else { throw AttackError.notRecorded }
        let lying: EncodedWelcome
        switch attack {
        case .malformedWelcome:
            lying = EncodedWelcome(unchecked: Array(encoded.bytes.prefix(encoded.bytes.count - welcome.history.wireBytes.count / 2)))
        case .oversizedWelcome:
            var writer = WireWriter()
            writer.writeVarint(UInt64(Welcome.maximumContextLength) * 2)
            writer.writeFixed([UInt8](repeating: 0x5A, count: 64))
            lying = EncodedWelcome(unchecked: writer.bytes)
        default:
            var history = welcome.history
            let stranger = IdentityKey.generate(using: &forgeryRNG).id
            guard let seq = (1..<honest.seq).reversed().first(where: { !history.contains(OperationID(sender: group.me, seq: $0)) }),
                  (try? history.apply(MembershipOperation(id: OperationID(sender: group.me, seq: seq), kind: .add(stranger)))) != nil
            else { throw AttackError.notRecorded }
            lying = EncodedWelcome(Welcome(history: history, ratchetCiphertext: welcome.ratchetCiphertext, context: welcome.context))
        }
        body.fields = .add(bundle, lying)
        let forged = Envelope.sign(
            identity: devices[adversary].identity, suite: honest.suite, groupID: honest.groupID, seq: honest.seq,
            prev: honest.prev, kind: .add, acked: nil, payload: body.payload)
        guard group.replaceOwnNewest(with: forged) else { throw AttackError.notRecorded }
        devices[adversary].group = group
        devices[adversary].recordSecretsAndTraces()
        for refresh in envelopes.dropLast() { publish(refresh, from: adversary) }
        register(attack, [forged], reaching: [devices[newcomer].identity.id])
        uninvited.append(newcomer)
        publish(forged, from: adversary)
    }

    /// Every newcomer whose invitation was a lying welcome never joins; an honest member that
    /// still has it in its view removes it (the invitee says so out of band), again after
    /// `equivocatorRemovalDelay` steps if a concurrent operation undid that.
    mutating func removeUninvited() {
        for ghost in uninvited where devices[ghost].group == nil {
            let id = devices[ghost].identity.id
            if let last = uninvitedRemovedAt[ghost], time - last < Self.equivocatorRemovalDelay { continue }
            guard let remover = devices.indices.first(where: { $0 != adversary && canReach($0) && devices[$0].group?.isMember == true
                && devices[$0].group!.members.contains(id) }), var group = devices[remover].group else { continue }
            do {
                let envelope = try group.remove(id, prekeys: devices[remover].prekeys, now: clock, using: &rng)
                report.removes += 1
                uninvitedRemovedAt[ghost] = time
                finish(remover, group, envelope)
            } catch {
                report.problems.append("device \(remover) could not remove the newcomer of a lying welcome: \(error)")
            }
        }
    }

    /// An update that gives every other honest member of the adversary's view (by ID) a seed
    /// other than the one it confirms.
    mutating func splitSeeds(_ adversary: Int) throws {
        guard var group = devices[adversary].group, group.isMember else { throw AttackError.notAMember }
        let others = group.members.subtracting([group.me]).sorted()
        let split = Set(others.enumerated().filter { $0.offset % 2 == 0 }.map(\.element))
        let envelope = try group.updateSplittingSeeds(for: split, prekeys: devices[adversary].prekeys, now: clock, using: &rng)
        report.updates += 1
        devices[adversary].group = group
        devices[adversary].recordSecretsAndTraces()
        relay.seedsSplit = true
        register(.splitSeeds, [envelope], reaching: split)
        publish(envelope, from: adversary)
    }

    /// One side of the fork adds a new device, the other is an update; each side goes to half of
    /// the other devices only. The relay keeps both, so sync shows every device the other side.
    mutating func equivocate(_ adversary: Int) throws {
        guard let group = devices[adversary].group, group.isMember else { throw AttackError.notAMember }
        let newcomer = makeDevice()
        report.adds += 1
        var left = group, right = group
        let prekeys = devices[adversary].prekeys
        let add = try left.add(devices[newcomer].bundle, prekeys: prekeys, now: clock, using: &rng)
        let update = try right.update(prekeys: prekeys, using: &rng)
        guard let addEnvelope = add.last, add.count == 1, addEnvelope.seq == update.seq else {
            throw AttackError.notRecorded  // an update came first: no fork at one seq
        }
        devices[adversary].group = left
        devices[adversary].recordSecretsAndTraces()
        equivocated = true
        register(.equivocation, [addEnvelope, update])
        let others = devices.indices.filter { $0 != adversary && $0 != newcomer && devices[$0].group != nil }
        let leftSide = Set(others.filter { $0 % 2 == 0 } + [newcomer])
        publish(addEnvelope, from: adversary, only: leftSide)
        publish(update, from: adversary, only: Set(others).subtracting(leftSide), otherSide: true)
    }

    /// From here on every operation's clock is past every bundle's expiry (`notAfter`, §2.3): the
    /// channels inside the group go on, and new bundles are made for the new time.
    mutating func passEveryExpiry() {
        clock += 86_400 * 60
        clockPassedExpiries = true
        for index in devices.indices {
            let bundle = devices[index].prekeys.generate(identity: devices[index].identity, notAfter: clock + 86_400 * 30, using: &rng)
            devices[index].bundle = bundle
        }
    }

    /// Every honest member that holds evidence of an equivocator still in its view removes it:
    /// the one the rule names at once, the others once `equivocatorRemovalDelay` steps passed.
    mutating func removeEquivocators() {
        for index in devices.indices where index != adversary && canReach(index) {
            guard var group = devices[index].group, group.isMember else { continue }
            for equivocator in group.equivocatorsToRemove {
                let since = devices[index].evidenceSince[equivocator] ?? time
                devices[index].evidenceSince[equivocator] = since
                guard group.removesAtOnce(equivocator) || time - since >= Self.equivocatorRemovalDelay else { continue }
                do {
                    let envelope = try group.remove(equivocator, prekeys: devices[index].prekeys, now: clock, using: &rng)
                    report.removes += 1
                    finish(index, group, envelope)
                    break
                } catch {
                    report.problems.append("device \(index) could not remove equivocator: \(error)")
                }
            }
        }
    }

    static let equivocatorRemovalDelay = 200
}

extension Simulation {
    /// The adversary's part of one step of the run: the next attack once it is due and the
    /// adversary is a member, the follow-ups, the honest members' duty to remove an equivocator,
    /// and whether the honest members have recovered.
    mutating func adversaryStep(_ step: Int) {
        if step == clockJumpStep { passEveryExpiry() }
        attackIfDue(step: step)
        removeAfterRemovalIfDue()
        readdAdversaryIfDue()
        removeEquivocators()
        removeUninvited()
        if disruptedFrom != nil, recoveredAt == nil, honestMembersRecovered { recoveredAt = time }
    }

    /// The next attack, once its step has come and the adversary is a member again (an attack
    /// still due when the schedule ends is made during the final sync).
    mutating func attackIfDue(step: Int) {
        if let adversary, nextAttack < Attack.allCases.count, step >= attackStep(Attack.allCases[nextAttack]),
           devices[adversary].group?.isMember == true, pendingRemovalAttack == nil, !readdAdversary {
            let attack = Attack.allCases[nextAttack]
            nextAttack += 1
            if disruptedFrom == nil, attack == .equivocation || attack == .splitSeeds { disruptedFrom = time }
            do {
                switch attack {
                case .lowOrderKey: try attackWithLowOrderKey(adversary)
                case .removeAfterRemoval: try attackAfterRemoval(adversary)
                case .malformedWelcome, .oversizedWelcome, .inventedWelcome: try lieInWelcome(adversary, attack)
                case .splitSeeds: try splitSeeds(adversary)
                case .equivocation: try equivocate(adversary)
                }
            } catch {
                report.problems.append("the \(attack) attack could not be made: \(error)")
            }
        }
    }

    /// Every honest member has removed the adversary (and cut its fork off) and follows every
    /// other member's ratchet again.
    var honestMembersRecovered: Bool {
        guard let adversary else { return true }
        let adversaryID = devices[adversary].identity.id
        for index in devices.indices where index != adversary {
            guard let group = devices[index].group, group.isMember else { continue }
            if group.members.contains(adversaryID) || !group.equivocatorsToRemove.isEmpty { return false }
            if !group.keyAgreement.lostRatchets.intersection(group.members).subtracting([group.me]).isEmpty { return false }
            // A request still waiting for a member of the view (one waiting only for members the
            // cut took out of it waits for nobody).
            if group.keyAgreement.resync.requests.contains(where: { !$0.awaiting.intersection(group.members).isEmpty }) { return false }
        }
        return true
    }

    /// Why ``honestMembersRecovered`` is false, per honest member (at the end, where it says so).
    var recoveryStatus: [String] {
        guard let adversary else { return [] }
        let adversaryID = devices[adversary].identity.id
        var lines: [String] = []
        for index in devices.indices where index != adversary {
            guard let group = devices[index].group, group.isMember else { continue }
            let lost = group.keyAgreement.lostRatchets.intersection(group.members).subtracting([group.me])
            let waiting = group.keyAgreement.resync.requests.filter { !$0.awaiting.intersection(group.members).isEmpty }
            if group.members.contains(adversaryID) || !lost.isEmpty || !waiting.isEmpty {
                lines.append("device \(index): adversary in view \(group.members.contains(adversaryID)), lost \(lost.compactMap { deviceIndex[$0] }.sorted()), requests waiting for \(waiting.map { $0.awaiting.compactMap { deviceIndex[$0] }.sorted() })")
            }
        }
        return lines
    }

    /// Whether a missed honest message falls in the disrupted window.
    func inDisruptedWindow(_ message: SentMessage) -> Bool {
        guard let from = disruptedFrom else { return false }
        return message.sentAt >= from && recoveredAt.map { message.sentAt < $0 } ?? true
    }

    /// Every attack that reached an honest device was detected by it (issue 8); returns how
    /// many detections there were.
    mutating func checkDetections() {
        guard let adversary else { return }
        for index in devices.indices where index != adversary {
            var detected = devices[index].detectedAttacks
            // Evidence learned from a holder or from the remove that carried it counts too.
            if devices[index].group?.forkEvidence[devices[adversary].identity.id] != nil {
                for (i, record) in attacks.enumerated() where record.attack == .equivocation { detected.insert(i) }
            }
            let reached = devices[index].reachedAttacks
            report.adversaryDetected += reached.intersection(detected).count
            for i in reached.subtracting(detected).sorted() {
                report.problems.append("device \(index) did not detect the \(attacks[i].attack) attack (adversary #\(attacks[i].seq))")
            }
        }
    }
}

extension Simulation {
    /// When views differ at the end: for each member some views hold and others do not, the
    /// operations that add or remove it and the cuts, as one device of each distinct view holds
    /// them (which operation one view counts and another does not is usually the whole story).
    mutating func explainDisputedMembers(among members: [Int]) {
        var byView: [Set<MemberID>: Int] = [:]
        for device in members { byView[devices[device].group!.members] = byView[devices[device].group!.members] ?? device }
        guard byView.count > 1 else { return }
        let all = byView.keys.reduce(Set<MemberID>()) { $0.union($1) }
        let common = byView.keys.reduce(all) { $0.intersection($1) }
        func name(_ id: MemberID) -> String { deviceIndex[id].map(String.init) ?? "\(id)" }
        for disputed in all.subtracting(common).sorted() {
            for (view, device) in byView.sorted(by: { $0.value < $1.value }) {
                let history = devices[device].group!.keyAgreement.history
                let ops = history.operations.filter { $0.target == disputed || $0.id.sender == disputed }
                let listed = ops.map { op -> String in
                    let kind: String
                    switch op.kind {
                    case .create: kind = "create"
                    case .add(let t): kind = "add \(name(t))"
                    case .remove(let t): kind = "remove \(name(t))"
                    }
                    return "\(name(op.id.sender))#\(op.id.seq) \(kind)\(history.isCutOff(op.id) ? " (cut)" : "")"
                }
                let cuts = history.cutOffs.map { "\(name($0.target)) from \($0.from) by \($0.by.map { "\(name($0.sender))#\($0.seq)" } ?? "folded")" }
                report.problems.append("  member \(name(disputed)) \(view.contains(disputed) ? "in" : "not in") the view of device \(device): \(listed); cuts \(cuts); folded \(history.isFolded)")
            }
        }
    }
}
