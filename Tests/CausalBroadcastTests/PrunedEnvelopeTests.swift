import CausalBroadcast
import DCGKACrypto
import DCGKAEncoding
import Testing

/// PROTOCOL.md §6.1: the signed header commits to the payload by `payloadHash`, so an application
/// envelope can lose its payload (pruned) and stay a valid link of its sender's chain.
@Suite struct PrunedEnvelopeTests {
    let group = makeGroupID(40)

    @Test("a pruned application envelope keeps its hash and signature, and round-trips through both encodings")
    func prunedKeepsIdentity() throws {
        var a = Sender(seed: 41, groupID: group)
        _ = a.send(.create, payload: [1])
        let full = a.send(.application, payload: Array("a message".utf8))
        let pruned = full.pruned()
        #expect(pruned.isPruned && !full.isPruned)
        #expect(pruned.hash == full.hash && pruned.payloadHash == full.payloadHash)
        #expect(pruned.hasValidSignature())
        #expect(pruned.wireBytes.count == full.wireBytes.count - 1 - full.payloadCount)
        let fromWire = try Envelope(wire: pruned.wireBytes, groupID: group)
        #expect(fromWire.isPruned && fromWire.hash == full.hash && fromWire.application == full.application)
        #expect(try Envelope(canonical: pruned.canonicalBytes).canonicalBytes == pruned.canonicalBytes)
        #expect(pruned.withPayload(full.payload!)?.payload == full.payload)
        #expect(pruned.withPayload(Array("another one".utf8)) == nil)
        #expect(full.payloadHash == Suite1().hash(full.payload!))
    }

    @Test("control envelopes are never pruned; a payload that does not match its hash, or a bad presence byte, is a typed error")
    func decoderChecksPayload() throws {
        var a = Sender(seed: 42, groupID: group)
        let create = a.send(.create, payload: [1, 2, 3])
        #expect(create.pruned().payload == create.payload)  // unchanged
        // The same header with the presence byte cleared (the payload bytes dropped).
        var wire = create.wireBytes
        wire.removeLast(1 + 1 + 3)
        #expect(throws: WireError.invalidValue(field: "envelope.payload (a control envelope is never pruned)")) {
            try Envelope(wire: wire + [0], groupID: group)
        }
        #expect(throws: WireError.invalidValue(field: "envelope.payload presence")) { try Envelope(wire: wire + [2], groupID: group) }
        // Another payload under the signed header.
        #expect(throws: WireError.invalidValue(field: "envelope.payloadHash")) {
            try Envelope(wire: wire + [1, 3, 1, 2, 4], groupID: group)
        }
        #expect(try Envelope(wire: wire + [1, 3, 1, 2, 3], groupID: group) == create)
    }

    @Test("a pruned envelope is delivered in order; a full copy gives a buffered pruned one its payload back")
    func deliveryOfPrunedEnvelopes() throws {
        var a = Sender(seed: 43, groupID: group)
        let b = Sender(seed: 44, groupID: group)
        let create = a.send(.create, payload: [1])
        let m1 = a.send(.application, payload: [10])
        let m2 = a.send(.application, payload: [20])
        let m3 = a.send(.application, payload: [30])
        var state = BroadcastState(groupID: group, suite: .suite1, me: b.id)
        #expect(state.receive(create, isKnownSender: everyoneKnown) == .buffered)
        #expect(state.drain() == [create])
        // m2 waits for m1; its pruned copy is buffered, and then its full copy arrives.
        #expect(state.receive(m2.pruned(), isKnownSender: everyoneKnown) == .buffered)
        #expect(state.bufferedBytes == 0)
        #expect(state.receive(m2, isKnownSender: everyoneKnown) == .payloadRestored)
        #expect(state.bufferedBytes == 1)
        #expect(state.receive(m2, isKnownSender: everyoneKnown) == .duplicate)
        #expect(state.receive(m2.pruned(), isKnownSender: everyoneKnown) == .duplicate)
        // m1 arrives pruned only: it is delivered pruned, and the chain goes on.
        #expect(state.receive(m1.pruned(), isKnownSender: everyoneKnown) == .buffered)
        let delivered = state.drain()
        #expect(delivered.map(\.hash) == [m1.hash, m2.hash])
        #expect(delivered[0].isPruned && delivered[1].payload == [20])
        #expect(state.receive(m3.pruned(), isKnownSender: everyoneKnown) == .buffered)
        #expect(state.drain().map(\.isPruned) == [true])
        // The full copy of a delivered pruned envelope is a duplicate at this layer (the group
        // layer decrypts it with the key it kept).
        #expect(state.receive(m1, isKnownSender: everyoneKnown) == .duplicate)
    }

    @Test("an acknowledgment names (sender, seq, hash): one whose hash belongs to another position is invalid")
    func acknowledgmentNamesItsPosition() throws {
        var a = Sender(seed: 45, groupID: group)
        var b = Sender(seed: 46, groupID: group)
        let c = Sender(seed: 47, groupID: group)
        let create = a.send(.create, payload: [1])
        let update = a.send(.update, payload: [2])
        var state = BroadcastState(groupID: group, suite: .suite1, me: c.id)
        _ = state.receive(create, isKnownSender: everyoneKnown)
        _ = state.receive(update, isKnownSender: everyoneKnown)
        #expect(state.drain().count == 2)
        let lying = b.send(.ack, acked: EnvelopeReference(sender: a.id, seq: 1, hash: update.hash))
        #expect(state.receive(lying, isKnownSender: everyoneKnown) == .rejected(.invalidAcknowledgment(sender: b.id, seq: 1)))
    }

    @Test("an acknowledgment of a branch I did not take is delivered without waiting (§6.2), and one of a position I have not reached waits")
    func acknowledgmentOfAnotherBranch() throws {
        var e = Sender(seed: 48, groupID: group)
        var y = Sender(seed: 49, groupID: group)
        let x = Sender(seed: 50, groupID: group)
        let create = e.send(.create, payload: [1])
        // E equivocates at seq 2: X gets `shown`, Y got `other` and acknowledged it.
        let shown = e.make(.update, seq: 2, prev: create.hash, payload: [2])
        let other = e.make(.update, seq: 2, prev: create.hash, payload: [3])
        let yAck = y.send(.ack, acked: other.reference)
        let yNext = y.send(.application, payload: [4])
        var state = BroadcastState(groupID: group, suite: .suite1, me: x.id)
        _ = state.receive(create, isKnownSender: everyoneKnown)
        #expect(state.drain() == [create])
        // Before X has E's seq 2, the acknowledgment waits for its target.
        #expect(state.receive(yAck, isKnownSender: everyoneKnown) == .buffered)
        #expect(state.receive(yNext, isKnownSender: everyoneKnown) == .buffered)
        #expect(state.drain().isEmpty)
        #expect(state.missing() == [.hash(other.hash)])
        // Once X holds another envelope there, Y's chain flows.
        #expect(state.receive(shown, isKnownSender: everyoneKnown) == .buffered)
        #expect(state.drain().map(\.hash) == [shown.hash, yAck.hash, yNext.hash])
        #expect(state.missing().isEmpty)
    }
}
