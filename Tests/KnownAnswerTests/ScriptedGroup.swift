import CausalBroadcast
import DCGKACrypto
@_spi(Simulation) import DCGKAGroup
import DCGKAEncoding

/// The scripted group's vectors: every envelope of every step (hash and wire size) and every
/// update secret derived in it. Everything follows from `rngSeed`: one `SeededRandom` is drawn
/// from by every member in the order the script and the delivery run.
struct ScriptedGroupVectors: Codable {
    struct EnvelopeRecord: Codable {
        var sender: Int
        var seq: UInt64
        var kind: String
        var hash: String
        var wireSize: Int
        /// Application envelopes only: the members that decrypted it.
        var readBy: [Int]?
    }

    struct SecretRecord: Codable {
        var member: Int
        var epoch: UInt64
        var secret: String
        /// The members that derived it (all agree, or the run reports a problem).
        var derivedBy: [Int]
    }

    struct Step: Codable {
        var action: String
        var envelopes: [EnvelopeRecord]
        var updateSecrets: [SecretRecord]
    }

    var description: String
    var rngSeed: UInt64
    var now: UInt64
    /// Member IDs (Ed25519 public keys) by member index.
    var members: [String]
    var groupID: String
    var steps: [Step]

    static let summary = "One scripted group run with SeededRandom(seed: rngSeed) (xoshiro256** seeded by "
        + "SplitMix64), bundles valid until now + 30 days. Each step is one action followed by delivering every "
        + "envelope it causes, first in, first out, to every member (as wire bytes). envelopes: sender index, "
        + "seq, kind, hash = SHA-256 of the canonical encoding (PROTOCOL.md §6.1), wireSize = bytes on the wire "
        + "(groupID left out). updateSecrets: (member index, epoch = seq of the control envelope that started it, "
        + "secret) as derived in that step (PROTOCOL.md §5.4). Changes whenever the wire format changes."
}

/// The script: a create of 3, an update, an add of a 4th, a remove and application messages.
enum ScriptAction {
    case create(by: Int, with: [Int])
    case update(by: Int)
    case add(by: Int, Int)
    case remove(by: Int, Int)
    case send(by: Int, String)

    static let script: [ScriptAction] = [
        .create(by: 0, with: [1, 2]),
        .send(by: 1, "hello from 1"),
        .update(by: 2),
        .send(by: 0, "hello from 0"),
        .add(by: 0, 3),
        .send(by: 3, "hello from 3"),
        .remove(by: 1, 2),
        .send(by: 0, "first of 0 after the remove"),
        .send(by: 0, "second of 0 after the remove"),
        .send(by: 3, "3 after the remove"),
    ]

    static let memberCount = 4

    var description: String {
        switch self {
        case .create(let creator, let others): "member \(creator) creates the group with members \(others.map(String.init).joined(separator: ", "))"
        case .update(let member): "member \(member) updates"
        case .add(let adder, let added): "member \(adder) adds member \(added)"
        case .remove(let remover, let removed): "member \(remover) removes member \(removed)"
        case .send(let sender, let text): "member \(sender) sends \"\(text)\""
        }
    }
}

/// Runs the script on an in-process network (like Tests/DCGKAGroupTests/TestNetwork.swift, but
/// with one fixed delivery order so that every draw from the generator is reproducible).
struct ScriptedGroupRun {
    struct Person {
        let identity: IdentityKey
        let prekeys: PrekeyStore
        let bundle: KeyBundle
        var group: Group?
    }

    var rng: SeededRandom
    let now: UInt64
    var people: [Person] = []
    /// What the protocol reported as going wrong (failures, rejections, unreadable messages).
    var problems: [String] = []

    static var configuration: GroupConfiguration {
        var configuration = GroupConfiguration()
        configuration.exposesUpdateSecrets = true
        return configuration
    }

    /// Runs the whole script and returns its vectors.
    static func vectors(seed: UInt64, now: UInt64) -> (ScriptedGroupVectors, problems: [String]) {
        var run = ScriptedGroupRun(rng: SeededRandom(seed: seed), now: now)
        for _ in 0..<ScriptAction.memberCount {
            let identity = IdentityKey.generate(using: &run.rng)
            var prekeys = PrekeyStore()
            let bundle = prekeys.generate(identity: identity, notAfter: now + 30 * 86_400, using: &run.rng)
            run.people.append(Person(identity: identity, prekeys: prekeys, bundle: bundle))
        }
        let steps = ScriptAction.script.enumerated().map { run.step($1, number: $0) }
        let vectors = ScriptedGroupVectors(
            description: ScriptedGroupVectors.summary, rngSeed: seed, now: now,
            members: run.people.map(\.identity.id.raw.hex), groupID: run.people[0].group?.groupID.raw.hex ?? "",
            steps: steps)
        return (vectors, run.problems)
    }

    func index(_ id: MemberID) -> Int { people.firstIndex { $0.identity.id == id } ?? -1 }

    /// One copy of each envelope for everybody but its sender, in member order.
    func copies(of envelopes: [Envelope], from sender: Int) -> [(to: Int, envelope: Envelope)] {
        envelopes.flatMap { envelope in people.indices.filter { $0 != sender }.map { ($0, envelope) } }
    }

    mutating func step(_ action: ScriptAction, number: Int) -> ScriptedGroupVectors.Step {
        var sent: [Envelope] = []
        var queue: [(to: Int, envelope: Envelope)] = []
        var readBy: [OperationID: [Int]] = [:]
        var invited: Set<Int> = []
        var first: (sender: Int, envelopes: [Envelope])
        do {
            switch action {
            case .create(let creator, let others):
                invited = Set(others)
                let (group, envelope) = try Group.create(
                    identity: people[creator].identity, ownBundle: people[creator].bundle,
                    members: others.map { people[$0].bundle }, prekeys: people[creator].prekeys, now: now,
                    configuration: Self.configuration, using: &rng)
                people[creator].group = group
                first = (creator, [envelope])
            case .update(let member):
                first = (member, [try people[member].group!.update(prekeys: people[member].prekeys, now: now, using: &rng)])
            case .add(let adder, let added):
                invited = [added]
                first = (adder, try people[adder].group!.add(people[added].bundle, prekeys: people[adder].prekeys, now: now, using: &rng))
            case .remove(let remover, let removed):
                let id = people[removed].identity.id
                first = (remover, [try people[remover].group!.remove(id, prekeys: people[remover].prekeys, now: now, using: &rng)])
            case .send(let sender, let text):
                first = (sender, try people[sender].group!.send(text: text, prekeys: people[sender].prekeys, now: now, using: &rng))
            }
        } catch {
            problems.append("step \(number) (\(action.description)): \(error)")
            first = (0, [])
        }
        sent += first.envelopes
        queue += copies(of: first.envelopes, from: first.sender)
        // First in, first out; only to members in their own view, and to invitees not yet joined.
        while !queue.isEmpty {
            let (to, envelope) = queue.removeFirst()
            guard people[to].group?.isMember ?? invited.contains(to) else { continue }
            let output = deliver(envelope, to: to, step: number)
            for case .message(let from, let seq, _) in output.events {
                readBy[OperationID(sender: from, seq: seq), default: []].append(to)
            }
            sent += output.envelopes
            queue += copies(of: output.envelopes, from: to)
        }
        return ScriptedGroupVectors.Step(
            action: action.description,
            envelopes: sent.map { envelope in
                ScriptedGroupVectors.EnvelopeRecord(
                    sender: index(envelope.sender), seq: envelope.seq, kind: "\(envelope.kind)", hash: envelope.hash.hex,
                    wireSize: envelope.wireBytes.count,
                    readBy: envelope.kind == .application ? (readBy[envelope.operationID] ?? []).sorted() : nil)
            },
            updateSecrets: takeUpdateSecrets(step: number))
    }

    /// Delivers as wire bytes (what the recorded size is) and notes anything that went wrong.
    mutating func deliver(_ envelope: Envelope, to recipient: Int, step: Int) -> GroupOutput {
        let context = "step \(step): member \(recipient) receiving \(index(envelope.sender))#\(envelope.seq)"
        let decoded: Envelope
        do { decoded = try Envelope(wire: envelope.wireBytes, groupID: envelope.groupID) } catch {
            problems.append("\(context): undecodable wire bytes: \(error)")
            return GroupOutput()
        }
        let output: GroupOutput
        if var group = people[recipient].group {
            output = group.receive(decoded, prekeys: people[recipient].prekeys, using: &rng)
            people[recipient].group = group
        } else {
            do {
                let joined = try Group.join(
                    identity: people[recipient].identity, invitation: decoded, prekeys: people[recipient].prekeys,
                    configuration: Self.configuration, using: &rng)
                people[recipient].group = joined.0
                output = joined.1
            } catch {
                problems.append("\(context): join failed: \(error)")
                return GroupOutput()
            }
        }
        for event in output.events {
            switch event {
            case .processingFailed, .rejected, .equivocation, .undecryptable: problems.append("\(context): \(event)")
            default: break
            }
        }
        return output
    }

    /// The update secrets every member derived since the last call, merged by (member, epoch).
    mutating func takeUpdateSecrets(step: Int) -> [ScriptedGroupVectors.SecretRecord] {
        var merged: [OperationID: ScriptedGroupVectors.SecretRecord] = [:]
        for deriver in people.indices {
            guard var group = people[deriver].group else { continue }
            for record in group.derivedUpdateSecrets {
                let key = OperationID(sender: record.member, seq: record.epoch)
                var entry = merged[key] ?? .init(member: index(record.member), epoch: record.epoch, secret: record.secret.hex, derivedBy: [])
                if entry.secret != record.secret.hex {
                    problems.append("step \(step): members \(entry.derivedBy) and \(deriver) disagree on \(entry.member)@\(entry.epoch)")
                }
                if !entry.derivedBy.contains(deriver) { entry.derivedBy.append(deriver) }
                merged[key] = entry
            }
            group.clearDerivedUpdateSecrets()
            people[deriver].group = group
        }
        return merged.values.sorted { ($0.member, $0.epoch) < ($1.member, $1.epoch) }
    }
}

/// Runs the script again with the file's seed and time and reports every field that differs from
/// the file, and anything the protocol reported as going wrong (empty when all match).
func scriptedGroupMismatches() -> [String] {
    let file: VectorFile, raw: [String: Any]
    do { (file, raw) = try VectorFile.load() } catch { return ["cannot read \(VectorFile.url.path): \(error)"] }
    let (vectors, problems) = ScriptedGroupRun.vectors(seed: file.scriptedGroup.rngSeed, now: file.scriptedGroup.now)
    return problems + differences("scriptedGroup", file: raw["scriptedGroup"], code: jsonTree(vectors))
}
