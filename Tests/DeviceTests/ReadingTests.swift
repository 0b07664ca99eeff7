import Testing
import Foundation
import DCGKAEncoding
@testable import Device
import DeviceStorage
import NetworkSimulation
import DCGKACrypto

/// What a client needs beyond the CLI (issue 12): refusing an invitation, unread counts.
@Suite("Refused invitations and read marks")
struct ReadingTests {
    @Test("a refused invitation is gone from the list, is not offered again, and keeps nothing of the group")
    func refuse() throws {
        var world = try DeviceNetwork(["alice", "bob"])
        try world.addPerson("mallory", exchangingContacts: false)
        try world.introduce("bob", to: "mallory")
        var mallory = world["mallory"]
        let group = try mallory.createGroup(title: "Spam", with: [try world.id("bob")])
        try mallory.send(text: "buy now", to: group)
        #expect(try world.carry(try mallory.exportFile(protection: .plain).bytes, to: "bob").invitations == [group])
        try world["bob"].declineInvitation(group)
        #expect(try world["bob"].groups().isEmpty)
        #expect(try world["bob"].heldGroupIDs().isEmpty)
        // The same invitation and more of the group, offered again: nothing is kept or shown.
        try mallory.send(text: "last chance", to: group)
        let again = try world.carry(try mallory.exportFile(protection: .plain).bytes, to: "bob")
        #expect(again.invitations.isEmpty && again.new == 0)
        #expect(try world["bob"].groups().isEmpty)
        #expect(throws: DeviceError.self) { try world["bob"].acceptInvitation(group) }
        #expect(throws: DeviceError.self) { try world["bob"].declineInvitation(group) }
        // Nothing of it is passed on either.
        #expect(try world["bob"].shares(group, with: try mallory.me().id) == false)
    }

    @Test("unread counts: others' messages after the read mark; the mark never moves back")
    func unread() throws {
        var world = try DeviceNetwork(["alice", "bob"])
        let group = try world["alice"].createGroup(title: "G", with: [try world.id("bob")])
        try world.settle(["alice", "bob"])
        for text in ["one", "two", "three"] { try world["alice"].send(text: text, to: group) }
        try world["bob"].send(text: "mine", to: group)
        try world.settle(["alice", "bob"])
        let bob = world["bob"]
        let me = try world.id("bob")
        let first = try bob.activity(of: group, me: me)
        #expect(first.unread == 3)
        let lines = try bob.history(of: group)
        #expect(first.lastID == lines.last!.id)
        let second = lines.first { $0.text == "two" }!
        try bob.markRead(group, upTo: second.id)
        #expect(try bob.activity(of: group, me: me).unread == 1)
        try bob.markRead(group, upTo: 1)
        #expect(try bob.readMark(of: group) == second.id)
        try bob.markRead(group, upTo: first.lastID)
        #expect(try bob.activity(of: group, me: me).unread == 0)
        // Alice's own messages never count as unread for her.
        #expect(try world["alice"].activity(of: group, me: try world.id("alice")).unread == 1)
    }
}
