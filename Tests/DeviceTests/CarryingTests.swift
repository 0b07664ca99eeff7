import Testing
import Foundation
import DCGKAEncoding
import DCGKACrypto
import CausalBroadcast
@testable import Device
import DeviceStorage
import NetworkSimulation
import Sync

@Suite("Carrying a group for its members (NETWORK.md §11.2, §14.3)")
struct CarryingTests {
    @Test("a member's grant makes a contact a carrier: it keeps what participants signed, serves participants only, reads nothing")
    func carrierRules() throws {
        var world = try DeviceNetwork(["alice", "bob", "kim", "mallory"])
        let group = try world["alice"].createGroup(title: "desk", with: [try world.id("bob")])
        try world["alice"].send(text: "hello", to: group)
        let grant = try world["alice"].grant(group, to: try world.id("kim"), days: 7)

        // Kim accepts the grant for itself and keeps the group's envelopes.
        #expect(try world["kim"].acceptGrant(grant, from: try world.id("alice")))
        let wires = try world["alice"].log(of: group, after: 0).wires
        let report = try world["kim"].receive(wires.map { ReceivedEnvelope(group: group, wire: $0) })
        #expect(report.new == wires.count)
        #expect(try world["kim"].carriedGroups().map(\.group) == [group])
        #expect(try world["kim"].groups().isEmpty, "a carried group is not one of Kim's groups")
        #expect(try world["kim"].history(of: group).isEmpty, "Kim reads nothing")
        // Kim serves participants only; Alice serves Kim because of her grant.
        #expect(try world["kim"].groups(sharedWith: try world.id("bob")) == [group])
        #expect(try world["kim"].groups(sharedWith: try world.id("mallory")).isEmpty)
        #expect(try world["alice"].groups(sharedWith: try world.id("kim")) == [group])
        // Bob learns the grant from Kim and then serves Kim too.
        #expect(try world["bob"].groups(sharedWith: try world.id("kim")).isEmpty)
        try world.settle(["alice", "bob"])
        #expect(try world["bob"].acceptGrant(grant, from: try world.id("kim")))
        #expect(try world["bob"].groups(sharedWith: try world.id("kim")) == [group])

        // An envelope signed by someone who is not a participant is not kept.
        var other = world["mallory"]
        let foreign = try other.createGroup(title: "other", with: [])
        let foreignWire = try other.log(of: foreign, after: 0).wires[0]
        let refused = try world["kim"].receive([ReceivedEnvelope(group: group, wire: foreignWire)])
        #expect(refused.new == 0)
        world.cleanUp()
    }

    @Test("grants that do not hold are refused: signed by a non-participant, for another holder, expired; carried groups are capped")
    func grantsThatDoNotHold() throws {
        var world = try DeviceNetwork(["alice", "bob", "kim", "mallory"])
        let group = try world["alice"].createGroup(title: "desk", with: [try world.id("bob")])
        try world.settle(["alice", "bob"])
        let kim = try world.id("kim")
        // Mallory is not in the group: her grant for Kim does not count at Bob.
        var random = SeededRandom(seed: 5)
        let malloryKey = IdentityKey.generate(using: &random)
        let forged = Grant(group: group, holder: kim, notAfter: world.clock.now + 3_600, granter: malloryKey)
        #expect(try !world["bob"].acceptGrant(forged, from: kim))
        // Alice's grant for Kim shown by someone else is not that someone's.
        let real = try world["alice"].grant(group, to: kim, days: 1)
        #expect(try !world["bob"].acceptGrant(real, from: try world.id("mallory")))
        // Expired.
        world.clock.advance(2 * 86_400)
        #expect(try !world["bob"].acceptGrant(real, from: kim))
        #expect(try world["alice"].groups(sharedWith: kim).isEmpty, "Alice's own grant expired")
        // A carrier takes at most maximumCarriedGroups groups.
        var accepted = 0
        for n in 0..<(NetworkDevice.maximumCarriedGroups + 3) {
            let some = GroupID(Bytes32(Array(repeating: UInt8(n), count: 31) + [0xAA])!)
            let grant = Grant(group: some, holder: kim, notAfter: world.clock.now + 3_600, granter: malloryKey)
            if try world["kim"].acceptGrant(grant, from: try world.id("mallory")) { accepted += 1 }
        }
        #expect(accepted == NetworkDevice.maximumCarriedGroups)
        world.cleanUp()
    }
}
