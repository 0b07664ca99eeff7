import Testing
import Foundation
import DCGKAEncoding
import DCGKACrypto
import CausalBroadcast
import Device
import DeviceStorage
import Relay
import RelayStorage
import Sync

// The relay's rules (NETWORK.md §11.2, §13.3–§13.5), in process: admission of one envelope, the
// SQLite store's outcomes, quotas, retention and group commit, and the per-link logic
// (RelayConnection) for peers that may not read or that lie about who they are.

/// Real envelopes from real devices: Alice creates a group with Bob and adds Carol; Bob joins and
/// acknowledges; Dave is a contact of everyone and in no group.
struct RulesWorld {
    static let now: UInt64 = 1_800_000_000

    var devices: [String: Device<SeededRandom>] = [:]
    var keys: [String: IdentityKey] = [:]
    var ids: [String: MemberID] = [:]
    let group: GroupID
    /// Alice's create, title, add of Carol and title again, in her order.
    let aliceEnvelopes: [Envelope]
    /// What Bob wrote after he joined (his acknowledgments).
    let bobEnvelopes: [Envelope]

    var create: Envelope { aliceEnvelopes[0] }
    var title: Envelope { aliceEnvelopes.first { $0.kind == .application }! }
    var add: Envelope { aliceEnvelopes.first { $0.kind == .add }! }

    init(seed: UInt64 = 7) throws {
        let names = ["alice", "bob", "carol", "dave"]
        for (index, name) in names.enumerated() {
            var device = Device(
                store: try SQLiteDeviceStore(path: nil), clock: { RulesWorld.now }, random: SeededRandom(seed: seed &* 100 &+ UInt64(index)))
            ids[name] = try device.initialize(name: name)
            keys[name] = try device.identityKey()
            devices[name] = device
        }
        for name in names {
            let code = try devices[name]!.profile().contactCode
            for other in names where other != name { _ = try devices[other]!.addContact(code: code, name: name) }
        }
        let group = try devices["alice"]!.createGroup(title: "Rules", with: [ids["bob"]!])
        try devices["alice"]!.add(ids["carol"]!, to: group)
        let aliceWires = try devices["alice"]!.log(of: group, after: 0).wires
        aliceEnvelopes = try aliceWires.map { try Envelope(wire: $0, groupID: group) }
        _ = try devices["bob"]!.receive(aliceWires.map { ReceivedEnvelope(group: group, wire: $0) })
        let bobID = ids["bob"]!
        bobEnvelopes = try devices["bob"]!.log(of: group, after: 0).wires
            .map { try Envelope(wire: $0, groupID: group) }
            .filter { $0.sender == bobID }
        self.group = group
    }

    func id(_ name: String) -> MemberID { ids[name]! }
    func key(_ name: String) -> IdentityKey { keys[name]! }

    /// Another group created by Alice (with Dave).
    mutating func secondGroup() throws -> (GroupID, [Envelope]) {
        let other = try devices["alice"]!.createGroup(title: "Second", with: [id("dave")])
        let wires = try devices["alice"]!.log(of: other, after: 0).wires
        return (other, try wires.map { try Envelope(wire: $0, groupID: other) })
    }
}

/// The refusal the check throws, or nil when it admits.
func refusalOf(wire: [UInt8], group: GroupID, participants: Set<MemberID>?, maximumEnvelopeBytes: Int) -> RelayRefusal? {
    do {
        _ = try RelayAdmission.check(wire: wire, group: group, participants: participants, maximumEnvelopeBytes: maximumEnvelopeBytes)
        return nil
    } catch {
        return error
    }
}

func isMalformed(_ refusal: RelayRefusal?) -> Bool {
    if case .malformedEnvelope = refusal { true } else { false }
}

/// Admits one envelope as if its sender were a participant (or, for a create, the group new).
func admitted(_ envelope: Envelope) -> AdmittedEnvelope {
    try! RelayAdmission.check(
        wire: envelope.wireBytes, group: envelope.groupID, participants: envelope.kind == .create ? nil : [envelope.sender],
        maximumEnvelopeBytes: 1 << 20)
}

extension RulesWorld {
    /// Admits with the participants a relay would know after storing everything before.
    func admit(_ envelopes: [Envelope]) -> [AdmittedEnvelope] {
        var participants: Set<MemberID>?
        return envelopes.map { envelope in
            let checked = try! RelayAdmission.check(
                wire: envelope.wireBytes, group: envelope.groupID, participants: participants, maximumEnvelopeBytes: 1 << 20)
            if !checked.names.isEmpty { participants = (participants ?? []).union(checked.names) }
            return checked
        }
    }
}

/// A temporary SQLite relay store.
final class TemporaryRelayStore {
    let folder: URL
    let store: SQLiteRelayStore

    init() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("dcgka-relay-rules-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        store = try SQLiteRelayStore(path: folder.appendingPathComponent("relay.sqlite").path)
    }

    deinit { try? FileManager.default.removeItem(at: folder) }
}

@Suite("Relay rules: admission of one envelope (NETWORK.md §13.3)")
struct RelayAdmissionRulesTests {
    let maximum = 1 << 20

    @Test("a valid create is accepted for an unknown group, with the creator and members it names")
    func validCreate() throws {
        let world = try RulesWorld()
        let checked = try RelayAdmission.check(wire: world.create.wireBytes, group: world.group, participants: nil, maximumEnvelopeBytes: maximum)
        #expect(checked.envelope.kind == .create)
        #expect(checked.envelope.hash == world.create.hash)
        #expect(checked.isControl)
        #expect(checked.names == [world.id("alice"), world.id("bob")])
        #expect(checked.wire == world.create.wireBytes)
    }

    @Test("an add names its new member; application envelopes and acknowledgments name nobody")
    func namesOfOtherKinds() throws {
        let world = try RulesWorld()
        let participants: Set = [world.id("alice"), world.id("bob")]
        let add = try RelayAdmission.check(wire: world.add.wireBytes, group: world.group, participants: participants, maximumEnvelopeBytes: maximum)
        #expect(add.names == [world.id("carol")])
        let title = try RelayAdmission.check(wire: world.title.wireBytes, group: world.group, participants: participants, maximumEnvelopeBytes: maximum)
        #expect(title.names.isEmpty)
        #expect(!title.isControl)
        #expect(!world.bobEnvelopes.isEmpty)
        for envelope in world.bobEnvelopes {
            let checked = try RelayAdmission.check(wire: envelope.wireBytes, group: world.group, participants: participants, maximumEnvelopeBytes: maximum)
            #expect(checked.names.isEmpty, "\(envelope)")
        }
    }

    @Test("a create whose group ID does not bind its creator and members is refused (unboundGroupID)")
    func unboundGroupID() throws {
        let world = try RulesWorld()
        // The same create body, validly signed by Alice, under a group ID she did not derive.
        var random = SeededRandom(seed: 99)
        let otherGroup = GroupID(random.bytes32())
        let moved = Forge.resigned(world.create, by: world.key("alice"), group: otherGroup)
        #expect(moved.hasValidSignature())
        #expect(refusalOf(wire: moved.wireBytes, group: otherGroup, participants: nil, maximumEnvelopeBytes: maximum) == .unboundGroupID)
        // Alice's create body signed by Dave as its creator, under Alice's group ID.
        let stolen = Forge.resigned(world.create, by: world.key("dave"), group: world.group)
        #expect(stolen.hasValidSignature())
        #expect(refusalOf(wire: stolen.wireBytes, group: world.group, participants: nil, maximumEnvelopeBytes: maximum) == .unboundGroupID)
    }

    @Test("a group unknown here accepts only its create at seq 1 (unknownGroup)")
    func unknownGroup() throws {
        let world = try RulesWorld()
        for envelope in [world.title, world.add] + world.bobEnvelopes {
            #expect(refusalOf(wire: envelope.wireBytes, group: world.group, participants: nil, maximumEnvelopeBytes: maximum) == .unknownGroup, "\(envelope)")
        }
        // A validly signed "create" at seq 2 is not a group's create.
        let late = Forge.resigned(world.create, by: world.key("alice"), group: world.group, seq: 2, prev: world.create.hash)
        #expect(late.hasValidSignature())
        #expect(refusalOf(wire: late.wireBytes, group: world.group, participants: nil, maximumEnvelopeBytes: maximum) == .unknownGroup)
    }

    @Test("a sender no create or add names is refused (notParticipant), whatever it sends")
    func notParticipant() throws {
        let world = try RulesWorld()
        let participants: Set = [world.id("alice"), world.id("bob"), world.id("carol")]
        let intruder = Forge.applications(identity: world.key("dave"), group: world.group, from: 1, prev: nil, count: 2)
        for envelope in intruder {
            #expect(envelope.hasValidSignature())
            #expect(refusalOf(wire: envelope.wireBytes, group: world.group, participants: participants, maximumEnvelopeBytes: maximum) == .notParticipant)
        }
        // A second create for a known group, even a valid one, is a write by its sender.
        let recreate = Forge.resigned(world.create, by: world.key("dave"), group: world.group)
        #expect(refusalOf(wire: recreate.wireBytes, group: world.group, participants: participants, maximumEnvelopeBytes: maximum) == .notParticipant)
        // Bob before the create that names him is stored.
        for envelope in world.bobEnvelopes {
            #expect(refusalOf(wire: envelope.wireBytes, group: world.group, participants: [world.id("alice")], maximumEnvelopeBytes: maximum) == .notParticipant)
        }
    }

    @Test("a bad signature is refused (badSignature), and an envelope of another group fails its signature")
    func badSignature() throws {
        let world = try RulesWorld()
        let participants: Set = [world.id("alice"), world.id("bob")]
        for envelope in [world.title, world.add] + world.bobEnvelopes {
            #expect(refusalOf(wire: Forge.badSignature(envelope), group: world.group, participants: participants, maximumEnvelopeBytes: maximum) == .badSignature, "\(envelope)")
        }
        #expect(refusalOf(wire: Forge.badSignature(world.create), group: world.group, participants: nil, maximumEnvelopeBytes: maximum) == .badSignature)
        // The wire form leaves the group ID out and the signature covers it (PROTOCOL.md §6.1).
        var random = SeededRandom(seed: 5)
        let foreign = GroupID(random.bytes32())
        #expect(refusalOf(wire: world.title.wireBytes, group: foreign, participants: participants, maximumEnvelopeBytes: maximum) == .badSignature)
    }

    @Test("cheap checks come before the signature: size, decoding, unknown group and sender are refused first")
    func cheapChecksFirst() throws {
        let world = try RulesWorld()
        let badTitle = Forge.badSignature(world.title)
        // An unknown group's non-create with a bad signature: unknownGroup, not badSignature.
        #expect(refusalOf(wire: badTitle, group: world.group, participants: nil, maximumEnvelopeBytes: maximum) == .unknownGroup)
        // A non-participant's envelope with a bad signature: notParticipant.
        let intruder = Forge.applications(identity: world.key("dave"), group: world.group, from: 1, prev: nil, count: 1)[0]
        #expect(refusalOf(wire: Forge.badSignature(intruder), group: world.group, participants: [world.id("alice")], maximumEnvelopeBytes: maximum) == .notParticipant)
        // Oversized with a bad signature: the size first.
        #expect(isMalformed(refusalOf(wire: badTitle, group: world.group, participants: [world.id("alice")], maximumEnvelopeBytes: badTitle.count - 1)))
    }

    @Test("oversized and undecodable wires are refused (malformedEnvelope)")
    func malformed() throws {
        let world = try RulesWorld()
        let participants: Set = [world.id("alice"), world.id("bob")]
        let wire = world.title.wireBytes
        // Oversized: one byte over the relay's envelope limit, a perfectly valid envelope otherwise.
        #expect(isMalformed(refusalOf(wire: wire, group: world.group, participants: participants, maximumEnvelopeBytes: wire.count - 1)))
        #expect(refusalOf(wire: wire, group: world.group, participants: participants, maximumEnvelopeBytes: wire.count) == nil)
        var random = SeededRandom(seed: 11)
        let undecodable: [[UInt8]] = [
            [],
            [0xff],
            random.bytes(200),
            Array(wire.dropLast()),
            wire + [0],
            [9] + wire.dropFirst(),  // an unknown envelope version
        ]
        for bytes in undecodable {
            #expect(isMalformed(refusalOf(wire: bytes, group: world.group, participants: participants, maximumEnvelopeBytes: maximum)), "\(bytes.prefix(8))")
            #expect(isMalformed(refusalOf(wire: bytes, group: world.group, participants: nil, maximumEnvelopeBytes: maximum)))
        }
    }

    @Test("a control envelope without its payload is refused; a pruned application envelope is admitted")
    func prunedEnvelopes() throws {
        let world = try RulesWorld()
        let participants: Set = [world.id("alice"), world.id("bob")]
        for control in [world.create, world.add] + world.bobEnvelopes.filter({ $0.kind != .application }) {
            let bare = Forge.withoutPayload(control)
            #expect(isMalformed(refusalOf(wire: bare, group: world.group, participants: control.kind == .create ? nil : participants, maximumEnvelopeBytes: maximum)), "\(control)")
        }
        let header = world.title.pruned()
        #expect(header.isPruned)
        let checked = try RelayAdmission.check(wire: header.wireBytes, group: world.group, participants: participants, maximumEnvelopeBytes: maximum)
        #expect(checked.envelope.hash == world.title.hash, "pruning keeps the envelope's identity")
        #expect(checked.names.isEmpty)
    }
}

@Suite("Relay rules: the SQLite store (NETWORK.md §13.4)")
struct RelayStoreRulesTests {
    let quotas = StoreQuotas(RelayLimits())

    @Test("stored, then duplicate; a different envelope at a held (sender, seq) is a fork kept as evidence, one pair per sender")
    func outcomes() async throws {
        let world = try RulesWorld()
        let temporary = try TemporaryRelayStore()
        let store = temporary.store
        let batch = StoreBatch(group: world.group, envelopes: world.admit(world.aliceEnvelopes), writer: world.id("alice"))
        #expect(try await store.store([batch], now: 100, quotas: quotas) == [Array(repeating: .stored, count: world.aliceEnvelopes.count)])
        #expect(try await store.store([batch], now: 101, quotas: quotas) == [Array(repeating: .duplicate, count: world.aliceEnvelopes.count)])
        // Alice equivocates at the title's seq, twice.
        let forks = (0..<2).map { _ in
            Forge.applications(identity: world.key("alice"), group: world.group, from: world.title.seq, prev: world.title.prev, count: 1)[0]
        }
        let forkBatch = StoreBatch(group: world.group, envelopes: forks.map(admitted(_:)), writer: world.id("bob"))
        #expect(try await store.store([forkBatch], now: 102, quotas: quotas) == [[.fork, .fork]])
        #expect(StoreOutcome.fork.isDurable && StoreOutcome.duplicate.isDurable && !StoreOutcome.refused(.badSignature).isDurable)
        let evidence = try await store.evidence(of: world.group)
        #expect(evidence.count == 1, "one pair of fork envelopes per sender")
        #expect(evidence.first?.first == world.title.wireBytes)
        #expect(evidence.first?.second == forks[0].wireBytes)
        // The chain keeps the first envelope; the forks are not chain links.
        #expect(try await store.wire(of: world.group, sender: world.id("alice"), seq: world.title.seq) == world.title.wireBytes)
        let holdings = try await store.holdings(of: world.group)
        #expect(holdings.chains[world.id("alice")]?.count == world.aliceEnvelopes.count)
        let statistics = try await store.statistics()
        #expect(statistics.groups == 1)
        #expect(statistics.envelopes == world.aliceEnvelopes.count)
        #expect(statistics.evidence == 1)
        #expect(statistics.bytes == Int64(world.aliceEnvelopes.reduce(0) { $0 + $1.wireBytes.count }))
    }

    @Test("participants: the create's creator and members, then every added member; never fewer")
    func participantsGrow() async throws {
        let world = try RulesWorld()
        let temporary = try TemporaryRelayStore()
        let store = temporary.store
        #expect(try await store.participants(of: world.group) == nil)
        let admittedEnvelopes = world.admit(world.aliceEnvelopes)
        let addIndex = world.aliceEnvelopes.firstIndex { $0.kind == .add }!
        _ = try await store.store([StoreBatch(group: world.group, envelopes: Array(admittedEnvelopes[..<addIndex]), writer: world.id("alice"))], now: 1, quotas: quotas)
        #expect(try await store.participants(of: world.group) == [world.id("alice"), world.id("bob")])
        _ = try await store.store([StoreBatch(group: world.group, envelopes: Array(admittedEnvelopes[addIndex...]), writer: world.id("alice"))], now: 2, quotas: quotas)
        #expect(try await store.participants(of: world.group) == [world.id("alice"), world.id("bob"), world.id("carol")])
        // Bob's acknowledgments name nobody: the set stays.
        let bob = StoreBatch(group: world.group, envelopes: world.bobEnvelopes.map(admitted(_:)), writer: world.id("bob"))
        #expect(try await store.store([bob], now: 3, quotas: quotas).first?.allSatisfy { $0 == .stored } == true)
        #expect(try await store.participants(of: world.group) == [world.id("alice"), world.id("bob"), world.id("carol")])
    }

    @Test("groups(readableBy:) lists groups a peer takes part in, or holds an unexpired grant for, and nothing else")
    func readableGroups() async throws {
        var world = try RulesWorld()
        let temporary = try TemporaryRelayStore()
        let store = temporary.store
        _ = try await store.store([StoreBatch(group: world.group, envelopes: world.admit(world.aliceEnvelopes), writer: world.id("alice"))], now: 1, quotas: quotas)
        let (second, secondEnvelopes) = try world.secondGroup()
        _ = try await store.store([StoreBatch(group: second, envelopes: world.admit(secondEnvelopes), writer: world.id("alice"))], now: 1, quotas: quotas)
        #expect(try await store.groups(readableBy: world.id("alice"), now: 1) == [world.group, second].sorted())
        #expect(try await store.groups(readableBy: world.id("bob"), now: 1) == [world.group])
        #expect(try await store.groups(readableBy: world.id("carol"), now: 1) == [world.group])
        #expect(try await store.groups(readableBy: world.id("dave"), now: 1) == [second])
        // A relay that mirrors the first group holds a grant until 1000.
        var random = SeededRandom(seed: 3)
        let mirror = IdentityKey.generate(using: &random)
        #expect(try await store.groups(readableBy: mirror.id, now: 1).isEmpty)
        try await store.saveGrant(Grant(group: world.group, holder: mirror.id, notAfter: 1000, granter: world.key("alice")))
        #expect(try await store.groups(readableBy: mirror.id, now: 999) == [world.group])
        #expect(try await store.groups(readableBy: mirror.id, now: 1001).isEmpty, "an expired grant gives nothing")
        // A grant never widens what others read.
        #expect(try await store.groups(readableBy: world.id("bob"), now: 999) == [world.group])
    }

    @Test("quotas: groups per identity, envelopes and bytes per group are refused with quotaExceeded, nothing stored")
    func quotasRefuse() async throws {
        var world = try RulesWorld()
        var limits = RelayLimits()
        // One group per identity.
        do {
            limits.groupsPerIdentity = 1
            let temporary = try TemporaryRelayStore()
            let store = temporary.store
            let first = try await store.store([StoreBatch(group: world.group, envelopes: world.admit([world.create]), writer: world.id("alice"))], now: 1, quotas: StoreQuotas(limits))
            #expect(first == [[.stored]])
            let (second, secondEnvelopes) = try world.secondGroup()
            let outcomes = try await store.store([StoreBatch(group: second, envelopes: world.admit([secondEnvelopes[0]]), writer: world.id("alice"))], now: 2, quotas: StoreQuotas(limits))
            guard case .refused(.quotaExceeded)? = outcomes.first?.first else {
                Issue.record("expected quotaExceeded, got \(outcomes)")
                return
            }
            #expect(try await store.participants(of: second) == nil, "the refused create made no group")
            #expect(try await store.statistics().groups == 1)
        }
        // Envelopes per group.
        do {
            limits = RelayLimits()
            limits.groupEnvelopes = 2
            let temporary = try TemporaryRelayStore()
            let store = temporary.store
            let outcomes = try await store.store([StoreBatch(group: world.group, envelopes: world.admit(world.aliceEnvelopes), writer: world.id("alice"))], now: 1, quotas: StoreQuotas(limits))
            #expect(outcomes[0].prefix(2) == [.stored, .stored])
            #expect(outcomes[0].dropFirst(2).allSatisfy { if case .refused(.quotaExceeded) = $0 { true } else { false } })
            #expect(try await store.statistics().envelopes == 2)
        }
        // Bytes per group.
        do {
            limits = RelayLimits()
            limits.groupBytes = Int64(world.create.wireBytes.count + 10)
            let temporary = try TemporaryRelayStore()
            let store = temporary.store
            let outcomes = try await store.store([StoreBatch(group: world.group, envelopes: world.admit(world.aliceEnvelopes), writer: world.id("alice"))], now: 1, quotas: StoreQuotas(limits))
            #expect(outcomes[0].first == .stored)
            #expect(outcomes[0].dropFirst().allSatisfy { if case .refused(.quotaExceeded) = $0 { true } else { false } })
            let statistics = try await store.statistics()
            #expect(statistics.envelopes == 1)
            #expect(statistics.bytes <= limits.groupBytes)
        }
    }

    @Test("pruning drops old application payloads only, keeps headers and control envelopes whole, reports the pruned ranges")
    func pruning() async throws {
        let world = try RulesWorld()
        let temporary = try TemporaryRelayStore()
        let store = temporary.store
        let alice = world.id("alice")
        // Alice's envelopes arrive at 1000, three more application envelopes of hers at 5000.
        _ = try await store.store([StoreBatch(group: world.group, envelopes: world.admit(world.aliceEnvelopes), writer: alice)], now: 1000, quotas: quotas)
        let last = world.aliceEnvelopes.last!
        let later = Forge.applications(identity: world.key("alice"), group: world.group, from: last.seq + 1, prev: last.hash, count: 3)
        _ = try await store.store([StoreBatch(group: world.group, envelopes: later.map(admitted(_:)), writer: alice)], now: 5000, quotas: quotas)
        let holdingsBefore = try await store.holdings(of: world.group)
        let bytesBefore = try await store.statistics().bytes
        #expect(try await store.prunedRanges(of: world.group).isEmpty)

        let oldApplications = world.aliceEnvelopes.filter { $0.kind == .application }
        #expect(try await store.prune(receivedBefore: 2000) == oldApplications.count)
        #expect(try await store.prune(receivedBefore: 2000) == 0, "pruning again finds nothing")
        #expect(try await store.prunedRanges(of: world.group) == oldApplications.map { SeqRange(sender: alice, from: $0.seq, through: $0.seq) })
        for envelope in world.aliceEnvelopes {
            let wire = try #require(try await store.wire(of: world.group, sender: alice, seq: envelope.seq))
            let held = try Envelope(wire: wire, groupID: world.group)
            #expect(held.hash == envelope.hash, "the header and signature stay")
            #expect(held.hasValidSignature())
            if envelope.kind == .application {
                #expect(held.isPruned)
            } else {
                #expect(wire == envelope.wireBytes, "control envelopes are kept whole")
            }
        }
        for envelope in later {
            #expect(try await store.wire(of: world.group, sender: alice, seq: envelope.seq) == envelope.wireBytes, "newer payloads stay")
        }
        #expect(try await store.holdings(of: world.group) == holdingsBefore, "every chain continues")
        let statistics = try await store.statistics()
        #expect(statistics.prunedPayloads == oldApplications.count)
        #expect(statistics.bytes < bytesBefore)
        // Everything older goes too; ranges merge per sender.
        #expect(try await store.prune(receivedBefore: 6000) == later.count)
        let ranges = try await store.prunedRanges(of: world.group)
        #expect(ranges.last == SeqRange(sender: alice, from: later[0].seq - (last.kind == .application ? 1 : 0), through: later[2].seq))
    }

    @Test("group commit: several links' batches, for several groups, stored in one call, in order")
    func groupCommit() async throws {
        var world = try RulesWorld()
        let temporary = try TemporaryRelayStore()
        let store = temporary.store
        let (second, secondEnvelopes) = try world.secondGroup()
        let admittedAlice = world.admit(world.aliceEnvelopes)
        let addIndex = world.aliceEnvelopes.firstIndex { $0.kind == .add }!
        let batches = [
            StoreBatch(group: world.group, envelopes: Array(admittedAlice[..<addIndex]), writer: world.id("alice")),
            StoreBatch(group: second, envelopes: world.admit(secondEnvelopes), writer: world.id("alice")),
            // Bob's link, committed with Alice's: his acknowledgments follow her create.
            StoreBatch(group: world.group, envelopes: world.bobEnvelopes.map(admitted(_:)), writer: world.id("bob")),
            StoreBatch(group: world.group, envelopes: Array(admittedAlice[addIndex...]), writer: world.id("alice")),
            // The same create again from another link in the same commit.
            StoreBatch(group: world.group, envelopes: [admittedAlice[0]], writer: world.id("bob")),
        ]
        let outcomes = try await store.store(batches, now: 10, quotas: quotas)
        #expect(outcomes.count == batches.count)
        for (index, batch) in batches.enumerated().dropLast() {
            #expect(outcomes[index] == Array(repeating: .stored, count: batch.envelopes.count), "batch \(index)")
        }
        #expect(outcomes.last == [.duplicate])
        #expect(try await store.participants(of: world.group) == [world.id("alice"), world.id("bob"), world.id("carol")])
        #expect(try await store.participants(of: second) == [world.id("alice"), world.id("dave")])
        let statistics = try await store.statistics()
        #expect(statistics.groups == 2)
        #expect(statistics.envelopes == world.aliceEnvelopes.count + secondEnvelopes.count + world.bobEnvelopes.count)
        // Served in arrival order.
        let holdings = try await store.holdings(of: world.group)
        let references = holdings.chains.flatMap { sender, chain in chain.map { EnvelopeReference(sender: sender, seq: $0.key, hash: $0.value) } }
        let wires = try await store.wires(of: world.group, references.shuffled())
        #expect(wires == (world.aliceEnvelopes[..<addIndex] + world.bobEnvelopes + world.aliceEnvelopes[addIndex...]).map(\.wireBytes))
    }
}

/// The relay's shared environment without a server: the store directly, no rate limits.
struct TestRelayEnvironment: RelayEnvironment {
    let store: any RelayStore
    var limits = RelayLimits()

    func commit(_ batch: StoreBatch) async throws -> [StoreOutcome] {
        try await store.store([batch], now: RulesWorld.now, quotas: StoreQuotas(limits)).first ?? []
    }

    func takeEnvelopeTokens(_ identity: MemberID, _ count: Int, now: Double) async -> Bool { true }
}

@Suite("Relay rules: one link (RelayConnection, NETWORK.md §11.2, §13.3)")
struct RelayConnectionRulesTests {
    static let relayKey = IdentityKey(seed: Bytes32(Array(repeating: 0x42, count: 32))!)
    let now = Double(RulesWorld.now)

    /// A relay store holding Alice's group, written through a link as a client would.
    func relayWithGroup(_ world: RulesWorld) async throws -> (TemporaryRelayStore, TestRelayEnvironment) {
        let temporary = try TemporaryRelayStore()
        let environment = TestRelayEnvironment(store: temporary.store)
        var alice = RelayConnection(relay: Self.relayKey.id, peer: world.id("alice"), environment: environment, now: now)
        _ = alice.start()
        _ = try await alice.receive(.hello(Hello(holder: world.id("alice"), groups: [world.group])), now: now)
        let outputs = try await alice.receive(.envelopes(world.group, world.aliceEnvelopes.map(\.wireBytes)), now: now)
        #expect(outputs.contains(.published(world.group, world.aliceEnvelopes.map(\.wireBytes))))
        #expect(outputs.contains(.send(.ack(world.group, world.aliceEnvelopes.map(\.hash)))))
        #expect(try await temporary.store.participants(of: world.group) != nil)
        return (temporary, environment)
    }

    static func carriesEnvelopes(_ outputs: [RelayConnection.Output], _ group: GroupID) -> Bool {
        outputs.contains { output in
            switch output {
            case .send(.envelopes(let g, _)), .send(.push(let g, _)), .send(.summary(let g, _, _)), .send(.pruned(let g, _)),
                 .send(.evidence(let g, _, _)), .subscribe(let g), .published(let g, _), .named(let g, _):
                g == group
            case .send(.have(let g, let vector)):
                g == group && !vector.heads.isEmpty
            case .send(.invited(let groups)):
                groups.contains(group)
            default:
                false
            }
        }
    }

    @Test("a peer that is not a participant gets an empty have for an existing group, exactly as for an unknown one, and never an envelope")
    func nonParticipantLearnsNothing() async throws {
        let world = try RulesWorld()
        let (temporary, environment) = try await relayWithGroup(world)
        var random = SeededRandom(seed: 8)
        let unknown = GroupID(random.bytes32())
        let alice = world.id("alice")
        let ranges = [SeqRange(sender: alice, from: 1, through: 100)]
        let hashes = world.aliceEnvelopes.map(\.hash)

        /// Everything Dave can try, for one group.
        func probe(_ group: GroupID) async throws -> [[RelayConnection.Output]] {
            var dave = RelayConnection(relay: Self.relayKey.id, peer: world.id("dave"), environment: environment, now: now)
            var transcript: [[RelayConnection.Output]] = [dave.start()]
            transcript.append(try await dave.receive(.hello(Hello(holder: world.id("dave"), groups: [group])), now: now))
            transcript.append(try await dave.receive(.have(group, Frontier()), now: now))
            transcript.append(try await dave.receive(.have(group, Frontier()), now: now))
            // A vector claiming Alice's chain, then one claiming a fork of it.
            transcript.append(try await dave.receive(.have(group, Frontier(heads: [alice: .init(seq: 1, hash: .zero)])), now: now))
            transcript.append(try await dave.receive(.want(group, ranges: ranges, hashes: hashes), now: now))
            transcript.append(try await dave.receive(.subscribe(group), now: now))
            transcript.append(try await dave.receive(.ping(7), now: now))
            #expect(dave.subscriptions.isEmpty)
            return transcript
        }

        let existing = try await probe(world.group)
        let absent = try await probe(unknown)
        // Replace the group ID to compare shapes: the existing group answers exactly like an unknown one.
        func normalized(_ transcript: [[RelayConnection.Output]], _ group: GroupID) -> [[String]] {
            transcript.map { $0.map { "\($0)".replacingOccurrences(of: "\(group)", with: "G") } }
        }
        #expect(normalized(existing, world.group) == normalized(absent, unknown))
        #expect(existing[2] == [.send(.have(world.group, Frontier()))], "one empty have, as for an unknown group")
        #expect(existing[3].isEmpty)
        for outputs in existing { #expect(!Self.carriesEnvelopes(outputs, world.group), "\(outputs)") }
        #expect(existing.last == [.send(.pong(7))], "the link itself still works")
        _ = temporary

        // Positive control: Carol, added by Alice, is told of the group and gets its envelopes.
        var carol = RelayConnection(relay: Self.relayKey.id, peer: world.id("carol"), environment: environment, now: now)
        _ = carol.start()
        let hello = try await carol.receive(.hello(Hello(holder: world.id("carol"), groups: [])), now: now)
        #expect(hello.contains(.send(.invited([world.group]))))
        let answer = try await carol.receive(.have(world.group, Frontier()), now: now)
        #expect(answer.flatMap { output -> [[UInt8]] in if case .send(.envelopes(_, let wires)) = output { wires } else { [] } } == world.aliceEnvelopes.map(\.wireBytes))
    }

    @Test("a hello naming another identity than the link authenticated is refused, and the link answers nothing after")
    func helloForAnotherIdentity() async throws {
        let world = try RulesWorld()
        let (_, environment) = try await relayWithGroup(world)
        var dave = RelayConnection(relay: Self.relayKey.id, peer: world.id("dave"), environment: environment, now: now)
        _ = dave.start()
        let outputs = try await dave.receive(.hello(Hello(holder: world.id("alice"), groups: [world.group])), now: now)
        #expect(outputs == [.close(.unauthorizedWriter)])
        #expect(dave.isClosed)
        #expect(RelayRefusal.unauthorizedWriter.code == .unauthorized)
        #expect(try await dave.receive(.have(world.group, Frontier()), now: now).isEmpty)
        #expect(try await dave.receive(.want(world.group, ranges: [SeqRange(sender: world.id("alice"), from: 1, through: 9)], hashes: []), now: now).isEmpty)
        // A later hello, too, once the link was authenticated as Dave.
        var dave2 = RelayConnection(relay: Self.relayKey.id, peer: world.id("dave"), environment: environment, now: now)
        _ = try await dave2.receive(.hello(Hello(holder: world.id("dave"), groups: [])), now: now)
        #expect(try await dave2.receive(.hello(Hello(holder: world.id("alice"), groups: [world.group])), now: now) == [.close(.unauthorizedWriter)])
    }

    @Test("a non-participant's writes are refused (unauthorized) and nothing is stored, whoever signed the envelopes")
    func nonParticipantWrites() async throws {
        let world = try RulesWorld()
        let (temporary, environment) = try await relayWithGroup(world)
        let before = try await temporary.store.holdings(of: world.group)
        let own = Forge.applications(identity: world.key("dave"), group: world.group, from: 1, prev: nil, count: 3).map(\.wireBytes)
        for message in [SyncMessage.envelopes(world.group, own), .push(world.group, own), .envelopes(world.group, world.bobEnvelopes.map(\.wireBytes))] {
            var dave = RelayConnection(relay: Self.relayKey.id, peer: world.id("dave"), environment: environment, now: now)
            _ = try await dave.receive(.hello(Hello(holder: world.id("dave"), groups: [world.group])), now: now)
            let outputs = try await dave.receive(message, now: now)
            #expect(outputs == [.close(.unauthorizedWriter)])
        }
        #expect(try await temporary.store.holdings(of: world.group) == before)
    }

    @Test("a participant's batch is stored up to its first bad envelope, then the link is refused with the typed reason")
    func stopsAtFirstRefusal() async throws {
        let world = try RulesWorld()
        let (temporary, environment) = try await relayWithGroup(world)
        var bob = RelayConnection(relay: Self.relayKey.id, peer: world.id("bob"), environment: environment, now: now)
        _ = try await bob.receive(.hello(Hello(holder: world.id("bob"), groups: [world.group])), now: now)
        let good = world.bobEnvelopes[0]
        let bad = Forge.applications(identity: world.key("bob"), group: world.group, from: 50, prev: .zero, count: 1)[0]
        let outputs = try await bob.receive(.envelopes(world.group, [good.wireBytes, Forge.badSignature(bad)]), now: now)
        #expect(outputs.first == .published(world.group, [good.wireBytes]))
        #expect(outputs.last == .close(.badSignature))
        #expect(outputs.contains(.send(.ack(world.group, [good.hash]))), "what was stored before the refusal is acknowledged")
        let holdings = try await temporary.store.holdings(of: world.group)
        #expect(holdings.chains[world.id("bob")]?[good.seq] == good.hash)
        #expect(holdings.chains[world.id("bob")]?[50] == nil)
    }
}

@Suite("Relay rules: token buckets (NETWORK.md §13.5)")
struct TokenBucketRulesTests {
    @Test("a bucket allows its burst, then its rate; an empty one refuses")
    func rateAndBurst() {
        var bucket = TokenBucket(rate: 10, burst: 100, now: 0)
        func take(_ cost: Double = 1, at now: Double) -> Bool { bucket.take(cost, now: now) }
        for _ in 0..<100 { #expect(take(at: 0)) }
        #expect(!take(at: 0))
        #expect(!take(at: 0.0625), "0.625 of a token")
        #expect(take(at: 0.125))
        #expect(take(5, at: 1.0))
        #expect(!take(10, at: 1.0))
        // Never more than the burst, however long it rested.
        #expect(take(100, at: 1_000))
        #expect(!take(at: 1_000))
    }

    @Test("a cost above the burst passes with a full bucket and leaves it in debt until repaid at the rate")
    func costAboveBurst() {
        var bucket = TokenBucket(rate: 10, burst: 100, now: 0)
        func take(_ cost: Double = 1, at now: Double) -> Bool { bucket.take(cost, now: now) }
        #expect(take(150, at: 0), "a backlog larger than the burst is not refused forever")
        #expect(bucket.tokens == -50)
        #expect(!take(at: 5.0), "the debt is repaid first")
        #expect(take(at: 5.5))
        // Not again before the bucket is full.
        #expect(!take(150, at: 10))
        #expect(take(150, at: 20))
        #expect(bucket.tokens == -50)
    }
}
