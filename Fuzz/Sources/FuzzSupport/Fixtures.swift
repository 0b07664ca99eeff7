public import DCGKAEncoding
public import DCGKACrypto
public import CausalBroadcast
public import KeyAgreement
public import GroupMessaging
public import DCGKAGroup
#if canImport(Glibc)
import Glibc
#endif

/// One device of the fixture run.
public struct FixturePerson: Sendable {
    public let name: String
    public let identity: IdentityKey
    public let prekeys: PrekeyStore
    public let bundle: KeyBundle
}

/// A deterministic honest run of a small group (fixed `SeededRandom`), built once per process: the
/// valid encodings every target starts from (seeds, the stateful target's envelope pool, fixed
/// states and keys). Nothing here depends on the fuzzer's input.
///
/// The run: A creates the group with B and C; B and C join (states `a0`, `b0`, `c0` are taken here,
/// before any acknowledgment is delivered); everything settles (`bMid`); A and C send application
/// messages (`applicationMessages`, not yet delivered to B); B updates; A adds D, who joins from the
/// welcome; D and B send; B removes C; A sends; everything settles (`final`).
public struct Fixtures: Sendable {
    public static let now: UInt64 = 1_800_000_000
    public static let shared = Fixtures()

    public let people: [FixturePerson]  // A, B, C, D
    public let groupID: GroupID
    public let create: Envelope
    /// A, B and C right after the create was sent and joined, before any acknowledgment was delivered.
    public let a0: Group
    public let b0: Group
    public let c0: Group
    /// B after the create and all acknowledgments were delivered, before the application messages.
    public let bMid: Group
    /// Application envelopes of A and C that `bMid` has not seen (each decrypts with `bMid`).
    public let applicationMessages: [Envelope]
    /// A's add of D (it carries D's welcome).
    public let add: Envelope
    /// Every envelope of the run after the create, in the order it was sent.
    public let pool: [Envelope]
    /// States of every member at the end of the run (A, B, C, D).
    public let final: [Group]
    /// D right after joining.
    public let d0: Group
    /// What went wrong in the honest run (should be empty; printed by the seed writer).
    public let problems: [String]

    public var allEnvelopes: [Envelope] { [create] + pool }
    public var a: FixturePerson { people[0] }
    public var b: FixturePerson { people[1] }
    public var c: FixturePerson { people[2] }
    public var d: FixturePerson { people[3] }

    public func person(_ id: MemberID) -> FixturePerson? { people.first { $0.identity.id == id } }

    /// Fork evidence against B (§6.2): two updates signed from copies of B's first state.
    public var forkEvidence: ForkEvidence? {
        var rng = SeededRandom(seed: 77)
        var one = b0, two = b0
        guard let first = try? one.update(prekeys: b.prekeys, using: &rng),
              let second = try? two.update(prekeys: b.prekeys, using: &rng) else { return nil }
        return try? ForkEvidence(first, second)
    }

    /// The welcome A's add carries for D.
    public var welcome: EncodedWelcome {
        guard case .add(_, let welcome) = controlBody(of: add)!.fields else { fatalError("the add carries no welcome") }
        return welcome
    }

    public func controlBody(of envelope: Envelope) -> ControlBody? {
        guard let kind = ControlKind(rawValue: envelope.kind.rawValue) else { return nil }
        return try? ControlBody(kind: kind, payload: envelope.payload ?? [])
    }

    init() {
        var net = HonestNet(seed: 20_251_201)
        for name in ["A", "B", "C", "D"] { net.enroll(name) }
        let people = net.people
        let (groupA, create) = try! Group.create(
            identity: people[0].identity, ownBundle: people[0].bundle, members: [people[1].bundle, people[2].bundle],
            prekeys: people[0].prekeys, now: Fixtures.now, using: &net.rng)
        net.groups[0] = groupA
        net.broadcast(create, from: 0, invite: [1, 2])
        let startOfPool = net.log.count
        net.deliverNext()
        net.deliverNext()
        a0 = net.groups[0]!
        b0 = net.groups[1]!
        c0 = net.groups[2]!
        net.settle()
        bMid = net.groups[1]!

        var messages: [Envelope] = []
        messages += net.send(from: 0, "hello from A")
        messages += net.send(from: 2, "hello from C")
        messages += net.send(from: 0, "A again")
        messages += net.send(from: 0, "A a third time")
        messages += net.send(from: 2, "C again")
        applicationMessages = messages.filter { $0.kind == .application }
        net.settle()

        net.update(by: 1)
        net.settle()
        let add = net.add(by: 0, adding: 3)
        net.settleOne(toward: 3)
        d0 = net.groups[3]!
        net.settle()
        _ = net.send(from: 3, "hello from D")
        _ = net.send(from: 1, "B after the add")
        net.settle()
        net.remove(by: 1, people[2].identity.id)
        net.settle()
        _ = net.send(from: 0, "A after the remove")
        net.update(by: 3)
        net.settle()

        self.people = people
        self.groupID = groupA.groupID
        self.create = create
        self.add = add
        self.pool = Array(net.log[startOfPool...])
        self.final = net.groups.map { $0! }
        self.problems = net.problems
    }
}

/// Delivers every envelope to every holder of a group state, first in, first out (an honest network).
struct HonestNet {
    var rng: SeededRandom
    var people: [FixturePerson] = []
    var groups: [Group?] = []
    var log: [Envelope] = []
    var queue: [(to: Int, envelope: Envelope)] = []
    var problems: [String] = []

    init(seed: UInt64) { rng = SeededRandom(seed: seed) }

    mutating func enroll(_ name: String) {
        let identity = IdentityKey.generate(using: &rng)
        var prekeys = PrekeyStore()
        let bundle = prekeys.generate(identity: identity, notAfter: Fixtures.now + 86_400 * 30, using: &rng)
        people.append(FixturePerson(name: name, identity: identity, prekeys: prekeys, bundle: bundle))
        groups.append(nil)
    }

    /// Invited people who have not joined yet: they get everything sent meanwhile too.
    var invited: Set<Int> = []

    mutating func broadcast(_ envelope: Envelope, from sender: Int, invite: [Int] = []) {
        log.append(envelope)
        invited.formUnion(invite)
        for i in people.indices where i != sender && (groups[i] != nil || invited.contains(i)) {
            queue.append((i, envelope))
        }
    }

    mutating func send(from i: Int, _ text: String) -> [Envelope] {
        var group = groups[i]!
        do {
            let envelopes = try group.send(text: text, prekeys: people[i].prekeys, now: Fixtures.now, using: &rng)
            groups[i] = group
            for envelope in envelopes { broadcast(envelope, from: i) }
            return envelopes
        } catch {
            problems.append("\(people[i].name) cannot send: \(error)")
            return []
        }
    }

    mutating func update(by i: Int) {
        var group = groups[i]!
        do {
            let envelope = try group.update(prekeys: people[i].prekeys, now: Fixtures.now, using: &rng)
            groups[i] = group
            broadcast(envelope, from: i)
        } catch { problems.append("\(people[i].name) cannot update: \(error)") }
    }

    mutating func add(by i: Int, adding j: Int) -> Envelope {
        var group = groups[i]!
        let envelopes = try! group.add(people[j].bundle, prekeys: people[i].prekeys, now: Fixtures.now, using: &rng)
        groups[i] = group
        for envelope in envelopes.dropLast() { broadcast(envelope, from: i) }
        broadcast(envelopes.last!, from: i, invite: [j])
        return envelopes.last!
    }

    mutating func remove(by i: Int, _ member: MemberID) {
        var group = groups[i]!
        do {
            let envelope = try group.remove(member, prekeys: people[i].prekeys, now: Fixtures.now, using: &rng)
            groups[i] = group
            broadcast(envelope, from: i)
        } catch { problems.append("\(people[i].name) cannot remove: \(error)") }
    }

    /// Delivers queued envelopes until the first one addressed to `person` has been delivered.
    mutating func settleOne(toward person: Int) {
        while let next = queue.first {
            deliverNext()
            if next.to == person { return }
        }
    }

    mutating func settle() {
        var steps = 0
        while !queue.isEmpty && steps < 100_000 {
            deliverNext()
            steps += 1
        }
    }

    mutating func deliverNext() {
        guard !queue.isEmpty else { return }
        let (to, envelope) = queue.removeFirst()
        // Envelopes travel as wire bytes.
        let decoded = try! Envelope(wire: envelope.wireBytes, groupID: envelope.groupID)
        let output: GroupOutput
        if var group = groups[to] {
            output = group.receive(decoded, prekeys: people[to].prekeys, using: &rng)
            groups[to] = group
        } else {
            do {
                let (group, joined) = try Group.join(
                    identity: people[to].identity, invitation: decoded, prekeys: people[to].prekeys, using: &rng)
                groups[to] = group
                invited.remove(to)
                output = joined
            } catch {
                problems.append("\(people[to].name) cannot join: \(error)")
                return
            }
        }
        if getenv("DCGKA_FIXTURE_DEBUG") != nil {
            let from = people.first { $0.identity.id == envelope.sender }?.name ?? "?"
            printError("\(people[to].name) <- \(envelope.kind) \(from)#\(envelope.seq): \(output.events) buffered=\(groups[to]?.broadcast.bufferedCount ?? -1)\n")
        }
        for event in output.events {
            switch event {
            case .processingFailed, .rejected, .equivocation:
                let from = people.first { $0.identity.id == envelope.sender }?.name ?? "?"
                problems.append("\(people[to].name) got \(envelope.kind) \(from)#\(envelope.seq) (log \(log.firstIndex(of: envelope) ?? -1)): \(event)")
            default: break
            }
        }
        for envelope in output.envelopes { broadcast(envelope, from: to) }
    }
}

extension Envelope {
    /// The header an application envelope's ciphertext is bound to (§7), with the ciphertext's epoch and index.
    public func applicationHeader(epoch: UInt64, index: UInt64) -> ApplicationHeader {
        ApplicationHeader(
            version: version, suite: suite, groupID: groupID, sender: sender, seq: seq, prev: prev,
            epoch: epoch, index: index)
    }
}

extension WireWriter {
    public static func build(_ body: (inout WireWriter) -> Void) -> [UInt8] {
        var writer = WireWriter()
        body(&writer)
        return writer.bytes
    }
}

/// `payload`, the body of an add, with its welcome replaced by `welcome` (any bytes): the added
/// member's bundle, the length-prefixed welcome, then whatever else the add carries, unchanged. (Built
/// by splicing rather than through ``ControlBody``, whose `EncodedWelcome` cannot be made from bytes.)
public func replacingWelcome(in payload: [UInt8], with welcome: [UInt8]) -> [UInt8] {
    var reader = WireReader(payload)
    guard let bundle = try? reader.read(KeyBundle.self),
          (try? reader.readLengthPrefixed(field: "welcome", limit: EncodedWelcome.maximumLength)) != nil
    else { fatalError("not the body of an add") }
    let rest = payload[reader.offset...]
    return WireWriter.build { writer in
        writer.write(bundle)
        writer.writeLengthPrefixed(welcome)
        writer.writeFixed(rest)
    }
}
