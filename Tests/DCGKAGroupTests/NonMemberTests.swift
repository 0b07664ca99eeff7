@_spi(Simulation) import DCGKAGroup
import CausalBroadcast
import DCGKACrypto
import DCGKAEncoding
import GroupMessaging
@testable import KeyAgreement
import Testing

/// PROTOCOL.md §4.2, "operations of non-members have no effect": a sender that had processed its
/// own removal, or was never added, has no authority. Its envelopes are delivered (its chain stays
/// intact) but change no view and no key, start no epoch, are acknowledged by nobody, and its
/// application messages are reported as from a non-member, never shown (issue 8, item 2).
@Suite struct NonMemberTests {
    /// Signs an envelope as `name` would at its next position, whatever its own state allows.
    static func forge(
        _ net: TestNetwork, as name: String, kind: EnvelopeKind, payload: [UInt8], offset: UInt64 = 0,
        identity: IdentityKey? = nil, position: (seq: UInt64, prev: Bytes32?)? = nil,
        application: ApplicationFields? = nil
    ) -> Envelope {
        let group = net.group("A")
        let (seq, prev) = position ?? net.group(name).broadcast.nextOwnPosition()
        return Envelope.sign(
            identity: identity ?? net.people[name]!.identity, suite: group.suite, groupID: group.groupID,
            seq: seq + offset, prev: prev, kind: kind, acked: nil, application: application, payload: payload)
    }

    /// Delivers `envelope` to `names`, returning what each of them did in answer.
    static func deliver(_ envelope: Envelope, to names: [String], in net: inout TestNetwork) -> [String: (events: [GroupEvent], seqBefore: UInt64, seqAfter: UInt64)] {
        var answers: [String: (events: [GroupEvent], seqBefore: UInt64, seqAfter: UInt64)] = [:]
        for name in names {
            let eventsBefore = net.people[name]!.events.count
            let seqBefore = net.group(name).broadcast.nextOwnPosition().seq
            net.deliver(envelope, to: name)
            answers[name] = (Array(net.people[name]!.events[eventsBefore...]), seqBefore, net.group(name).broadcast.nextOwnPosition().seq)
        }
        return answers
    }

    @Test("after processing its removal a member's removes, updates and messages have no effect", arguments: [UInt64(1), 2, 3])
    func removedMember(seed: UInt64) throws {
        var net = try ConcurrencyScenarioTests.network(seed: seed, names: ["A", "B", "C", "D"], members: ["A", "B", "C", "D"])
        _ = try net.remove(by: "A", "B")
        net.settle()
        net.expectConverged(["A", "C", "D"])
        #expect(!net.group("B").isMember)
        let b = net.id("B")
        let epochsBefore = ["A", "C", "D"].map { net.group($0).messaging.currentEpoch(of: b) }

        let remove = Self.forge(net, as: "B", kind: .remove, payload: ControlBody(fields: .remove(net.id("C")), directMessages: []).payload)
        let update = Self.forge(net, as: "B", kind: .update, payload: ControlBody(fields: .update(nil), directMessages: []).payload,
                                position: (remove.seq + 1, remove.hash))
        // B still holds a sending chain of its own; a message in it used to be shown.
        var messaging = net.group("B").messaging
        let group = net.group("B")
        let ciphertext = try messaging.encrypt(Array("still here".utf8), as: b) { epoch, index in
            ApplicationHeader(version: Envelope.currentVersion, suite: group.suite, groupID: group.groupID, sender: b,
                              seq: update.seq + 1, prev: update.hash, epoch: epoch, index: index)
        }
        let message = Self.forge(net, as: "B", kind: .application, payload: ciphertext.wireBytes, position: (update.seq + 1, update.hash),
                                 application: ApplicationFields(epoch: ciphertext.epoch, index: ciphertext.index, hour: 0))
        for envelope in [remove, update, message] {
            for (name, answer) in Self.deliver(envelope, to: ["A", "C", "D"], in: &net) {
                #expect(answer.events == [.fromNonMember(b, seq: envelope.seq)], "\(name): \(answer.events)")
                #expect(answer.seqAfter == answer.seqBefore, "\(name) acknowledged a non-member's \(envelope.kind)")
                #expect(net.group(name).broadcast.deliveredSeq(of: b) == envelope.seq, "\(name): the chain stays intact")
            }
        }
        net.expectConverged(["A", "C", "D"])
        #expect(["A", "C", "D"].map { net.group($0).messaging.currentEpoch(of: b) } == epochsBefore, "B's update started no epoch")
        try net.expectEveryoneReadsEveryone(["A", "C", "D"])
    }

    @Test("an ID named only as the target of a remove has no authority", arguments: [UInt64(1), 2])
    func neverAdded(seed: UInt64) throws {
        var net = try ConcurrencyScenarioTests.network(seed: seed, names: ["A", "B", "C", "D", "X"], members: ["A", "B", "C", "D"])
        let x = net.id("X")
        // D (a member) names X, who was never added, in a remove (seeds and all, which the honest
        // API refuses to make): X becomes a known participant.
        var state = net.group("D").keyAgreement
        let view = net.ids(["A", "B", "C", "D"])
        let (seeds, _, confirmation) = state.generateSeed(
            recipients: view.subtracting([net.id("D")]).sorted(), directory: RecipientDirectory(view: view),
            keys: KeyMaterial(prekeys: net.people["D"]!.prekeys, peerBundles: net.group("D").bundles), using: &net.rng)
        let removeX = Self.forge(net, as: "D", kind: .remove, payload: ControlBody(
            fields: .remove(x), directMessages: seeds, seedConfirmation: confirmation).payload)
        for name in ["A", "B", "C"] { net.deliver(removeX, to: name) }  // (D's own state never signed it: no settling)
        for name in ["A", "B", "C"] { #expect(net.group(name).members == net.ids(["A", "B", "C", "D"]), "\(name)") }
        #expect(net.group("A").keyAgreement.history.isKnownParticipant(x))

        let removeC = Self.forge(net, as: "X", kind: .remove, payload: ControlBody(fields: .remove(net.id("C")), directMessages: []).payload,
                                 position: (1, nil))
        let garbage = ApplicationCiphertext(epoch: 1, index: 0, ciphertext: [UInt8](repeating: 7, count: 40))
        let message = Self.forge(net, as: "X", kind: .application, payload: garbage.wireBytes, position: (2, removeC.hash),
                                 application: ApplicationFields(epoch: 1, index: 0, hour: 0))
        for envelope in [removeC, message] {
            for (name, answer) in Self.deliver(envelope, to: ["A", "B", "C"], in: &net) {
                // Not even delivered: an ID named only as a remove's target may not send at all
                // (PROTOCOL-NOTES.md, "Operations of non-members"; StateBoundTests).
                #expect(answer.events == [.rejected(.unknownSender(x))], "\(name): \(answer.events)")
                #expect(answer.seqAfter == answer.seqBefore, "\(name)")
            }
        }
        for name in ["A", "B", "C"] { #expect(net.group(name).members == net.ids(["A", "B", "C", "D"]), "\(name)") }
    }
}
