@_spi(Simulation) import DCGKAGroup
import CausalBroadcast
import DCGKACrypto
import DCGKAEncoding
import GroupMessaging
@testable import KeyAgreement
import Testing

/// PROTOCOL.md §6.1 (issue 8, item 11): application payloads can be pruned while chains continue,
/// application headers carry epoch, index and a coarse time, and the group ID is bound to its
/// creator and member list.
@Suite struct PruningAndGroupIDTests {
    /// Hands `envelope` (as wire bytes) to `name`'s group directly and returns the events.
    static func receive(_ envelope: Envelope, by name: String, in net: inout TestNetwork) throws -> [GroupEvent] {
        var group = net.group(name)
        let decoded = try Envelope(wire: envelope.wireBytes, groupID: group.groupID)
        let output = group.receive(decoded, prekeys: net.people[name]!.prekeys, using: &net.rng)
        net.people[name]!.group = group
        return output.events
    }

    @Test("a pruned message is delivered in order as expired, the chain goes on, and a full copy arriving later is read once", arguments: [false, true])
    func prunedThenFull(restartBetween: Bool) throws {
        var net = try ConcurrencyScenarioTests.network(seed: 7, names: ["A", "B", "C"], members: ["A", "B", "C"])
        let m1 = try net.send(by: "A", "one")
        let m2 = try net.send(by: "A", "two")
        let m3 = try net.send(by: "A", "three")
        net.deliver { to, _ in to == "C" }
        net.inFlight.removeAll { $0.to == "B" }
        let envelopes = [m1, m2, m3].map { net.envelopesByID[OperationID(sender: net.id("A"), seq: $0.seq)]! }
        let a = net.id("A")
        #expect(envelopes.allSatisfy { $0.application?.hour == TestNetwork.now / 3600 })

        // B gets m2 and m3 before m1, m2 and m1 without payload (a holder pruned them).
        #expect(try Self.receive(envelopes[1].pruned(), by: "B", in: &net) == [])
        #expect(try Self.receive(envelopes[2], by: "B", in: &net) == [])
        let inOrder = try Self.receive(envelopes[0].pruned(), by: "B", in: &net)
        #expect(inOrder == [
            .expired(from: a, seq: m1.seq), .expired(from: a, seq: m2.seq),
            .message(from: a, seq: m3.seq, bytes: Array("three".utf8)),
        ])
        if restartBetween { try net.restart("B") }  // the kept keys are part of the persisted state

        // The full copies, later: each is read once; a third copy is a silent duplicate.
        #expect(try Self.receive(envelopes[1], by: "B", in: &net) == [.message(from: a, seq: m2.seq, bytes: Array("two".utf8))])
        #expect(try Self.receive(envelopes[0], by: "B", in: &net) == [.message(from: a, seq: m1.seq, bytes: Array("one".utf8))])
        #expect(try Self.receive(envelopes[0], by: "B", in: &net) == [])
        #expect(try Self.receive(envelopes[2], by: "B", in: &net) == [])
        #expect(net.group("B").messaging.skippedKeyCount(for: a) == 0)

        // Later messages of A still reach B.
        let m4 = try net.send(by: "A", "four")
        net.settle()
        #expect(net.people["B"]!.read.contains(m4.hash) && net.people["C"]!.read.contains(m4.hash))
        net.expectConverged(["A", "B", "C"])
    }

    @Test("another envelope signed at a pruned position never opens the kept key, even once the position left the window of recent hashes")
    func forkAtAPrunedPosition() throws {
        var net = try ConcurrencyScenarioTests.network(seed: 10, names: ["A", "B", "C"], members: ["A", "B", "C"])
        let m1 = try net.send(by: "A", "the real one")
        let real = net.envelopesByID[OperationID(sender: net.id("A"), seq: m1.seq)]!
        net.inFlight.removeAll { $0.to == "B" && $0.envelope.hash == real.hash }
        #expect(try Self.receive(real.pruned(), by: "B", in: &net) == [.expired(from: net.id("A"), seq: m1.seq)])
        for i in 0..<300 { _ = try net.send(by: "A", "later \(i)") }
        net.settle()
        // A signs a second envelope at m1's position (same epoch and index, other ciphertext).
        let group = net.group("A")
        let fields = try #require(real.application)
        let fork = Envelope.sign(
            identity: net.people["A"]!.identity, suite: group.suite, groupID: group.groupID, seq: real.seq, prev: real.prev,
            kind: .application, acked: nil, application: fields,
            payload: ApplicationCiphertext(epoch: fields.epoch, index: fields.index, ciphertext: [UInt8](repeating: 1, count: 40)).wireBytes)
        #expect(try Self.receive(fork, by: "B", in: &net) == [])
        #expect(try Self.receive(real, by: "B", in: &net) == [.message(from: net.id("A"), seq: m1.seq, bytes: Array("the real one".utf8))])
    }

    @Test("a full copy whose header was never delivered here, or whose key was used, is not decrypted again")
    func latePayloadNeedsAKeptKey() throws {
        var net = try ConcurrencyScenarioTests.network(seed: 8, names: ["A", "B", "C"], members: ["A", "B", "C"])
        let m1 = try net.send(by: "A", "one")
        net.settle()
        let envelope = net.envelopesByID[OperationID(sender: net.id("A"), seq: m1.seq)]!
        #expect(net.people["B"]!.read.contains(m1.hash))
        #expect(try Self.receive(envelope, by: "B", in: &net) == [])
        #expect(try Self.receive(envelope.pruned(), by: "B", in: &net) == [])
    }

    @Test("the group ID is SHA-256 of creator, nonce and member list (§6.1); every member checks it")
    func groupIDIsBound() throws {
        var net = TestNetwork(seed: 9, names: ["A", "B", "C", "M"])
        try net.create(by: "A", with: ["B", "C"])
        let create = net.envelopesByID[OperationID(sender: net.id("A"), seq: 1)]!
        let body = try ControlBody(kind: .create, payload: try #require(create.payload))
        let nonce = try #require(body.groupNonce)
        let suite = CipherSuiteID.suite1.suite
        #expect(create.groupID == KeyDerivations.groupID(creator: net.id("A"), nonce: nonce, members: [net.id("C"), net.id("B")], suite: suite))
        #expect(create.groupID == KeyDerivations.groupID(creator: net.id("A"), nonce: nonce, members: [net.id("A"), net.id("B"), net.id("C")], suite: suite))
        #expect(create.groupID != KeyDerivations.groupID(creator: net.id("B"), nonce: nonce, members: [net.id("A"), net.id("C")], suite: suite))
        #expect(create.groupID != KeyDerivations.groupID(creator: net.id("A"), nonce: nonce, members: [net.id("B")], suite: suite))

        // A known vector: creator 0x01…, nonce 0x02…, members 0x03… and 0x04….
        func id(_ byte: UInt8) -> MemberID { MemberID(Bytes32([UInt8](repeating: byte, count: 32))!) }
        let list = [UInt8]([3]) + id(1).bytes + id(3).bytes + id(4).bytes
        let expected = suite.hash(Array("DCGKA group".utf8) + id(1).bytes + [UInt8](repeating: 2, count: 32) + suite.hash(list).bytes)
        #expect(KeyDerivations.groupID(creator: id(1), nonce: Bytes32([UInt8](repeating: 2, count: 32))!, members: [id(4), id(3)], suite: suite).raw == expected)

        // Nobody but A can sign A's create; A itself re-signing the same create under another
        // group ID is refused by the members.
        let wrongID = GroupID(net.rng.bytes32())
        let forged = Envelope.sign(
            identity: net.people["A"]!.identity, suite: .suite1, groupID: wrongID, seq: 1, prev: nil, kind: .create,
            acked: nil, payload: create.payload!)
        let person = net.people["B"]!
        #expect(throws: GroupError.self) {
            _ = try Group.join(identity: person.identity, invitation: forged, prekeys: person.prekeys, using: &net.rng)
        }
        do {
            _ = try Group.join(identity: person.identity, invitation: forged, prekeys: person.prekeys, using: &net.rng)
        } catch {
            #expect("\(error)".contains("groupIDMismatch"))
        }
        // A create that lists other members than the ID was made for is refused the same way.
        var other = body
        other.fields = .create([net.people["A"]!.bundle, net.people["B"]!.bundle, net.people["M"]!.bundle])
        let widened = Envelope.sign(
            identity: net.people["A"]!.identity, suite: .suite1, groupID: create.groupID, seq: 1, prev: nil, kind: .create,
            acked: nil, payload: other.payload)
        let m = net.people["M"]!
        #expect(throws: GroupError.self) {
            _ = try Group.join(identity: m.identity, invitation: widened, prekeys: m.prekeys, using: &net.rng)
        }
        // The real create still works.
        net.settle()
        net.expectConverged(["A", "B", "C"])
    }
}
