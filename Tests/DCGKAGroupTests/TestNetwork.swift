@_spi(Simulation) import DCGKAGroup
import CausalBroadcast
import DCGKACrypto
import DCGKAEncoding
import KeyAgreement
import Testing

/// (member, epoch): one update secret of one member's message ratchet (§5.4, §7).
struct EpochKey: Hashable, CustomStringConvertible {
    let member: MemberID
    let epoch: UInt64
    var description: String { "\(member)@\(epoch)" }
}

/// An application message sent during a scenario, to check who read it.
struct SentMessage: Hashable {
    let sender: String
    let seq: UInt64
    let hash: Bytes32
    let text: String
}

/// A deterministic in-process network of named members (§9 scenario tests).
///
/// Envelopes wait in `inFlight` as (recipient, envelope) pairs until the test delivers them, in a
/// chosen order or a seeded shuffle. Every envelope also goes to a relay log; after delivery,
/// members sync from it what they still lack (by their delivered seq per sender and by what
/// `Group.missing` asks for). A partition hides the envelopes sent on one side from the other
/// side, both in flight and in the relay log, until `heal()`.
struct TestNetwork {
    struct Person {
        let name: String
        let identity: IdentityKey
        var prekeys: PrekeyStore
        let bundle: KeyBundle
        var group: Group?
        /// Update secrets this person derived while a member in its own view, by (member, epoch).
        var secrets: [EpochKey: Bytes32] = [:]
        /// Update secrets derived while not a member (removed, or removed concurrently with an add
        /// of it). Such a person lacks the seeds of operations that excluded it, so what it derives
        /// for later epochs need not match the members' secrets; §5.4 requires equality among
        /// members only. These are kept for the checks that an outsider learns nothing.
        var secretsWhileOut: [EpochKey: Bytes32] = [:]
        /// Whether the group still reports its update secrets (false after a decode).
        var exposesSecrets = true
        /// Application messages (by envelope hash) this person decrypted / could not decrypt.
        var read: Set<Bytes32> = []
        var unreadable: Set<Bytes32> = []
        var events: [GroupEvent] = []
    }

    static let now: UInt64 = 1_800_000_000
    static var configuration: GroupConfiguration {
        var configuration = GroupConfiguration()
        configuration.exposesUpdateSecrets = true
        return configuration
    }

    var rng: SeededRandom
    var people: [String: Person] = [:]
    var names: [String] = []
    var inFlight: [(to: String, envelope: Envelope)] = []
    /// Every envelope ever sent, with the side of the partition it was sent on (nil: visible to all).
    var relayLog: [(envelope: Envelope, side: Int?)] = []
    /// The side of each person while a partition lasts.
    var sides: [String: Int]? = nil
    var envelopesByID: [OperationID: Envelope] = [:]
    var messageByHash: [Bytes32: SentMessage] = [:]
    /// Problems the protocol reported (processing failures, rejections other than early unknown
    /// senders, equivocations, failed joins, inconsistent secrets within one person).
    var problems: [String] = []
    /// People who equivocate on purpose (EquivocationTests): what their forks cause at honest
    /// members (the equivocation itself, acknowledgments of the side a member did not take, view
    /// hashes over it) is collected in `forkSigns`, not in `problems`.
    var equivocators: Set<String> = []
    var forkSigns: [String] = []

    init(seed: UInt64, names: [String]) {
        rng = SeededRandom(seed: seed)
        for name in names { enroll(name) }
    }

    mutating func enroll(_ name: String) {
        let identity = IdentityKey.generate(using: &rng)
        var prekeys = PrekeyStore()
        let bundle = prekeys.generate(identity: identity, notAfter: Self.now + 86_400 * 30, using: &rng)
        people[name] = Person(name: name, identity: identity, prekeys: prekeys, bundle: bundle)
        names.append(name)
    }

    func id(_ name: String) -> MemberID { people[name]!.identity.id }
    func ids(_ names: [String]) -> Set<MemberID> { Set(names.map(id)) }
    func name(of id: MemberID) -> String { names.first { people[$0]!.identity.id == id } ?? "\(id)" }
    func group(_ name: String) -> Group { people[name]!.group! }
    func names(_ ids: Set<MemberID>) -> [String] { ids.map(name(of:)).sorted() }

    /// People holding a group state in which they are a member.
    var currentMembers: [String] { names.filter { people[$0]!.group?.isMember == true } }

    // MARK: Operations

    mutating func create(by creator: String, with others: [String]) throws {
        let person = people[creator]!
        let (group, envelope) = try Group.create(
            identity: person.identity, ownBundle: person.bundle, members: others.map { people[$0]!.bundle }, prekeys: person.prekeys,
            now: Self.now, configuration: Self.configuration, using: &rng)
        people[creator]!.group = group
        collectSecrets(creator)
        broadcast(envelope, from: creator, alsoTo: others)
    }

    @discardableResult
    mutating func add(by adder: String, _ newcomer: String) throws -> Envelope {
        var group = group(adder)
        let envelopes = try group.add(people[newcomer]!.bundle, prekeys: people[adder]!.prekeys, now: Self.now, using: &rng)
        people[adder]!.group = group
        collectSecrets(adder)
        for refresh in envelopes.dropLast() { broadcast(refresh, from: adder) }
        let envelope = envelopes.last!
        broadcast(envelope, from: adder, alsoTo: [newcomer])
        return envelope
    }

    @discardableResult
    mutating func remove(by remover: String, _ member: String) throws -> Envelope {
        var group = group(remover)
        let envelope = try group.remove(id(member), prekeys: people[remover]!.prekeys, using: &rng)
        people[remover]!.group = group
        collectSecrets(remover)
        broadcast(envelope, from: remover)
        return envelope
    }

    @discardableResult
    mutating func update(by member: String) throws -> Envelope {
        var group = group(member)
        let envelope = try group.update(prekeys: people[member]!.prekeys, using: &rng)
        people[member]!.group = group
        collectSecrets(member)
        broadcast(envelope, from: member)
        return envelope
    }

    @discardableResult
    mutating func send(by sender: String, _ text: String? = nil) throws -> SentMessage {
        var group = group(sender)
        let text = text ?? "message \(messageByHash.count) from \(sender)"
        let envelopes = try group.send(text: text, prekeys: people[sender]!.prekeys, now: Self.now, using: &rng)
        people[sender]!.group = group
        for refresh in envelopes.dropLast() { broadcast(refresh, from: sender) }
        let envelope = envelopes.last!
        let message = SentMessage(sender: sender, seq: envelope.seq, hash: envelope.hash, text: text)
        messageByHash[envelope.hash] = message
        broadcast(envelope, from: sender)
        return message
    }

    /// Replaces a person's group by its decoded encoding (a restart from persisted state).
    mutating func restart(_ name: String) throws {
        let bytes = group(name).wireBytes
        people[name]!.group = try Group(wireBytes: bytes)
        people[name]!.exposesSecrets = false
    }

    // MARK: Network

    /// Queues the envelope for everyone holding a group state (and the invitees).
    mutating func broadcast(_ envelope: Envelope, from sender: String, alsoTo invited: [String] = []) {
        envelopesByID[envelope.operationID] = envelope
        relayLog.append((envelope, sides?[sender]))
        for name in names where name != sender && (people[name]!.group != nil || invited.contains(name)) {
            inFlight.append((name, envelope))
        }
    }

    func canSee(_ name: String, _ entry: (envelope: Envelope, side: Int?)) -> Bool {
        guard let sides, let side = entry.side else { return true }
        return sides[name] == side
    }

    func isVisible(to name: String, _ envelope: Envelope) -> Bool {
        guard let entry = relayLog.first(where: { $0.envelope.hash == envelope.hash }) else { return true }
        return canSee(name, entry)
    }

    /// Splits the network: envelopes sent from now on reach only the sender's side until `heal()`.
    mutating func partition(_ groups: [[String]]) {
        var sides: [String: Int] = [:]
        for (index, members) in groups.enumerated() { for name in members { sides[name] = index } }
        for name in names where sides[name] == nil { sides[name] = groups.count }
        self.sides = sides
    }

    mutating func heal() {
        sides = nil
        for index in relayLog.indices { relayLog[index].side = nil }
    }

    /// Delivers the in-flight envelopes selected by `filter`, in queue order, without syncing.
    mutating func deliver(where filter: (String, Envelope) -> Bool) {
        var keep: [(to: String, envelope: Envelope)] = []
        var batch: [(to: String, envelope: Envelope)] = []
        for item in inFlight {
            if filter(item.to, item.envelope) && isVisible(to: item.to, item.envelope) { batch.append(item) } else { keep.append(item) }
        }
        inFlight = keep
        for (to, envelope) in batch { deliver(envelope, to: to) }
    }

    /// Delivers, in queue order, every in-flight copy of `envelope` to the named recipients.
    mutating func deliver(_ envelope: Envelope, to recipients: [String]) {
        deliver { to, e in e.hash == envelope.hash && recipients.contains(to) }
    }

    /// Delivers everything in flight (seeded shuffle when `shuffle`), then lets every person sync
    /// what it lacks from the relay log, until nothing is left. Deliveries across a partition wait.
    mutating func settle(shuffle: Bool = true) {
        var lastFingerprint: [UInt64]? = nil
        for _ in 0..<1_000 {
            if shuffle { inFlight.shuffle(using: &rng) }
            let pending = inFlight
            inFlight = []
            var delivered = false
            for item in pending {
                if isVisible(to: item.to, item.envelope) {
                    delivered = true
                    deliver(item.envelope, to: item.to)
                } else {
                    inFlight.append(item)
                }
            }
            if delivered { continue }
            // Stop syncing once a sync round changed nothing (e.g. envelopes of a sender this
            // person will never learn about are rejected again and again).
            let fingerprint = self.fingerprint
            if fingerprint == lastFingerprint { return }
            lastFingerprint = fingerprint
            var requests: [(to: String, envelope: Envelope)] = []
            for name in names {
                guard let group = people[name]!.group else { continue }
                var wanted: Set<Bytes32> = []
                for request in group.missing {
                    switch request {
                    case .hash(let hash): wanted.insert(hash)
                    case .range(let sender, let from, let through):
                        for entry in relayLog where entry.envelope.sender == sender
                            && entry.envelope.seq >= from && entry.envelope.seq <= through {
                            wanted.insert(entry.envelope.hash)
                        }
                    }
                }
                for entry in relayLog where canSee(name, entry) {
                    let envelope = entry.envelope
                    guard envelope.sender != group.me, !group.broadcast.isBuffered(envelope.hash) else { continue }
                    if envelope.seq > group.broadcast.deliveredSeq(of: envelope.sender) || wanted.contains(envelope.hash) {
                        if !inFlight.contains(where: { $0.to == name && $0.envelope.hash == envelope.hash }) {
                            requests.append((name, envelope))
                        }
                    }
                }
            }
            // Only what is not already waiting in flight is fetched; in-flight envelopes across a
            // partition stay there.
            if requests.isEmpty { return }
            inFlight.append(contentsOf: requests)
        }
        problems.append("settle did not finish")
    }

    var fingerprint: [UInt64] {
        var values: [UInt64] = []
        for name in names {
            guard let group = people[name]!.group else { values.append(0); continue }
            values.append(UInt64(group.broadcast.bufferedCount))
            values.append(UInt64(group.members.count))
            for other in names { values.append(group.broadcast.deliveredSeq(of: id(other))) }
        }
        return values
    }

    mutating func deliver(_ envelope: Envelope, to name: String) {
        // Envelopes travel as wire bytes.
        guard let decoded = try? Envelope(wire: envelope.wireBytes, groupID: envelope.groupID) else {
            problems.append("\(name): undecodable wire bytes")
            return
        }
        var person = people[name]!
        var output: GroupOutput
        if var group = person.group {
            output = group.receive(decoded, prekeys: person.prekeys, using: &rng)
            // What a host that stores envelopes does with a fork whose other side it delivered
            // earlier: it builds the evidence from its copy (PROTOCOL-NOTES.md, "Equivocation"),
            // then lets the group deliver what the cut released.
            if output.events.contains(.equivocation(decoded.sender)) {
                let log = relayLog
                let released = group.followFork(
                    of: decoded, heldCopy: { hash in log.first { $0.envelope.hash == hash }?.envelope },
                    prekeys: person.prekeys, using: &rng)
                output.events += released.events
                output.envelopes += released.envelopes
            }
            person.group = group
        } else {
            do {
                let (group, joined) = try Group.join(
                    identity: person.identity, invitation: decoded, prekeys: person.prekeys,
                    configuration: Self.configuration, using: &rng)
                person.group = group
                output = joined
            } catch {
                problems.append("\(name): join failed: \(error)")
                return
            }
        }
        for event in output.events {
            person.events.append(event)
            switch event {
            case .message(let from, let seq, let bytes):
                let hash = envelopesByIDHash(from, seq)
                person.read.insert(hash)
                if let message = messageByHash[hash], Array(message.text.utf8) != bytes {
                    problems.append("\(name) decrypted \(from)#\(seq) to different bytes")
                }
            case .undecryptable(let from, let seq, _):
                person.unreadable.insert(envelopesByIDHash(from, seq))
            case .processingFailed(let sender, let seq, .unknownAcknowledgedEnvelope) where !equivocators.isEmpty:
                forkSigns.append("\(name): \(self.name(of: sender))#\(seq) acknowledged another branch")
            case .processingFailed(let sender, let seq, let error):
                problems.append("\(name): processing \(self.name(of: sender))#\(seq) failed: \(error)")
            case .equivocation(let sender) where equivocators.contains(self.name(of: sender)):
                forkSigns.append("\(name): equivocation by \(self.name(of: sender))")
            case .viewMismatch(let sender, let seq) where !equivocators.isEmpty:
                forkSigns.append("\(name): view mismatch \(self.name(of: sender))#\(seq)")
            case .equivocation(let sender):
                problems.append("\(name): equivocation by \(self.name(of: sender))")
            case .rejected(.afterEquivocation(let sender, let seq)) where equivocators.contains(self.name(of: sender)):
                forkSigns.append("\(name): \(self.name(of: sender))#\(seq) refused past the cut")
            case .rejected(.unknownSender):
                break  // an early envelope of a member whose add has not arrived yet; synced later
            case .rejected(let error):
                problems.append("\(name): rejected an envelope: \(error)")
            default:
                break
            }
        }
        people[name] = person
        collectSecrets(name)
        for envelope in output.envelopes { broadcast(envelope, from: name) }
    }

    func envelopesByIDHash(_ sender: MemberID, _ seq: UInt64) -> Bytes32 {
        envelopesByID[OperationID(sender: sender, seq: seq)]?.hash ?? .zero
    }

    mutating func collectSecrets(_ name: String) {
        guard var group = people[name]!.group else { return }
        for record in group.derivedUpdateSecrets {
            let key = EpochKey(member: record.member, epoch: record.epoch)
            if let existing = people[name]!.secrets[key] ?? people[name]!.secretsWhileOut[key], existing != record.secret {
                problems.append("\(name) derived two secrets for \(self.name(of: record.member))@\(record.epoch)")
            }
            // Compared only when the deriving person was in the owner's view at that epoch (as the
            // simulator does): a removed member may compute values from stale state while out, and
            // one delivery can take it out and back in again (a re-add).
            if group.keyAgreement.history.members(asSeenBy: record.member, atSeq: record.epoch).contains(group.me) {
                people[name]!.secrets[key] = record.secret
            } else {
                people[name]!.secretsWhileOut[key] = record.secret
            }
        }
        group.clearDerivedUpdateSecrets()
        people[name]!.group = group
    }

    // MARK: Queries

    /// The people who decrypted the message.
    func readers(of message: SentMessage) -> Set<String> {
        Set(names.filter { people[$0]!.read.contains(message.hash) })
    }

    /// The envelope of `name` that acknowledges `envelope`, if any.
    func acknowledgment(by name: String, of envelope: Envelope) -> Envelope? {
        relayLog.first { $0.envelope.sender == id(name) && $0.envelope.acked?.hash == envelope.hash }?.envelope
    }

    // MARK: Checks

    /// After `settle()`: exactly `expected` are members, every one of them sees the same view, the
    /// update secrets derived by several people agree, every member derived the current epoch of
    /// every other member, and nothing was reported as a problem.
    func expectConverged(_ expected: [String], sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(problems == [], sourceLocation: sourceLocation)
        #expect(inFlight.isEmpty, "undelivered: \(inFlight.count)", sourceLocation: sourceLocation)
        #expect(Set(currentMembers) == Set(expected), "members in their own views", sourceLocation: sourceLocation)
        let view = ids(expected)
        for name in expected {
            guard let group = people[name]!.group else {
                Issue.record("\(name) has no group", sourceLocation: sourceLocation)
                continue
            }
            #expect(group.members == view, "\(name) sees \(names(group.members))", sourceLocation: sourceLocation)
            #expect(group.broadcast.bufferedCount == 0, "\(name) still buffers envelopes", sourceLocation: sourceLocation)
            #expect(group.missing.isEmpty, "\(name) still misses envelopes", sourceLocation: sourceLocation)
        }
        expectSecretsAgree(sourceLocation: sourceLocation)
        for reader in expected where people[reader]!.exposesSecrets {
            let group = people[reader]!.group!
            for owner in expected where owner != reader {
                guard let epoch = group.messaging.currentEpoch(of: id(owner)) else {
                    Issue.record("\(reader) has no epoch of \(owner)", sourceLocation: sourceLocation)
                    continue
                }
                #expect(
                    people[reader]!.secrets[EpochKey(member: id(owner), epoch: epoch)] != nil,
                    "\(reader) did not derive \(owner)'s current epoch \(epoch)", sourceLocation: sourceLocation)
                if let own = people[owner]!.group!.messaging.currentEpoch(of: id(owner)) {
                    #expect(epoch == own, "\(reader) follows \(owner) at epoch \(epoch), \(owner) is at \(own)", sourceLocation: sourceLocation)
                }
            }
        }
    }

    /// Every (member, epoch) derived by several people has the same secret everywhere.
    func expectSecretsAgree(sourceLocation: SourceLocation = #_sourceLocation) {
        var reference: [EpochKey: (String, Bytes32)] = [:]
        for name in names {
            // An equivocator's own epochs differ by design across the sides of its fork.
            for (key, secret) in people[name]!.secrets where !equivocators.contains(self.name(of: key.member)) {
                if let (first, existing) = reference[key] {
                    #expect(
                        existing == secret,
                        "\(first) and \(name) disagree on \(self.name(of: key.member))@\(key.epoch)",
                        sourceLocation: sourceLocation)
                } else {
                    reference[key] = (name, secret)
                }
            }
        }
    }

    /// Every current member sends a message; after settling, exactly the other members read it.
    mutating func expectEveryoneReadsEveryone(_ members: [String], sourceLocation: SourceLocation = #_sourceLocation) throws {
        var sent: [SentMessage] = []
        for name in members { sent.append(try send(by: name)) }
        settle()
        for message in sent {
            #expect(
                readers(of: message) == Set(members).subtracting([message.sender]),
                "readers of \(message.sender)#\(message.seq)", sourceLocation: sourceLocation)
        }
    }
}

extension Array where Element == UInt8 {
    /// Whether `needle` occurs in these bytes.
    func containsBytes(_ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, needle.count <= count else { return false }
        let first = needle[0]
        for start in 0...(count - needle.count) where self[start] == first {
            if self[start..<(start + needle.count)].elementsEqual(needle) { return true }
        }
        return false
    }
}
