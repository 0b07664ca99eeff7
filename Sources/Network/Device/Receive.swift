public import DCGKAEncoding
internal import DCGKACrypto
public import CausalBroadcast
@_spi(Simulation) internal import DCGKAGroup
internal import KeyAgreement
internal import GroupMessaging

/// What a batch of received envelopes did.
public struct ReceiveReport: Sendable, Equatable {
    /// Envelopes taken into a log for the first time.
    public var new = 0
    /// Envelopes already held (same hash).
    public var duplicate = 0
    /// Envelopes refused: undecodable, bad signature, refused by the group (a stranger, another
    /// group's); never stored.
    public var rejected = 0
    /// Envelopes of groups I am neither in nor invited to: not mine to keep.
    public var ignored = 0
    /// Forks: a second, different envelope of one sender at one seq (kept as evidence only).
    public var equivocations = 0
    public var joined: [GroupID] = []
    /// Invitations from people who are not contacts, waiting for `dcgka group accept`.
    public var invitations: [GroupID] = []
    /// History lines added (messages and events).
    public var messages = 0
    public var events = 0
    /// Why envelopes were rejected (the first few).
    public var reasons: [String] = []

    public init() {}

    mutating func reject(_ reason: String) {
        rejected += 1
        if reasons.count < 16 { reasons.append(reason) }
    }

    mutating func merge(_ other: ReceiveReport) {
        new += other.new
        duplicate += other.duplicate
        rejected += other.rejected
        ignored += other.ignored
        equivocations += other.equivocations
        joined += other.joined
        invitations += other.invitations
        messages += other.messages
        events += other.events
        reasons += other.reasons.prefix(max(0, 16 - reasons.count))
    }
}

/// An envelope as a transport hands it over: the group it names and its wire bytes.
public struct ReceivedEnvelope: Sendable, Equatable {
    public var group: GroupID
    public var wire: [UInt8]
    public init(group: GroupID, wire: [UInt8]) {
        self.group = group
        self.wire = wire
    }
}

extension Device {
    /// Takes envelopes from any transport (a file, a link) through every check, in batches of
    /// ``DeviceConfiguration/importBatch``, one write transaction per batch. `progress` is told
    /// how many were processed after each committed batch.
    public mutating func receive(_ items: [ReceivedEnvelope], progress: ((Int) -> Void)? = nil) throws -> ReceiveReport {
        let items = try invitationsFirst(items)
        var report = ReceiveReport()
        var start = 0
        while start < items.count {
            let end = min(items.count, start + max(1, configuration.importBatch))
            let now = clock()
            let groupConfiguration = configuration.group
            let batchReport: ReceiveReport = try write(purge: false) { tx, keys, random in
                var session = ReceiveSession(keys: keys, now: now, configuration: groupConfiguration, contacts: Set(try tx.contacts().map(\.id)))
                for item in items[start..<end] { try session.receive(item, tx: tx, rng: &random) }
                try session.finish(tx, rng: &random)
                return session.report
            }
            report.merge(batchReport)
            start = end
            progress?(start)
        }
        // What the batches deleted leaves the disk now (NETWORK.md §10.3).
        try store.purgeDeletedData()
        return report
    }
}

extension Device {
    /// The same envelopes with invitations of me to groups this device does not know yet moved to
    /// the front: the rest of such a group's envelopes in the same delivery can then be taken
    /// (those before my add are skipped by the welcome's frontier, later ones processed).
    func invitationsFirst(_ items: [ReceivedEnvelope]) throws -> [ReceivedEnvelope] {
        let (me, known) = try store.read { tx in
            (try tx.profile().map { try Keys($0).me }, Set(try tx.groups().map(\.id)))
        }
        guard let me else { throw DeviceError.notInitialized }
        var invitations: [ReceivedEnvelope] = []
        var rest: [ReceivedEnvelope] = []
        for item in items {
            if !known.contains(item.group), let envelope = try? Envelope(wire: item.wire, groupID: item.group),
               ReceiveSession.invites(me, envelope) {
                invitations.append(item)
            } else {
                rest.append(item)
            }
        }
        return invitations + rest
    }
}

/// One batch of received envelopes inside one write transaction: groups are decoded once,
/// changed in memory, and written back with the log, outbox and history at the end.
struct ReceiveSession {
    let keys: Keys
    let now: UInt64
    let configuration: GroupConfiguration
    let contacts: Set<MemberID>
    var records: [GroupID: GroupRecord] = [:]
    var groups: [GroupID: Group] = [:]
    var effects: [GroupID: Effects] = [:]
    var lostSync: Set<GroupID> = []
    /// Groups I carry, as read once per batch: their participants and log sizes (§14.3).
    var carried: [GroupID: (participants: Set<MemberID>, count: Int)] = [:]
    var report = ReceiveReport()

    init(keys: Keys, now: UInt64, configuration: GroupConfiguration, contacts: Set<MemberID> = []) {
        self.keys = keys
        self.now = now
        self.configuration = configuration
        self.contacts = contacts
    }

    mutating func receive<R: RandomNumberGenerator>(_ item: ReceivedEnvelope, tx: any DeviceStoreTransaction, rng: inout R) throws {
        let envelope: Envelope
        do { envelope = try Envelope(wire: item.wire, groupID: item.group) } catch {
            report.reject("undecodable envelope: \(error)")
            return
        }
        // One look-up answers both questions: the same hash at its (sender, seq) is a duplicate
        // (the hash covers sender and seq), another hash there is a fork.
        let held = try tx.logHash(group: item.group, sender: envelope.sender, seq: envelope.seq)
        if let held, held.hash == envelope.hash {
            // A full copy of an envelope I hold pruned gives its payload back (§6.1): to the log,
            // and to the group, which shows the message if its key is still waiting.
            if held.pruned, !envelope.isPruned, envelope.hasValidSignature(),
               let entry = try tx.logEntry(group: item.group, sender: envelope.sender, seq: envelope.seq) {
                try tx.replaceWire(position: entry.position, wire: item.wire, pruned: false)
                if try open(item.group, tx: tx), var group = groups.removeValue(forKey: item.group),
                   var record = records.removeValue(forKey: item.group) {
                    let output = group.receive(envelope, prekeys: keys.prekeys, using: &rng, verifySignature: { $0.hash == envelope.hash })
                    apply(output, group: &group, record: &record)
                    groups[item.group] = group
                    records[item.group] = record
                }
                report.new += 1
                return
            }
            report.duplicate += 1
            return
        }
        guard envelope.hasValidSignature() else {
            report.reject("bad signature from \(envelope.sender)")
            return
        }
        if held != nil, let other = try tx.logEntry(group: item.group, sender: envelope.sender, seq: envelope.seq) {
            // Same sender and seq, another hash: a fork (PROTOCOL.md §6.2). The pair is kept to
            // pass on, and a group I am in applies the equivocation rule to it (PROTOCOL-NOTES.md,
            // "Equivocation"): it cuts the sender off, and one of us removes it. Reported once:
            // the same fork passed on again by other holders is not news.
            let known = try tx.evidenceCount(group: item.group)
            try tx.saveEvidence(group: item.group, sender: envelope.sender, seq: envelope.seq, first: other.wire, second: item.wire, savedAt: now)
            let news = try tx.evidenceCount(group: item.group) > known
            var noted = false
            if try open(item.group, tx: tx), var group = groups.removeValue(forKey: item.group) {
                if let held = try? Envelope(wire: other.wire, groupID: item.group), let evidence = try? ForkEvidence(held, envelope) {
                    noted = group.noteFork(evidence)
                }
                if noted, records[item.group]?.status == .joined, var record = records.removeValue(forKey: item.group) {
                    // The cut may release what waited for the other side (a returning member's add).
                    try applyReleased(group.deliverReleased(prekeys: keys.prekeys, using: &rng), group: &group, record: &record, tx: tx)
                    records[item.group] = record
                }
                groups[item.group] = group
            }
            guard news || noted else {
                report.duplicate += 1
                return
            }
            report.equivocations += 1
            effects[item.group]?.event("equivocation", sender: envelope.sender, seq: envelope.seq)
            return
        }
        let known = try open(item.group, tx: tx)
        if known, records[item.group]?.status == .carried {
            try carry(envelope, wire: item.wire, group: item.group, tx: tx)
            return
        }
        guard known, var record = records[item.group] else {
            try consider(envelope, tx: tx, rng: &rng)
            return
        }
        if record.status == .declined {
            // A refused invitation: nothing of the group is kept.
            report.ignored += 1
            return
        }
        // Taken out of the table while it changes: a copy left behind would make every change
        // copy the group's tables (copy on write).
        guard record.status == .joined, var group = groups.removeValue(forKey: item.group) else {
            // Invited only: kept until the user accepts, then processed.
            try append(envelope, wire: item.wire, tx: tx)
            return
        }
        let output = group.receive(envelope, prekeys: keys.prekeys, using: &rng, verifySignature: { $0.hash == envelope.hash })
        for case .equivocation(let equivocator) in output.events {
            try keepFork(of: equivocator, found: envelope, wire: item.wire, in: &group, tx: tx)
        }
        // Refused: rejected, or a fork of its own sender. (A remove that carries evidence of
        // another member's fork also reports an equivocation, of that member; it is delivered.)
        let forked = output.events.contains(.equivocation(envelope.sender))
        if forked {
            // With the evidence kept, the group delivers what the cut released.
            try applyReleased(group.deliverReleased(prekeys: keys.prekeys, using: &rng), group: &group, record: &record, tx: tx)
        }
        let refused = forked || output.events.contains { if case .rejected = $0 { true } else { false } }
        if refused {
            if forked {
                report.equivocations += 1
            } else {
                report.reject("refused by the group: \(output.events)")
            }
        } else {
            try append(envelope, wire: item.wire, tx: tx)
        }
        apply(output, group: &group, record: &record)
        groups[item.group] = group
        records[item.group] = record
    }

    /// What ``Group/deliverReleased(prekeys:using:)`` gave after a cut: applied like any output,
    /// and the forks it reported (a released remove that carries evidence) kept.
    mutating func applyReleased(_ output: GroupOutput, group: inout Group, record: inout GroupRecord, tx: any DeviceStoreTransaction) throws {
        for case .equivocation(let equivocator) in output.events {
            try EquivocationDuty.keep(group.forkEvidence[equivocator], group: record.id, tx: tx, now: now)
        }
        apply(output, group: &group, record: &record)
    }

    /// A fork of `equivocator` that my group reported while taking `envelope` (its own, or one
    /// a remove carried, or one its buffer held) (PROTOCOL-NOTES.md, "Equivocation"). When the
    /// fork is `envelope`'s and its other side is one I delivered earlier, the group kept only its
    /// hash: I build the evidence from my log, and keep both whole envelopes. Otherwise the
    /// group's pair of headers is kept. The table passes it on by sync, and its time starts the
    /// delay after which I remove the equivocator myself.
    mutating func keepFork(
        of equivocator: MemberID, found envelope: Envelope, wire: [UInt8], in group: inout Group, tx: any DeviceStoreTransaction
    ) throws {
        if equivocator == envelope.sender, group.forkEvidence[equivocator] == nil, let counterpart = group.forkCounterpart(of: envelope),
           let entry = try tx.logEntry(group: envelope.groupID, sender: counterpart.sender, seq: counterpart.seq),
           entry.hash == counterpart.hash, let held = try? Envelope(wire: entry.wire, groupID: envelope.groupID),
           let evidence = try? ForkEvidence(held, envelope), group.noteFork(evidence) {
            try tx.saveEvidence(group: envelope.groupID, sender: equivocator, seq: evidence.cutSeq, first: entry.wire, second: wire, savedAt: now)
        } else {
            try EquivocationDuty.keep(group.forkEvidence[equivocator], group: envelope.groupID, tx: tx, now: now)
        }
    }

    /// Loads a group into the session; false when the device does not know it.
    @discardableResult
    mutating func open(_ id: GroupID, tx: any DeviceStoreTransaction) throws -> Bool {
        if records[id] != nil { return true }
        guard let record = try tx.group(id) else { return false }
        records[id] = record
        if let state = record.state {
            do { groups[id] = try Group(wireBytes: state) } catch { throw DeviceError.corruptState("group \(record.title): \(error)") }
        }
        effects[id] = Effects(group: id, now: now)
        return true
    }

    /// `wire`: the bytes as received (they decoded to `envelope`), so nothing is encoded again.
    mutating func append(_ envelope: Envelope, wire: [UInt8]? = nil, tx: any DeviceStoreTransaction) throws {
        try tx.appendLog(LogRecord(
            group: envelope.groupID, sender: envelope.sender, seq: envelope.seq, hash: envelope.hash, kind: envelope.kind.rawValue,
            wire: wire ?? envelope.wireBytes, receivedAt: now, isPruned: envelope.isPruned))
        report.new += 1
    }

    /// An envelope of a group I do not know: an invitation of me is joined at once when it comes
    /// from a contact, kept for the user to accept otherwise; anything else is not mine to keep.
    mutating func consider<R: RandomNumberGenerator>(_ envelope: Envelope, tx: any DeviceStoreTransaction, rng: inout R) throws {
        guard Self.invites(keys.me, envelope) else {
            report.ignored += 1
            return
        }
        var record = GroupRecord(
            id: envelope.groupID, title: "(untitled)", state: nil, status: .invited, invitation: envelope.hash,
            invitedBy: envelope.sender, createdAt: now)
        if contacts.contains(envelope.sender) {
            let entry = LogRecord(
                group: envelope.groupID, sender: envelope.sender, seq: envelope.seq, hash: envelope.hash,
                kind: envelope.kind.rawValue, wire: envelope.wireBytes, receivedAt: now)
            do {
                try join(record: &record, invitation: entry, tx: tx, rng: &rng)
                try append(envelope, tx: tx)
            } catch let error as DeviceError {
                report.reject("invitation could not be joined: \(error)")
            }
        } else {
            try tx.saveGroup(record)
            try append(envelope, tx: tx)
            records[record.id] = record
            effects[record.id] = Effects(group: record.id, now: now)
            report.invitations.append(record.id)
        }
    }

    /// Whether the envelope is a create that lists me or an add of me.
    static func invites(_ me: MemberID, _ envelope: Envelope) -> Bool {
        guard let kind = ControlKind(rawValue: envelope.kind.rawValue), kind == .create || kind == .add,
              let body = try? ControlBody(kind: kind, payload: envelope.payload ?? []) else { return false }
        switch body.fields {
        case .create(let bundles): return envelope.seq == 1 && bundles.contains { $0.identity == me }
        case .add(let bundle, _): return bundle.identity == me
        default: return false
        }
    }

    /// Joins from an invitation, then processes whatever was kept for the group before.
    mutating func join<R: RandomNumberGenerator>(
        record: inout GroupRecord, invitation: LogRecord, tx: any DeviceStoreTransaction, rng: inout R
    ) throws {
        let envelope: Envelope
        do { envelope = try Envelope(wire: invitation.wire, groupID: record.id) } catch { throw DeviceError.corruptState("invitation: \(error)") }
        let joined: (Group, GroupOutput)
        do {
            joined = try Group.join(identity: keys.identity, invitation: envelope, prekeys: keys.prekeys, configuration: configuration, using: &rng)
        } catch { throw DeviceError.group(error) }
        var (group, output) = joined
        record.status = .joined
        record.invitation = nil
        records[record.id] = record
        effects[record.id] = effects[record.id] ?? Effects(group: record.id, now: now)
        apply(output, group: &group, record: &record)
        // What was kept while the invitation waited.
        for entry in try tx.log(group: record.id, after: 0, limit: Int.max) where entry.hash != invitation.hash {
            guard let kept = try? Envelope(wire: entry.wire, groupID: record.id) else { continue }
            let more = group.receive(kept, prekeys: keys.prekeys, using: &rng, verifySignature: { $0.hash == kept.hash })
            apply(more, group: &group, record: &record)
        }
        groups[record.id] = group
        records[record.id] = record
        report.joined.append(record.id)
    }

    /// My acknowledgments go to the log and outbox; events become history lines.
    mutating func apply(_ output: GroupOutput, group: inout Group, record: inout GroupRecord) {
        let id = record.id
        // Taken out while it grows, for the same reason.
        var lines = effects.removeValue(forKey: id) ?? Effects(group: id, now: now)
        for envelope in output.envelopes { lines.sent(envelope) }
        let removedMe = output.events.contains { if case .removedFromGroup = $0 { true } else { false } }
        for event in output.events {
            switch event {
            case .joined(let by):
                lines.event("joined", sender: by, subjects: [keys.me])
            case .message(let from, let seq, let bytes):
                if let content = try? MessageContent(bytes: bytes) {
                    // Reserved contents count only from members (a removed member's suggestions are dropped, §14.5).
                    if case .text = content.kind {} else if !group.members.contains(from) { continue }
                    lines.content(content, from: from, seq: seq, record: &record, receivedAt: now)
                } else {
                    lines.event("unreadable", sender: from, seq: seq, text: "the message's content is damaged or from a newer version")
                }
            case .expired(let from, let seq):
                lines.event("expired", sender: from, seq: seq, text: "its text was deleted by the holder it came from before it reached this device")
            case .undecryptable(let from, let seq, let reason):
                // After my removal nothing more is shown: my history ends there.
                guard group.isMember else { continue }
                lines.event("unreadable", sender: from, seq: seq, text: Self.words(reason))
            case .fromNonMember(let from, let seq):
                guard group.isMember else { continue }
                lines.event("non-member", sender: from, seq: seq, text: "sent by someone who was not a member at the time; not shown")
            case .membersAdded(let ids, let by):
                lines.event("added", sender: by, subjects: ids)
            case .membersRemoved(let ids, let by):
                lines.membersLeft = true
                let others = removedMe ? ids.filter { $0 != keys.me } : ids
                if !others.isEmpty { lines.event("removed", sender: by, subjects: others) }
            case .updated(let by):
                lines.event("updated", sender: by)
            case .removedFromGroup(let by):
                lines.event("removed-me", sender: by, subjects: [keys.me])
            case .equivocation(let sender):
                lines.event("equivocation", sender: sender)
            case .rejected:
                break
            case .processingFailed(let sender, let seq, let error):
                lines.event("processing-failed", sender: sender, seq: seq, text: "a group change could not be fully processed (\(error))")
            case .lostRatchet(let member, _, let reason):
                lines.event("lost-ratchet", sender: member, text: "messages from this member cannot be read until keys are recovered (\(reason))")
                lostSync.insert(id)
            case .resyncRequested(let by, _):
                lines.event("resync-requested", sender: by, text: "asked the group for keys it lost")
            case .recovered(let member, let seq):
                lines.event("recovered", sender: member, seq: seq, text: "messages from this member can be read again")
            case .viewMismatch(let sender, let seq):
                lines.event("view-mismatch", sender: sender, seq: seq)  // HistoryRenderer words it
            case .welcomeRefuted(let adder):
                lines.event("welcome-refuted", sender: adder)
            }
        }
        effects[id] = lines
    }

    static func words(_ reason: UndecryptableReason) -> String {
        switch reason {
        case .unknownEpoch: "no key for it here (sent before you joined, or its key never arrived)"
        case .epochExpired: "its key was deleted for forward secrecy before the message arrived"
        case .keyAlreadyUsed: "its key was already used (a copy of a message already shown)"
        case .tooFarAhead: "it skips too far ahead in the sender's messages"
        default: "it does not decrypt (damaged or tampered with)"
        }
    }

    /// Writes every changed group back with its log, outbox and history, and performs the
    /// recovery the protocol asks for (§5.7): a resync request where ratchets were lost.
    mutating func finish<R: RandomNumberGenerator>(_ tx: any DeviceStoreTransaction, rng: inout R) throws {
        for id in records.keys.sorted() {
            // A carried group's record does not change: its envelopes went to the log already.
            guard var record = records[id], record.status != .carried, record.status != .declined else { continue }
            var lines = effects[id] ?? Effects(group: id, now: now)
            if var group = groups[id] {
                try EquivocationDuty.perform(on: &group, id: id, effects: &lines, tx: tx, me: keys.me, prekeys: keys.prekeys, now: now, rng: &rng)
                if group.needsResync, let request = try? group.requestResync(using: &rng) {
                    lines.sent(request)
                    lines.event("resync-requested", sender: keys.me, text: "asked the group for keys this device lost")
                }
                if lostSync.contains(id), group.isMember {
                    // §5.7: tell the people in the group, in words, while recovery runs.
                    let notice = MessageContent(.lostSync("this device lost keys and is recovering; some messages may show as unreadable"), sentAt: now)
                    if let envelopes = try? group.send(notice.bytes, prekeys: keys.prekeys, now: now, using: &rng) {
                        for envelope in envelopes { lines.sent(envelope) }
                    }
                }
                record.state = group.wireBytes
                try lines.settleRelays(tx, record: &record, members: group.members, me: keys.me)
            }
            try tx.saveGroup(record)
            try lines.commit(tx)
            report.messages += lines.lines.filter { $0.kind == .message }.count
            report.events += lines.lines.filter { $0.kind == .event }.count
        }
    }
}
