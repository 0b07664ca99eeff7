import DCGKACrypto
import DCGKAEncoding
import Testing
@testable import Link

typealias F = LinkFixtures

/// NETWORK.md §12: the handshake binds each Ed25519 identity to its Noise static key, and refuses
/// everything else with a typed error that ends it.
@Suite("Link handshake")
struct LinkHandshakeTests {
    @Test("two identities authenticate each other and agree on the handshake hash")
    func handshake() throws {
        var initiator = F.initiator(seed: 1, payload: Array("invite-token".utf8))
        var responder = F.responder(seed: 1, payload: [9, 8, 7])
        #expect(initiator.role == .initiator && responder.role == .responder)
        #expect(initiator.action == .write && responder.action == .read)

        let m1 = try initiator.write()
        #expect(m1.count == 32)  // e, empty payload
        #expect(initiator.action == .read)
        try responder.read(m1)
        #expect(responder.action == .write && responder.peer == nil)

        let m2 = try responder.write()
        #expect(m2.count == 32 + 48 + 98 + 3 + 16)
        try initiator.read(m2)
        #expect(initiator.peer == F.bob.id)  // known before the initiator reveals itself
        #expect(initiator.peerPayload == [9, 8, 7])
        #expect(initiator.action == .write && !initiator.isComplete && initiator.handshakeHash == nil)

        let m3 = try initiator.write()
        #expect(m3.count == 48 + 98 + 12 + 16)
        #expect(initiator.isComplete && initiator.action == .complete)
        try responder.read(m3)
        #expect(responder.isComplete && responder.peer == F.alice.id)
        #expect(responder.peerPayload == Array("invite-token".utf8))

        let hash = try #require(initiator.handshakeHash)
        #expect(hash.count == 32 && responder.handshakeHash == hash)

        let a = try initiator.finish()
        let b = try responder.finish()
        #expect(a.peer == F.bob.id && b.peer == F.alice.id)
        #expect(a.isInitiator && !b.isInitiator)
        #expect(a.handshakeHash == hash && b.handshakeHash == hash)
        #expect(b.peerPayload == Array("invite-token".utf8) && a.peerPayload == [9, 8, 7])
        #expect(initiator.action == .finished && responder.action == .finished)
    }

    @Test("without an expected peer the initiator accepts any identity; the handshake hash differs per link")
    func noExpectedPeer() throws {
        var i1 = F.initiator(seed: 2, expectedPeer: nil)
        var r1 = F.responder(seed: 2, identity: F.carol)
        let (a1, b1) = try F.connect(&i1, &r1)
        #expect(a1.peer == F.carol.id && b1.peer == F.alice.id && a1.peerPayload.isEmpty)

        var i2 = F.initiator(seed: 3, expectedPeer: nil)
        var r2 = F.responder(seed: 3, identity: F.carol)
        let (a2, _) = try F.connect(&i2, &r2)
        #expect(a1.handshakeHash != a2.handshakeHash)
    }

    @Test("the same seeds give the same messages (sans-IO, injected randomness)")
    func deterministic() throws {
        let first = try F.honestMessages(seed: 4)
        let second = try F.honestMessages(seed: 4)
        #expect(first == second)
        #expect(try F.honestMessages(seed: 5).m1 != first.m1)
    }

    @Test("a responder with another identity than expected is refused before message 3")
    func unexpectedPeer() throws {
        var initiator = F.initiator(seed: 6, expectedPeer: F.carol.id)
        var responder = F.responder(seed: 6, identity: F.bob)
        try responder.read(try initiator.write())
        let m2 = try responder.write()
        #expect(throws: LinkError.unexpectedPeer(expected: F.carol.id, actual: F.bob.id)) { try initiator.read(m2) }
        #expect(initiator.action == .dead && initiator.peer == nil)
        #expect(throws: LinkError.dead) { try initiator.write() }
    }

    @Test("a tampered byte anywhere in message 1 fails the initiator's read of message 2")
    func tamperedMessage1() throws {
        let honest = try F.honestMessages(seed: 7)
        for index in honest.m1.indices {
            var initiator = F.initiator(seed: 7)
            var responder = F.responder(seed: 7)
            var m1 = try initiator.write()
            #expect(m1 == honest.m1)
            m1[index] ^= 0x01
            try responder.read(m1)  // unauthenticated: the responder cannot tell yet
            let m2 = try responder.write()
            #expect(throws: LinkError.decryptionFailed, "byte \(index)") { try initiator.read(m2) }
            #expect(initiator.action == .dead)
        }
    }

    @Test("a tampered byte anywhere in message 2 is refused by the initiator")
    func tamperedMessage2() throws {
        let honest = try F.honestMessages(seed: 8)
        for index in honest.m2.indices {
            var initiator = F.initiator(seed: 8)
            #expect(try initiator.write() == honest.m1)
            var m2 = honest.m2
            m2[index] ^= 0x80
            #expect(throws: LinkError.decryptionFailed, "byte \(index)") { try initiator.read(m2) }
            #expect(initiator.action == .dead)
        }
    }

    @Test("a tampered byte anywhere in message 3 is refused by the responder")
    func tamperedMessage3() throws {
        let honest = try F.honestMessages(seed: 9)
        for index in honest.m3.indices {
            var responder = F.responder(seed: 9)
            try responder.read(honest.m1)
            #expect(try responder.write() == honest.m2)
            var m3 = honest.m3
            m3[index] ^= 0x10
            #expect(throws: LinkError.decryptionFailed, "byte \(index)") { try responder.read(m3) }
            #expect(responder.action == .dead && responder.peer == nil)
        }
    }

    @Test("every truncation of every handshake message is refused: too short for its keys, or its tag fails")
    func truncated() throws {
        let honest = try F.honestMessages(seed: 10)
        for length in 0..<honest.m1.count {
            var responder = F.responder(seed: 10)
            #expect(throws: LinkError.truncatedMessage, "m1 prefix \(length)") { try responder.read(Array(honest.m1.prefix(length))) }
        }
        for length in 0..<honest.m2.count {
            var initiator = F.initiator(seed: 10)
            _ = try initiator.write()
            // e (32) + encrypted s (48) + payload tag (16) must be there before any tag can be checked.
            let expected: LinkError = length < 96 ? .truncatedMessage : .decryptionFailed
            #expect(throws: expected, "m2 prefix \(length)") { try initiator.read(Array(honest.m2.prefix(length))) }
        }
        for length in 0..<honest.m3.count {
            var responder = F.responder(seed: 10)
            try responder.read(honest.m1)
            _ = try responder.write()
            let expected: LinkError = length < 64 ? .truncatedMessage : .decryptionFailed
            #expect(throws: expected, "m3 prefix \(length)") { try responder.read(Array(honest.m3.prefix(length))) }
        }
    }

    @Test("message 1 must carry an empty payload")
    func message1Payload() throws {
        let honest = try F.honestMessages(seed: 11)
        var responder = F.responder(seed: 11)
        #expect(throws: LinkError.malformedPayload) { try responder.read(honest.m1 + [0]) }
        #expect(responder.action == .dead)
    }

    @Test("message 1 replayed into a responder that already has one is refused")
    func replayedMessage1() throws {
        let honest = try F.honestMessages(seed: 12)
        // Before the responder answered: it is its turn to write, not to read.
        var responder = F.responder(seed: 12)
        try responder.read(honest.m1)
        #expect(throws: LinkError.unexpectedMessage) { try responder.read(honest.m1) }
        #expect(responder.action == .dead)
        // After it answered: message 1 is no message 3.
        var answered = F.responder(seed: 12)
        try answered.read(honest.m1)
        _ = try answered.write()
        #expect(throws: LinkError.truncatedMessage) { try answered.read(honest.m1) }
        // A message 1 from another run padded to the size of a message 3 fails its tag.
        let other = try F.honestMessages(seed: 13)
        var padded = F.responder(seed: 12)
        try padded.read(honest.m1)
        _ = try padded.write()
        #expect(throws: LinkError.decryptionFailed) { try padded.read(other.m1 + Array(repeating: 0, count: honest.m3.count - 32)) }
    }

    @Test("message 2 or 3 from another handshake is refused")
    func messagesFromAnotherRun() throws {
        let run = try F.honestMessages(seed: 14)
        let other = try F.honestMessages(seed: 15)

        var initiator = F.initiator(seed: 14)
        _ = try initiator.write()
        #expect(throws: LinkError.decryptionFailed) { try initiator.read(other.m2) }

        var responder = F.responder(seed: 14)
        try responder.read(run.m1)
        _ = try responder.write()
        #expect(throws: LinkError.decryptionFailed) { try responder.read(other.m3) }

        // The same responder keys answering a replayed old message 1: the old message 3 does not fit
        // a new responder ephemeral.
        var replayed = F.responder(seed: 16)
        try replayed.read(run.m1)
        _ = try replayed.write()
        #expect(throws: LinkError.decryptionFailed) { try replayed.read(run.m3) }
    }

    @Test("messages out of turn, extra messages, finishing early or twice")
    func stateErrors() throws {
        var responder = F.responder(seed: 17)
        #expect(throws: LinkError.outOfTurn) { try responder.write() }
        #expect(throws: LinkError.dead) { try responder.read([]) }

        var initiator = F.initiator(seed: 17)
        #expect(throws: LinkError.unexpectedMessage) { try initiator.read(Array(repeating: 1, count: 32)) }

        var early = F.initiator(seed: 17)
        #expect(throws: LinkError.handshakeIncomplete) { try early.finish() }
        #expect(early.action == .dead)

        var i = F.initiator(seed: 18)
        var r = F.responder(seed: 18)
        let m1 = try i.write()
        try r.read(m1)
        let m2 = try r.write()
        try i.read(m2)
        let m3 = try i.write()
        try r.read(m3)
        // An extra message after completion (a replayed message 3, say).
        var extra = r
        #expect(throws: LinkError.unexpectedMessage) { try extra.read(m3) }
        #expect(throws: LinkError.dead) { try extra.finish() }
        var extraWrite = i
        #expect(throws: LinkError.outOfTurn) { try extraWrite.write() }

        _ = try i.finish()
        #expect(throws: LinkError.finished) { try i.finish() }
        #expect(throws: LinkError.finished) { try i.write() }
        #expect(throws: LinkError.finished) { try i.read(m2) }
        #expect(i.action == .finished)
    }

    @Test("after any error every call throws dead")
    func deadAfterError() throws {
        let honest = try F.honestMessages(seed: 19)
        var initiator = F.initiator(seed: 19)
        _ = try initiator.write()
        var m2 = honest.m2
        m2[40] ^= 1
        #expect(throws: LinkError.decryptionFailed) { try initiator.read(m2) }
        // Even the honest message 2 no longer helps.
        #expect(throws: LinkError.dead) { try initiator.read(honest.m2) }
        #expect(throws: LinkError.dead) { try initiator.write() }
        #expect(throws: LinkError.dead) { try initiator.finish() }
        #expect(initiator.action == .dead && initiator.handshakeHash == nil)
    }

    @Test("an identity proof signed by another key, or for another static key, is a bad signature")
    func badSignature() throws {
        // The initiator claims Alice but the proof is signed by Carol.
        var initiator = F.initiator(seed: 20)
        var responder = F.responder(seed: 20)
        try responder.read(try initiator.write())
        try initiator.read(try responder.write())
        let staticKey = try #require(initiator.localStaticKey)
        let carolSigned = F.carol.sign(LinkHandshake.signedBytes(staticKey: staticKey))
        initiator.proofOverride = F.alice.id.bytes + carolSigned.bytes + [0, 0]
        #expect(throws: LinkError.badSignature) { try responder.read(try initiator.write()) }
        #expect(responder.action == .dead && responder.peer == nil)

        // Carol's genuine proof of that very static key is accepted, as Carol.
        var i1 = F.initiator(seed: 20)
        var r1 = F.responder(seed: 20)
        try r1.read(try i1.write())
        try i1.read(try r1.write())
        i1.proofOverride = F.carol.id.bytes + carolSigned.bytes + [0, 0]
        try r1.read(try i1.write())
        #expect(r1.peer == F.carol.id)

        // The responder replays Bob's genuine proof from another link (another static key).
        let otherLinkProof = LinkHandshake.proof(identity: F.bob, staticKey: Array(repeating: 5, count: 32), payload: [])
        var i2 = F.initiator(seed: 21)
        var r2 = F.responder(seed: 21)
        r2.proofOverride = otherLinkProof
        try r2.read(try i2.write())
        #expect(throws: LinkError.badSignature) { try i2.read(try r2.write()) }

        // An identity of small order with a signature that verifies under it for any message
        // (R = identity point, S = 0) is no identity.
        let identityPoint: [UInt8] = [1] + Array(repeating: 0, count: 31)
        var i3 = F.initiator(seed: 22, expectedPeer: nil)
        var r3 = F.responder(seed: 22)
        r3.proofOverride = identityPoint + identityPoint + Array(repeating: 0, count: 32) + [0, 0]
        try r3.read(try i3.write())
        #expect(throws: LinkError.badSignature) { try i3.read(try r3.write()) }
    }

    @Test("identity proofs of the wrong length or announcing too much are malformed")
    func malformedProof() throws {
        let good = LinkHandshake.proof(identity: F.bob, staticKey: Array(repeating: 5, count: 32), payload: [1, 2, 3])
        var badProofs: [[UInt8]] = [
            [],
            Array(good.prefix(95)),
            Array(good.prefix(97)),
            Array(good.dropLast()),  // announces 3 bytes, carries 2
            good + [0],  // trailing byte
        ]
        var tooLong = LinkHandshake.proof(identity: F.bob, staticKey: Array(repeating: 5, count: 32), payload: [])
        tooLong[96] = 0x04
        tooLong[97] = 0x01  // 1025
        badProofs.append(tooLong + Array(repeating: 0, count: 1025))
        for (n, proof) in badProofs.enumerated() {
            var i = F.initiator(seed: 23)
            var r = F.responder(seed: 23)
            r.proofOverride = proof
            try r.read(try i.write())
            #expect(throws: LinkError.malformedPayload, "proof \(n)") { try i.read(try r.write()) }
        }
    }

    @Test("application payloads up to 1 KiB travel; larger ones are refused when the handshake is made")
    func payloadLimit() throws {
        let token = (0..<1024).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        var i = F.initiator(seed: 24, payload: token)
        var r = F.responder(seed: 24, payload: Array(token.reversed()))
        let (a, b) = try F.connect(&i, &r)
        #expect(b.peerPayload == token && a.peerPayload == Array(token.reversed()))

        var random = SeededRandom(seed: 1)
        #expect(throws: LinkError.payloadTooLarge(count: 1025)) {
            try LinkHandshake.initiator(identity: F.alice, expectedPeer: nil, payload: token + [0], random: &random)
        }
        #expect(throws: LinkError.payloadTooLarge(count: 1025)) {
            try LinkHandshake.responder(identity: F.bob, payload: token + [0], random: &random)
        }
    }

    @Test("a low-order ephemeral key from either side is refused")
    func lowOrderEphemeral() throws {
        for point in F.smallOrderX25519 {
            var responder = F.responder(seed: 25)
            try responder.read(point)
            #expect(throws: LinkError.lowOrderKey) { try responder.write() }
            #expect(responder.action == .dead)
        }
        let honest = try F.honestMessages(seed: 25)
        for point in F.smallOrderX25519 {
            var initiator = F.initiator(seed: 25)
            _ = try initiator.write()
            #expect(throws: LinkError.lowOrderKey) { try initiator.read(point + honest.m2.dropFirst(32)) }
        }
    }

    @Test("handshake messages over 65535 bytes are refused before any work")
    func oversizedHandshakeMessage() throws {
        var responder = F.responder(seed: 26)
        #expect(throws: LinkError.messageTooLarge(count: 65536)) { try responder.read(Array(repeating: 0, count: 65536)) }
        #expect(responder.action == .dead)
    }

    @Test("descriptions show no key material")
    func redacted() throws {
        var i = F.initiator(seed: 27)
        var r = F.responder(seed: 27)
        #expect("\(i)" == "LinkHandshake(role: initiator, action: write, peer: unknown, keys redacted)")
        #expect(Mirror(reflecting: i).children.isEmpty)
        #expect(String(reflecting: i) == "\(i)")
        let (a, _) = try F.connect(&i, &r)
        #expect("\(a)" == "LinkTransport(peer: \(F.bob.id), keys redacted)")
        #expect(Mirror(reflecting: a).children.isEmpty)
        var dumped = ""
        dump(a, to: &dumped)
        #expect(!dumped.contains("sender") && !dumped.contains("receiver"))
    }
}
