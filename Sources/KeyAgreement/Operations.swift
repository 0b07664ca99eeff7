@_spi(PlantedDefects) public import DCGKAEncoding
public import DCGKACrypto
internal import TwoPartyMessaging
internal import Membership

// MARK: - My operations (§5.3)

extension DCGKAState {
    /// create(IDs): the group's first message. `bundles` are the other members' verified key
    /// bundles; `creatorBundle`, my own, travels along so later members can start 2SM with me.
    public mutating func create<R: RandomNumberGenerator>(
        bundles: [KeyBundle], creatorBundle: KeyBundle? = nil, groupNonce: Bytes32, seq: UInt64, keys: KeyMaterial,
        using rng: inout R
    ) throws(DCGKAError) -> OperationOutput {
        guard history.isEmpty else { throw .invalidOperation("the group already exists") }
        let ids = bundles.map(\.identity)
        guard Set(ids).count == ids.count, !ids.contains(me) else { throw .invalidOperation("duplicate member in create") }
        guard KeyDerivations.groupID(creator: me, nonce: groupNonce, members: ids, suite: suite.suite) == groupID else {
            throw .groupIDMismatch
        }
        let op = OperationID(sender: me, seq: seq)
        try applyMembership(MembershipOperation(id: op, kind: .create(members: ids)))
        let directory = RecipientDirectory(view: history.members())
        let (dms, unreachable, confirmation) = generateSeed(recipients: ids, directory: directory, keys: keys, using: &rng)
        let secret = processOwnSeed(op)
        let listed = (creatorBundle.map { [$0] } ?? []) + bundles
        return OperationOutput(
            body: confirmed(
                ControlBody(fields: .create(listed), directMessages: dms, seedConfirmation: confirmation, groupNonce: groupNonce),
                secret),
            updateSecret: secret, unreachable: unreachable)
    }

    /// update(): a fresh seed for everyone in my view (post-compromise security), announcing my
    /// newest key bundle when one is given.
    public mutating func update<R: RandomNumberGenerator>(
        seq: UInt64, keys: KeyMaterial, announcing bundle: KeyBundle? = nil, using rng: inout R
    ) throws(DCGKAError) -> OperationOutput {
        let view = history.members()
        guard view.contains(me) else { throw .invalidOperation("not a member") }
        let recipients = view.subtracting([me]).sorted()
        let (dms, unreachable, confirmation) = generateSeed(recipients: recipients, directory: RecipientDirectory(view: view), keys: keys, using: &rng)
        let secret = processOwnSeed(OperationID(sender: me, seq: seq))
        return OperationOutput(
            body: confirmed(ControlBody(fields: .update(bundle), directMessages: dms, seedConfirmation: confirmation), secret),
            updateSecret: secret, unreachable: unreachable)
    }

    /// The simulator's malicious member (issue 8, "split seeds"): an update whose seed confirmation
    /// names the seed everyone outside `split` gets, while each member of `split` gets another
    /// random value. Those members refuse it (§5.7 rule 2, `seedConfirmationFailed`), the others
    /// follow my epoch; nothing honest makes it.
    @_spi(Simulation) public mutating func updateSplittingSeeds<R: RandomNumberGenerator>(
        seq: UInt64, keys: KeyMaterial, split: Set<MemberID>, using rng: inout R
    ) throws(DCGKAError) -> OperationOutput {
        let view = history.members()
        guard view.contains(me) else { throw .invalidOperation("not a member") }
        let recipients = view.subtracting([me]).sorted()
        let directory = RecipientDirectory(view: view)
        var (dms, unreachable, confirmation) = generateSeed(recipients: recipients.filter { !split.contains($0) }, directory: directory, keys: keys, using: &rng)
        for id in recipients where split.contains(id) {
            do {
                dms.append(TaggedDirectMessage(tag: directory.tag(for: id), message: try encrypt(to: id, rng.bytes32().bytes, keys: keys, using: &rng)))
            } catch {
                unreachable[id] = error
            }
        }
        // In the order of the view, as an honest update has them (everyone in it has a position).
        dms.sort { a, b in
            if case .position(let x) = a.tag, case .position(let y) = b.tag { return x < y }
            return false
        }
        let secret = processOwnSeed(OperationID(sender: me, seq: seq))
        return OperationOutput(
            body: confirmed(ControlBody(fields: .update(nil), directMessages: dms, seedConfirmation: confirmation), secret),
            updateSecret: secret, unreachable: unreachable)
    }

    /// remove(ID): a fresh seed for everyone in my view except ID. With `cutFrom`, the remove
    /// carries evidence that ID equivocated from that seq on (the caller puts it in the body): ID's
    /// operations from there on are cut off, in my view at once (PROTOCOL-NOTES.md, "Equivocation").
    public mutating func remove<R: RandomNumberGenerator>(
        _ removed: MemberID, seq: UInt64, keys: KeyMaterial, cutFrom: UInt64? = nil, using rng: inout R
    ) throws(DCGKAError) -> OperationOutput {
        guard history.members().contains(me) else { throw .invalidOperation("not a member") }
        guard history.members().contains(removed), removed != me else { throw .invalidOperation("not a member: \(removed)") }
        let op = OperationID(sender: me, seq: seq)
        try applyMembership(MembershipOperation(id: op, kind: .remove(removed)))
        if let cutFrom { try recordCut(of: removed, from: cutFrom, by: op) }
        let view = history.members()
        let recipients = view.subtracting([me, removed]).sorted()
        let (dms, unreachable, confirmation) = generateSeed(recipients: recipients, directory: RecipientDirectory(view: view), keys: keys, using: &rng)
        let secret = processOwnSeed(op)
        return OperationOutput(
            body: confirmed(ControlBody(fields: .remove(removed), directMessages: dms, seedConfirmation: confirmation), secret),
            updateSecret: secret, unreachable: unreachable)
    }

    /// add(ID): the welcome carries my membership state (with this add) and my ratchet state before
    /// this add, encrypted to the new member. `welcomeContext` is the group layer's part of the welcome.
    public mutating func add<R: RandomNumberGenerator>(
        _ bundle: KeyBundle, seq: UInt64, welcomeContext: [UInt8], keys: KeyMaterial, using rng: inout R
    ) throws(DCGKAError) -> OperationOutput {
        let added = bundle.identity
        guard history.members().contains(me) else { throw .invalidOperation("not a member") }
        guard !history.members().contains(added) else { throw .invalidOperation("already a member: \(added)") }
        var keys = keys
        keys.peerBundles[added] = bundle
        let c = try encrypt(to: added, (ratchets[me] ?? .zero).bytes, keys: keys, using: &rng)
        shareMyRatchet(with: [added])
        let op = OperationID(sender: me, seq: seq)
        try applyMembership(MembershipOperation(id: op, kind: .add(added)))
        let welcome = Welcome(history: history, ratchetCiphertext: c, context: welcomeContext)
        var secret: Bytes32?
        if history.memoizedMembers(asSeenBy: me, atSeq: seq).contains(me) {
            setMemberSecret(MemberSecretKey(operation: op, member: added), updateRatchet(me, input: Self.welcomeInput))
            secret = updateRatchet(me, input: Self.addInput)
        }
        return OperationOutput(
            body: confirmed(ControlBody(fields: .add(bundle, EncodedWelcome(welcome)), directMessages: []), secret), updateSecret: secret)
    }

    /// `body` with the epoch confirmation of my update secret `secret`, if I got one (§5.7 rule 3).
    func confirmed(_ body: ControlBody, _ secret: Bytes32?) -> ControlBody {
        var body = body
        body.epochConfirmation = secret.map { KeyDerivations.epochConfirmation(updateSecret: $0, suite: suite.suite) }
        return body
    }

    /// generate-seed(recipients): a new seed, sent to each recipient over 2SM. A recipient it
    /// cannot be encrypted to (no usable key) is left out and named, never failing the others.
    mutating func generateSeed<R: RandomNumberGenerator>(
        recipients: [MemberID], directory: RecipientDirectory, keys: KeyMaterial, using rng: inout R
    ) -> (messages: [TaggedDirectMessage], unreachable: [MemberID: DCGKAError], confirmation: Bytes32) {
        let seed = rng.bytes32()
        journalNextSeed()
        nextSeed = seed
        var dms: [TaggedDirectMessage] = []
        var unreachable: [MemberID: DCGKAError] = [:]
        dms.reserveCapacity(recipients.count)
        for id in recipients {
            do {
                dms.append(TaggedDirectMessage(tag: directory.tag(for: id), message: try encrypt(to: id, seed.bytes, keys: keys, using: &rng)))
            } catch {
                unreachable[id] = error
            }
        }
        return (dms, unreachable, KeyDerivations.seedConfirmation(seed: seed, suite: suite.suite))
    }

    /// process-seed for my own operation: the seed is `nextSeed`, consumed here.
    mutating func processOwnSeed(_ op: OperationID) -> Bytes32 {
        let seed = nextSeed!
        journalNextSeed()
        nextSeed = nil
        #if DEBUG
        if PlantedDefects.isActive(.keepSeed) { nextSeed = seed }
        #endif
        let view = history.memoizedMembers(asSeenBy: me, atSeq: op.seq)
        narrowMyRatchetReaders(to: view, and: [me])  // the seed went to my view
        return deriveFromSeed(seed, op: op, recipients: view)
    }

    /// Member secrets for every recipient, then the sender's update secret; the seed is dropped.
    mutating func deriveFromSeed(_ seed: Bytes32, op: OperationID, recipients view: Set<MemberID>) -> Bytes32 {
        let prk = memberSecretKey(seed: seed)
        retire(seed)
        for id in view where id != op.sender {
            setMemberSecret(MemberSecretKey(operation: op, member: id), memberSecret(prk: prk, for: id))
        }
        return updateRatchet(op.sender, input: memberSecret(prk: prk, for: op.sender).bytes)
    }

    /// Cuts off `target`'s operations from `seq` on in every view that knows `remove`.
    mutating func recordCut(of target: MemberID, from seq: UInt64, by remove: OperationID) throws(DCGKAError) {
        journalHistory(); do { try history.recordCut(of: target, from: seq, by: remove) } catch { throw .membership(error) }
        // Until now views differed across the fork: a member that had me out of its view (an
        // operation of the cut side removed me there) did not answer my requests, and will once
        // it knows the cut, which my next request follows. So every wait ends, and I ask again.
        stopAwaitingResync(touching: me)
    }

    mutating func applyMembership(_ op: MembershipOperation) throws(DCGKAError) {
        journalHistory(); do { try history.apply(op) } catch { throw .membership(error) }
        switch op.kind {
        case .add(let id), .remove(let id): stopAwaitingResync(touching: id)
        case .create: break
        }
    }
}

// MARK: - Processing others' messages (§5.3)

extension DCGKAState {
    /// process(sender, seq, control, dmsg). `acked` names the acknowledged operation for the three
    /// acknowledgment kinds (resolved by the broadcast layer from the envelope's hash). `mySeq` is
    /// the seq my acknowledgment will have if one is returned.
    ///
    /// `cut`: for a remove whose fork evidence the group layer checked, the seq from which the
    /// removed member's operations are cut off (PROTOCOL-NOTES.md, "Equivocation").
    public mutating func process<R: RandomNumberGenerator>(
        sender: MemberID, seq: UInt64, body: ControlBody, acked: OperationID?, mySeq: UInt64,
        keys: KeyMaterial, cut: UInt64? = nil, using rng: inout R
    ) throws(DCGKAError) -> ProcessOutput {
        lossesInCall = []
        recoveredInCall = []
        var output = try processContent(
            sender: sender, seq: seq, body: body, acked: acked, mySeq: mySeq, keys: keys, cut: cut, using: &rng)
        if !output.fromNonMember { checkEpochConfirmation(of: sender, seq: seq, body: body, output: &output) }
        if let acknowledgment = output.acknowledgment { output.acknowledgment = confirmed(acknowledgment, output.mySecret) }
        output.lost = lossesInCall
        output.recovered = recoveredInCall.filter { !lostRatchets.contains($0) }
        lossesInCall = []
        recoveredInCall = []
        var movesChannels = true
        #if DEBUG
        movesChannels = !PlantedDefects.isActive(.stayOnPrekey)
        #endif
        if movesChannels, var acknowledgment = output.acknowledgment, !channelsOnMyPrekey.isEmpty {
            try moveChannelsOffMyPrekey(into: &acknowledgment, keys: keys, using: &rng)
            output.acknowledgment = acknowledgment
        }
        return output
    }

    /// §5.7 rule 3: the update secret I derived for the sender must match the one it confirms.
    /// A mismatch, a confirmation I cannot match because I derived nothing, or a secret the sender
    /// did not confirm, all mean I lost its ratchet here; its epoch is then not started (what it
    /// sends is unreadable to me, and I know why). Only a member in the sender's view at that
    /// envelope is meant to follow it: a removed member's stale values are none of its business.
    mutating func checkEpochConfirmation(of sender: MemberID, seq: UInt64, body: ControlBody, output: inout ProcessOutput) {
        guard history.memoizedMembers(asSeenBy: sender, atSeq: seq).contains(me) else { return }
        let op = OperationID(sender: sender, seq: seq)
        let suite = suite.suite
        if let secret = output.senderSecret {
            guard let confirmation = body.epochConfirmation,
                  ConstantTime.equal(confirmation, KeyDerivations.epochConfirmation(updateSecret: secret, suite: suite)) else {
                output.senderSecret = nil
                lose(sender, at: op, because: .epochConfirmationFailed(op))
                return
            }
        } else if body.epochConfirmation != nil, !lostRatchets.contains(sender) {
            lose(sender, at: op, because: .epochConfirmationFailed(op))
        }
    }

    /// Sends every peer whose channel still rests on my prekey an empty 2SM message in my
    /// acknowledgment (tagged against my view, as every acknowledgment's direct messages are).
    mutating func moveChannelsOffMyPrekey<R: RandomNumberGenerator>(
        into acknowledgment: inout ControlBody, keys: KeyMaterial, using rng: inout R
    ) throws(DCGKAError) {
        let directory = RecipientDirectory(view: history.members())
        for peer in channelsOnMyPrekey.sorted() {
            acknowledgment.directMessages.append(TaggedDirectMessage(
                tag: directory.tag(for: peer), message: try encrypt(to: peer, [], keys: keys, using: &rng)))
        }
    }

    mutating func processContent<R: RandomNumberGenerator>(
        sender: MemberID, seq: UInt64, body: ControlBody, acked: OperationID?, mySeq: UInt64,
        keys: KeyMaterial, cut: UInt64?, using rng: inout R
    ) throws(DCGKAError) -> ProcessOutput {
        guard sender != me else { throw .unexpectedMessage("my own message") }
        let op = OperationID(sender: sender, seq: seq)
        let isOperation: Bool
        switch body.fields {
        case .update, .remove, .resync: isOperation = true
        // My own welcome is checked once it is merged (a new member has no history to judge by).
        case .add(let bundle, _): isOperation = bundle.identity != me
        case .create, .ack, .addAck, .welcomeAck, .resyncAnswer: isOperation = false
        }
        if isOperation, !wasMember(sender, before: seq) {
            var ignored = ProcessOutput(acknowledgment: nil, senderSecret: nil, mySecret: nil)
            ignored.fromNonMember = true
            return ignored
        }
        switch body.fields {
        case .create(let bundles):
            guard history.isEmpty else { throw .unexpectedMessage("a second create") }
            for bundle in bundles { try Self.checkArrived(bundle) }
            let members = bundles.map(\.identity).filter { $0 != sender }
            // §6.1: the group ID is bound to its creator and member list.
            guard let nonce = body.groupNonce,
                  KeyDerivations.groupID(creator: sender, nonce: nonce, members: members, suite: suite.suite) == groupID
            else { throw .groupIDMismatch }
            try applyMembership(MembershipOperation(id: op, kind: .create(members: members)))
            return try processSeed(op, body: body, mySeq: mySeq, keys: keys, using: &rng)
        case .update:
            return try processSeed(op, body: body, mySeq: mySeq, keys: keys, using: &rng)
        case .remove(let removed):
            try applyMembership(MembershipOperation(id: op, kind: .remove(removed)))
            if let cut { try recordCut(of: removed, from: cut, by: op) }
            return try processSeed(op, body: body, mySeq: mySeq, keys: keys, using: &rng)
        case .add(let bundle, let welcome):
            try Self.checkArrived(bundle)
            if bundle.identity == me {
                let decoded: Welcome
                do { decoded = try welcome.decode() } catch { throw .malformedWelcome(error) }
                return try processWelcome(op, welcome: decoded, mySeq: mySeq, keys: keys, using: &rng)
            }
            return try processAdd(op, added: bundle, mySeq: mySeq, keys: keys, using: &rng)
        case .resync(let generation, let key, let lost):
            return try processResync(op, generation: generation, key: key, lost: lost, keys: keys, using: &rng)
        case .ack, .addAck, .welcomeAck, .resyncAnswer:
            guard let acked else { throw .unexpectedMessage("acknowledgment without acknowledged operation") }
            let secret: Bytes32?
            switch body.fields {
            case .ack: secret = try processAck(op, acked: acked, body: body, keys: keys)
            case .addAck: secret = try processAddAck(op, acked: acked, body: body, keys: keys)
            case .resyncAnswer: secret = try processResyncAnswer(op, acked: acked, body: body, keys: keys)
            default: secret = try processWelcomeAck(op, acked: acked, body: body, keys: keys)
            }
            return ProcessOutput(acknowledgment: nil, senderSecret: secret, mySecret: nil)
        }
    }

    /// A bundle that arrives in a create or an add is refused at once when its keys are of small
    /// order (§2.1): the envelope fails, typed, at every member alike, and the key is never used.
    static func checkArrived(_ bundle: KeyBundle) throws(DCGKAError) {
        do { try bundle.checkKeys() } catch { throw .invalidKeyBundle(bundle.identity, error) }
    }

    /// The direct messages of `body` addressed to me, decrypted in order. Every one is decrypted,
    /// even one whose content is not needed, because 2SM must see all of a peer's messages.
    mutating func myDirectMessages(
        _ op: OperationID, body: ControlBody, senderView: Set<MemberID>? = nil, keys: KeyMaterial
    ) throws(DCGKAError) -> [[UInt8]] {
        guard !body.directMessages.isEmpty else { return [] }
        let view = senderView ?? history.memoizedMembers(asSeenBy: op.sender, atSeq: op.seq)
        var plaintexts: [[UInt8]] = []
        for message in Self.messages(for: me, in: body, senderView: view) {
            let plaintext = try decrypt(from: op.sender, message, keys: keys)
            // An empty message only moves the channel off my key (PROTOCOL-NOTES.md, "leaving the prekey").
            if !plaintext.isEmpty { plaintexts.append(plaintext) }
        }
        return plaintexts
    }

    mutating func recordOwnAcknowledgment(of op: OperationID, mySeq: UInt64) throws(DCGKAError) {
        guard history.contains(op) else { return }
        try recordAcknowledgment(of: op, by: me, atSeq: mySeq)
    }

    mutating func processSeed<R: RandomNumberGenerator>(
        _ op: OperationID, body: ControlBody, mySeq: UInt64, keys: KeyMaterial, using rng: inout R
    ) throws(DCGKAError) -> ProcessOutput {
        // The recipients are the sender's view without the sender; the view is used as is (no copy).
        let senderView = history.memoizedMembers(asSeenBy: op.sender, atSeq: op.seq)
        var mine: [[UInt8]] = []
        var failure: DCGKAError?
        do { mine = try myDirectMessages(op, body: body, senderView: senderView, keys: keys) } catch { failure = error }
        guard me != op.sender, senderView.contains(me) else {
            // Added concurrently, unknown to the sender (or removed by this very message).
            try recordOwnAcknowledgment(of: op, mySeq: mySeq)
            return ProcessOutput(acknowledgment: ControlBody(fields: .ack(withoutSecret: false), directMessages: []), senderSecret: nil, mySecret: nil)
        }
        let seed: Bytes32
        do throws(DCGKAError) {
            if let failure { throw failure }
            guard let first = mine.first else { throw DCGKAError.missingDirectMessage(op) }
            seed = try decodeSecret(first, from: op.sender)
            // §5.7 rule 2: a seed that is not the one the sender confirmed to everyone is refused.
            guard body.seedConfirmation == KeyDerivations.seedConfirmation(seed: seed, suite: suite.suite) else {
                throw DCGKAError.seedConfirmationFailed(op)
            }
        } catch {
            return try lostSeed(op, mySeq: mySeq, because: error)
        }
        let senderSecret = deriveFromSeed(seed, op: op, recipients: senderView)
        try recordOwnAcknowledgment(of: op, mySeq: mySeq)
        let view = history.members()
        var forwards: [TaggedDirectMessage] = []
        let newcomers = view.filter { $0 != op.sender && !senderView.contains($0) }
        if !newcomers.isEmpty, let mySecret = memberSecrets[MemberSecretKey(operation: op, member: me)] {
            let directory = RecipientDirectory(view: view)
            for id in newcomers.sorted() {
                // A newcomer I cannot reach loses my secret (it knows: its acknowledgment then lacks
                // the input); the others still get theirs.
                guard let message = try? encrypt(to: id, mySecret.bytes, keys: keys, using: &rng) else { continue }
                forwards.append(TaggedDirectMessage(tag: directory.tag(for: id), message: message))
            }
        }
        var mySecret: Bytes32?
        if let secret = consumeMemberSecret(op: op, member: me) {
            // My member secret is known to whoever got the seed and to the newcomers I forward it to.
            narrowMyRatchetReaders(to: senderView, and: [op.sender, me] + newcomers)
            mySecret = updateRatchet(me, input: secret.bytes)
        }
        return ProcessOutput(
            acknowledgment: ControlBody(fields: .ack(withoutSecret: false), directMessages: forwards), senderSecret: senderSecret,
            mySecret: mySecret)
    }

    /// §5.7 rule 1: the seed of `op` is out of my reach. Its membership effect stays (applied before),
    /// I acknowledge it without a secret (nobody steps my ratchet for that, so mine stays in step
    /// everywhere), and I can no longer follow its sender's ratchet.
    mutating func lostSeed(_ op: OperationID, mySeq: UInt64, because reason: DCGKAError) throws(DCGKAError) -> ProcessOutput {
        try recordOwnAcknowledgment(of: op, mySeq: mySeq)
        loseSeed(of: op)
        lose(op.sender, at: op, because: reason)
        return ProcessOutput(acknowledgment: ControlBody(fields: .ack(withoutSecret: true), directMessages: []), senderSecret: nil, mySecret: nil)
    }

    mutating func consumeMemberSecret(op: OperationID, member: MemberID) -> Bytes32? {
        removeMemberSecret(MemberSecretKey(operation: op, member: member))
    }

    /// process-ack: the acknowledger's member secret, from my table or forwarded to me.
    mutating func processAck(_ ack: OperationID, acked: OperationID, body: ControlBody, keys: KeyMaterial) throws(DCGKAError) -> Bytes32? {
        if history.contains(acked) {
            try recordAcknowledgment(of: acked, by: ack.sender, atSeq: ack.seq)
        }
        var forwarded: [[UInt8]] = []
        var failure: DCGKAError?
        do { forwarded = try myDirectMessages(ack, body: body, keys: keys) } catch { failure = error }
        // Deleted in every case: after the acknowledgment it is of no further use (§5.7 rule 1).
        let kept = consumeMemberSecret(op: acked, member: ack.sender)
        if case .ack(withoutSecret: true) = body.fields { return nil }  // nobody steps for it
        var secret = kept
        if secret == nil, let first = forwarded.first {
            do { secret = try decodeSecret(first, from: ack.sender) } catch { failure = error }
        }
        guard let secret else {
            // The acknowledger took a step I cannot take: it got a secret I never had.
            if let failure {
                lose(ack.sender, at: ack, because: failure)
            } else if lostSeeds.contains(acked), history.memoizedMembers(asSeenBy: acked.sender, atSeq: acked.seq).contains(ack.sender) {
                lose(ack.sender, at: ack, because: .missingDirectMessage(acked))
            }
            return nil
        }
        return updateRatchet(ack.sender, input: secret.bytes)
    }

    mutating func processAdd<R: RandomNumberGenerator>(
        _ op: OperationID, added bundle: KeyBundle, mySeq: UInt64, keys: KeyMaterial, using rng: inout R
    ) throws(DCGKAError) -> ProcessOutput {
        let added = bundle.identity
        try applyMembership(MembershipOperation(id: op, kind: .add(added)))
        var senderSecret: Bytes32?
        // A ratchet I lost is not stepped (PROTOCOL-NOTES.md, "Recovery"): I cannot compute the
        // added member's secret either, and lose the added member's ratchet when it acknowledges.
        if history.memoizedMembers(asSeenBy: op.sender, atSeq: op.seq).contains(me), !lostRatchets.contains(op.sender) {
            setMemberSecret(MemberSecretKey(operation: op, member: added), updateRatchet(op.sender, input: Self.welcomeInput))
            senderSecret = updateRatchet(op.sender, input: Self.addInput)
        }
        try recordOwnAcknowledgment(of: op, mySeq: mySeq)
        let view = history.members()
        var dms: [TaggedDirectMessage] = []
        // §5.5(4): when the add is not effective in my view (its sender was removed before or
        // concurrently), the added member must not receive my ratchet state (PROTOCOL-NOTES.md).
        if view.contains(added) {
            var keys = keys
            keys.peerBundles[added] = bundle
            // If the new member cannot be reached it lacks my ratchet (and knows it); the add stands.
            if let c = try? encrypt(to: added, (ratchets[me] ?? .zero).bytes, keys: keys, using: &rng) {
                shareMyRatchet(with: [added])
                dms.append(TaggedDirectMessage(tag: RecipientDirectory(view: view).tag(for: added), message: c))
            }
        }
        let mySecret: Bytes32? = view.contains(me) ? updateRatchet(me, input: Self.addInput) : nil
        return ProcessOutput(
            acknowledgment: ControlBody(fields: .addAck, directMessages: dms), senderSecret: senderSecret, mySecret: mySecret)
    }

    mutating func processAddAck(_ ack: OperationID, acked: OperationID, body: ControlBody, keys: KeyMaterial) throws(DCGKAError) -> Bytes32? {
        // An add that had no membership effect here (its sender was no member in its own view as
        // my history gives it: across an equivocator's fork, views of third parties differ until
        // the cut is known everywhere) gives its acknowledgments none either.
        if history.contains(acked) {
            try recordAcknowledgment(of: acked, by: ack.sender, atSeq: ack.seq)
        }
        let view = history.memoizedMembers(asSeenBy: ack.sender, atSeq: ack.seq)
        // The added member gets the acknowledger's ratchet state; anyone may get an empty message
        // that moves a channel off their prekey.
        var mine: [[UInt8]] = []
        var failure: DCGKAError?
        do { mine = try myDirectMessages(ack, body: body, senderView: view, keys: keys) } catch { failure = error }
        // I am the added member when the add is mine, or when the add is already folded here (a
        // later welcome told me it is settled) and the add-ack still brings me a non-empty direct
        // message: only the added member gets one (the others get empty ones, if any).
        let addsMe: Bool = if case .add(me)? = history.operation(acked)?.kind { true } else { false }
        if view.contains(me), addsMe || (!mine.isEmpty && history.isFoldedOperation(acked)) {
            do throws(DCGKAError) {
                if let failure { throw failure }
                guard let first = mine.first else { throw DCGKAError.missingDirectMessage(ack) }
                setRatchet(ack.sender, try decodeSecret(first, from: ack.sender))
                recover(ack.sender)  // a re-added member that had lost it has it again
            } catch {
                lose(ack.sender, at: ack, because: error)  // I was added without its ratchet state
            }
        }
        // The acknowledger itself takes this step only while it is a member in its own view
        // (process-add-ack(me) asks "me in member-view(me)"), so the others require that too;
        // otherwise a removed member's add-ack would move its ratchet for others but not for
        // itself (PROTOCOL-NOTES.md).
        guard view.contains(me), view.contains(ack.sender), !lostRatchets.contains(ack.sender) else { return nil }
        return updateRatchet(ack.sender, input: Self.addInput)
    }

    static let forwardRatchet: UInt8 = 1
    static let forwardMember: UInt8 = 2

    mutating func processWelcome<R: RandomNumberGenerator>(
        _ op: OperationID, welcome: Welcome, mySeq: UInt64, keys: KeyMaterial, using rng: inout R
    ) throws(DCGKAError) -> ProcessOutput {
        let oldHistory = history
        if oldHistory.isEmpty {
            journalHistory()
            history = welcome.history
        } else {
            journalHistory(); do { try history.checkedMerge(welcome.history) } catch { throw .membership(error) }
        }
        guard history.contains(op) else { throw .unexpectedMessage("welcome without its add") }
        guard wasMember(op.sender, before: op.seq) else { throw .unexpectedMessage("a welcome from a non-member") }
        // The adder's ratchet state. If it does not decrypt (a channel I cannot follow, §5.7), the add
        // still holds: I lose the adder's ratchet, have no member secret of the add, and say so in
        // my welcome-ack, so that nobody steps my ratchet for it.
        var senderSecret: Bytes32?
        do throws(DCGKAError) {
            setRatchet(op.sender, try decodeSecret(try decrypt(from: op.sender, welcome.ratchetCiphertext, keys: keys), from: op.sender))
            recover(op.sender)
            setMemberSecret(MemberSecretKey(operation: op, member: me), updateRatchet(op.sender, input: Self.welcomeInput))
            senderSecret = updateRatchet(op.sender, input: Self.addInput)
        } catch {
            lose(op.sender, at: op, because: error)
        }
        journalHistory(); do { try history.recordWelcome(of: me, add: op, atSeq: mySeq) } catch { throw .membership(error) }
        stopAwaitingResync(touching: me)
        var forwards: [TaggedDirectMessage] = []
        let senderView = history.memoizedMembers(asSeenBy: op.sender, atSeq: op.seq)
        // My member secret comes from the adder's ratchet, which everyone in its view can follow
        // (an adder refreshes first when its own epoch is exposed), and reaches the members I forward it to.
        var secretReaders = [op.sender, me]
        if !oldHistory.isEmpty {
            let all = history.members()
            let directory = RecipientDirectory(view: all)
            let oldMembers = oldHistory.members()
            let ratchetTargets = all.subtracting(oldMembers).subtracting([me]).sorted()
            for id in ratchetTargets {
                let plaintext = [Self.forwardRatchet] + (ratchets[me] ?? .zero).bytes
                // One I cannot reach lacks my ratchet (and knows it: my welcome-ack brings it nothing).
                guard let message = try? encrypt(to: id, plaintext, keys: keys, using: &rng) else { continue }
                forwards.append(TaggedDirectMessage(tag: directory.tag(for: id), message: message))
            }
            shareMyRatchet(with: ratchetTargets)
            if let secret = memberSecrets[MemberSecretKey(operation: op, member: me)] {
                let memberTargets = all.subtracting(senderView).subtracting([me]).sorted()
                for id in memberTargets {
                    let plaintext = [Self.forwardMember] + secret.bytes
                    guard let message = try? encrypt(to: id, plaintext, keys: keys, using: &rng) else { continue }
                    forwards.append(TaggedDirectMessage(tag: directory.tag(for: id), message: message))
                }
                secretReaders += memberTargets
            }
        }
        var mySecret: Bytes32?
        if let secret = consumeMemberSecret(op: op, member: me) {
            narrowMyRatchetReaders(to: senderView, and: secretReaders)
            mySecret = updateRatchet(me, input: secret.bytes)
        }
        return ProcessOutput(
            acknowledgment: ControlBody(fields: .welcomeAck(withoutSecret: mySecret == nil), directMessages: forwards),
            senderSecret: senderSecret, mySecret: mySecret)
    }

    mutating func processWelcomeAck(_ ack: OperationID, acked: OperationID, body: ControlBody, keys: KeyMaterial) throws(DCGKAError) -> Bytes32? {
        // As for an add-ack: an add that had no membership effect here (its sender was no member
        // in its own view as my history gives it, or a cut dropped it) records nothing.
        if history.contains(acked) {
            journalHistory(); do { try history.recordWelcome(of: ack.sender, add: acked, atSeq: ack.seq) } catch { throw .membership(error) }
        }
        do throws(DCGKAError) {
            for plaintext in try myDirectMessages(ack, body: body, keys: keys) {
                guard plaintext.count == 33, let value = Bytes32(plaintext.dropFirst()) else { throw DCGKAError.malformedSecret(ack.sender) }
                switch plaintext[0] {
                case Self.forwardRatchet:
                    setRatchet(ack.sender, value)
                    recover(ack.sender)
                case Self.forwardMember: setMemberSecret(MemberSecretKey(operation: acked, member: ack.sender), value)
                default: throw DCGKAError.malformedSecret(ack.sender)
                }
            }
        } catch {
            lose(ack.sender, at: ack, because: error)  // what it forwarded to me is out of reach
        }
        let kept = consumeMemberSecret(op: acked, member: ack.sender)  // deleted in every case
        if case .welcomeAck(withoutSecret: true) = body.fields { return nil }  // nobody steps for it
        return kept.map { updateRatchet(ack.sender, input: $0.bytes) }
    }
}
