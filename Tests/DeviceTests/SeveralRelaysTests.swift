import Testing
import Foundation
import DCGKAEncoding
import DCGKACrypto
@testable import Device
@testable import DeviceStorage
import NetworkSimulation
import Sync
import GRDB

/// A relay address with a fresh identity (nothing listens there: these tests are about records).
func fakeRelay(_ port: UInt16, seed: UInt64) -> RelayAddress {
    var random = SeededRandom(seed: seed)
    return RelayAddress(host: "127.0.0.1", port: port, relay: IdentityKey.generate(using: &random).id)
}

@Suite("Several relays (NETWORK.md §14.1): one outbox entry per relay")
struct OutboxPerRelayTests {
    @Test("each relay clears only its own entries; a relay added later takes over what still waits; the last relay removed leaves them waiting")
    func outboxPerRelay() throws {
        let world = try DeviceNetwork(["alice", "bob"])
        var alice = world["alice"]
        // No relay yet: my envelopes wait for the first one.
        let group = try alice.createGroup(title: "desk", with: [try world.id("bob")])
        let created = try alice.outboxCount()
        #expect(created >= 2, "the create and the title wait")
        let company = fakeRelay(7001, seed: 1), home = fakeRelay(7002, seed: 2), later = fakeRelay(7003, seed: 3)
        try alice.addRelay(company)
        #expect(try alice.outboxCount(relay: company.relay) == created, "the first relay takes over what waited")
        try alice.addRelay(home)
        #expect(try alice.outboxCount(relay: home.relay) == created)
        try alice.send(text: "one", to: group)
        let mine = try alice.holdings(of: group).chains[try world.id("alice")]!.sorted { $0.key < $1.key }.map(\.value)
        #expect(try alice.outboxCount(relay: company.relay) == mine.count && mine.count == created + 1)

        // The company relay stores everything; the home relay only the first two.
        #expect(try alice.acknowledged(group, mine, by: company.relay) == mine.count)
        #expect(try alice.acknowledged(group, Array(mine.prefix(2)), by: home.relay) == 2)
        #expect(try alice.outboxCount(relay: company.relay) == 0)
        #expect(try alice.outboxCount(relay: home.relay) == mine.count - 2)
        #expect(try alice.outboxCount() == mine.count - 2, "waiting for some relay")
        // An acknowledgment repeated, or by another relay, changes nothing.
        #expect(try alice.acknowledged(group, mine, by: company.relay) == 0)

        // A relay added now owes what some relay has not confirmed.
        try alice.addRelay(later)
        #expect(try alice.outboxCount(relay: later.relay) == mine.count - 2)
        _ = try alice.removeRelay(home)
        _ = try alice.removeRelay(company)
        #expect(try alice.outboxCount(relay: home.relay) == 0)
        _ = try alice.removeRelay(later)
        // With no relay left, what the last one had not confirmed waits for the next.
        #expect(try alice.outboxCount() == mine.count - 2)
        try alice.addRelay(company)
        #expect(try alice.outboxCount(relay: company.relay) == mine.count - 2)
        world.cleanUp()
    }

    @Test("migration v3 gives every relay of a v2 home its own entries for what waited in the shared outbox")
    func migrationSplitsTheOutbox() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("dcgka-v3-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("home.sqlite").path
        let queue = try DatabaseQueue(path: path)
        try SQLiteDeviceStore.migrator.migrate(queue, upTo: "v2")
        let a = fakeRelay(1, seed: 1), b = fakeRelay(2, seed: 2)
        try queue.write { db in
            for relay in [a, b] {
                try db.execute(sql: "INSERT INTO relay (address, relayID, addedAt) VALUES (?, ?, 0)", arguments: [relay.description, Data(relay.relay.bytes)])
            }
            for n in 0..<3 {
                try db.execute(sql: "INSERT INTO outbox (groupID, hash, transport) VALUES (?, ?, '')",
                               arguments: [Data(repeating: 1, count: 32), Data(repeating: UInt8(n), count: 32)])
            }
        }
        try queue.close()
        let store = try SQLiteDeviceStore(path: path)
        #expect(try store.read { try $0.outboxCount(relay: a.relay) } == 3)
        #expect(try store.read { try $0.outboxCount(relay: b.relay) } == 3)
        #expect(try store.read { try $0.outboxCount(relay: nil) } == 3)
        #expect(try store.read { try $0.relays().map(\.groups) } == [[], []], "relays added before carry every group")
    }
}

@Suite("The relay list as group content (NETWORK.md §14.5)")
struct RelayListTests {
    @Test("a posted list reaches every member encrypted; concurrent lists merge last-writer-wins by (sending time, sender ID)")
    func lastWriterWins() throws {
        var world = try DeviceNetwork(["alice", "bob", "carol"])
        let group = try world["alice"].createGroup(title: "desk", with: [try world.id("bob"), try world.id("carol")])
        try world.settle(["alice", "bob", "carol"])
        let home = fakeRelay(7101, seed: 11), office = fakeRelay(7102, seed: 12)
        // Bob and Carol post at the same second without seeing each other's list: the larger
        // sender ID wins on every device.
        try world["bob"].setRelays([home], for: group)
        try world["carol"].setRelays([office], for: group)
        try world.settle(["alice", "bob", "carol"])
        let bob = try world.id("bob"), carol = try world.id("carol")
        let bigger = bob.raw > carol.raw ? bob : carol
        let expected = bigger == bob ? home : office
        for name in ["alice", "bob", "carol"] {
            let list = try world[name].relayList(of: group)
            #expect(list.relays == [expected.description], "\(name)")
            #expect(list.setBy == bigger)
            #expect(list.suggestions.count == 2)
        }
        // A later list wins whoever sent it.
        world.clock.advance(10)
        try world["alice"].setRelays([home, office], for: group)
        try world.settle(["alice", "bob", "carol"])
        for name in ["alice", "bob", "carol"] {
            #expect(try world[name].relayList(of: group).relays == [home.description, office.description], "\(name)")
        }
        // The list is not in any envelope in clear.
        let wires = try world["bob"].log(of: group, after: 0).wires
        let host = Array("127.0.0.1:7101".utf8)
        #expect(!wires.contains { wire in wire.indices.contains { i in wire[i...].starts(with: host) } })
        world.cleanUp()
    }

    @Test("a removed member's suggestion is dropped: the newest list of a current member is in force again")
    func removedMembersSuggestionDropped() throws {
        var world = try DeviceNetwork(["alice", "bob", "carol"])
        let group = try world["alice"].createGroup(title: "desk", with: [try world.id("bob"), try world.id("carol")])
        try world.settle(["alice", "bob", "carol"])
        let good = fakeRelay(7201, seed: 21), bad = fakeRelay(7202, seed: 22)
        try world["alice"].setRelays([good], for: group)
        try world.settle(["alice", "bob", "carol"])
        world.clock.advance(5)
        try world["carol"].setRelays([bad], for: group)
        try world.settle(["alice", "bob", "carol"])
        #expect(try world["bob"].relayList(of: group).relays == [bad.description])
        try world["alice"].remove(try world.id("carol"), from: group)
        try world.settle(["alice", "bob"])
        for name in ["alice", "bob"] {
            let list = try world[name].relayList(of: group)
            #expect(list.relays == [good.description], "\(name)")
            #expect(list.setBy == (try world.id("alice")))
        }
        world.cleanUp()
    }

    @Test("policy: ask waits for relay accept; contacts uses contacts' lists only; always uses every member's; my own list I use at once; a suggested relay carries that group only")
    func policies() throws {
        var world = try DeviceNetwork(["alice", "bob", "carol"], .onDisk)
        let one = try world["alice"].createGroup(title: "one", with: [try world.id("bob"), try world.id("carol")])
        let two = try world["alice"].createGroup(title: "two", with: [try world.id("bob")])
        try world.settle(["alice", "bob", "carol"])
        let relay = fakeRelay(7301, seed: 31)

        // Alice posts: she uses it for "one" at once, and only for "one".
        try world["alice"].setRelays([relay], for: one)
        let aliceRelays = try world["alice"].relays()
        #expect(aliceRelays.map(\.address) == [relay.description] && aliceRelays[0].groups == [one])
        #expect(try world["alice"].groups(sharedWith: relay.relay) == [one], "the relay does not learn of group two")

        // Bob asks (the default): suggested, not used, until he accepts.
        try world.settle(["alice", "bob", "carol"])
        #expect(try world["bob"].relayPolicy() == .ask)
        #expect(try world["bob"].relays().isEmpty)
        #expect(try world["bob"].suggestedRelays().map(\.address) == [relay.description])
        #expect(try world["bob"].acceptRelay(relay) == [one])
        #expect(try world["bob"].relays().map(\.groups) == [[one]])
        #expect(try world["bob"].suggestedRelays().isEmpty)

        // Carol does not have Alice as a contact, only Bob.
        try forget(try world.id("alice"), at: try #require(try world.databasePath(of: "carol")))
        try world["carol"].setRelayPolicy(.contacts)
        #expect(try world["carol"].relays().isEmpty, "a non-contact's list waits under `contacts`")
        #expect(try world["carol"].suggestedRelays().map(\.address) == [relay.description])

        world.clock.advance(5)
        let bobs = fakeRelay(7302, seed: 32)
        try world["bob"].setRelays([bobs], for: one)
        try world.settle(["alice", "bob", "carol"])
        #expect(try world["carol"].relays().map(\.address) == [bobs.description], "a contact's list is used under `contacts`")
        #expect(try world["bob"].relays().map(\.address).sorted() == [relay.description, bobs.description].sorted())
        #expect(try world["alice"].relays().map(\.address) == [relay.description], "Alice asks")

        try world["carol"].setRelayPolicy(.always)
        world.clock.advance(5)
        let third = fakeRelay(7303, seed: 33)
        try world["alice"].setRelays([third], for: one)
        try world.settle(["alice", "bob", "carol"])
        #expect(try world["carol"].relays().map(\.address).contains(third.description), "`always` uses a non-contact's list")
        world.cleanUp()
    }

    @Test("an adder re-sends the relay list after an add: the newcomer has it, and shows it as a suggestion")
    func adderResends() throws {
        var world = try DeviceNetwork(["alice", "bob", "dave"])
        let group = try world["alice"].createGroup(title: "desk", with: [try world.id("bob")])
        try world.settle(["alice", "bob"])
        let relay = fakeRelay(7401, seed: 41)
        try world["bob"].setRelays([relay], for: group)
        try world.settle(["alice", "bob"])
        try world["alice"].add(try world.id("dave"), to: group)
        try world.settle(["alice", "bob", "dave"])
        let list = try world["dave"].relayList(of: group)
        #expect(list.relays == [relay.description])
        #expect(try world["alice"].relays().isEmpty, "re-sending Bob's list is not Alice's choice of relays")
        #expect(try world["dave"].suggestedRelays().map(\.address) == [relay.description])
        world.cleanUp()
    }
}

/// Deletes a contact from a home's database (a person who never added that contact).
func forget(_ id: MemberID, at path: String) throws {
    let queue = try DatabaseQueue(path: path)
    try queue.write { try $0.execute(sql: "DELETE FROM contact WHERE id = ?", arguments: [Data(id.bytes)]) }
}
